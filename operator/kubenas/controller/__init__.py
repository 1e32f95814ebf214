"""The per-experiment controller pod: runs the search strategy against the cluster."""
