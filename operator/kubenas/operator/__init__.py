"""The kubenas operator (kopf): experiments -> controller pods, trials -> Jobs, results -> status.
Owns the operator's decisions and wiring; imports contract, api, experiment, cluster, early_stopping (never controller, local).

Pure decisions live in manifests, trial_state, status and changes (and kubenas.experiment);
reconcile applies them through the API; handlers wires reconcile into kopf. See
docs/architecture.md.
"""
