"""Reading trial outputs back from where spec.artifacts put them (`kubenas model`).
Owns locating the best model (an experiment's status, or a local run directory) and copying it out; imports contract only.
"""
