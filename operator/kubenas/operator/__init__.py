"""The kubenas operator (kopf): experiments -> controller pods, trials -> Jobs, results -> status.

Pure decisions live in manifests, trial_state, status, budget and changes; reconcile
applies them through the API; handlers wires reconcile into kopf. See
docs/architecture.md.
"""
