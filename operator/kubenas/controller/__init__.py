"""The per-experiment controller pod: runs the search strategy against the cluster (informer, checkpoint, loop).
Owns proposing trials; imports contract, api, experiment, cluster, space, strategies (never operator, local)."""
