"""`kubenas run`: the embedded default, one experiment on one machine, no cluster.
Owns the run directory and trial processes; imports contract, api, experiment, space, strategies, early_stopping (never controller, cluster)."""
