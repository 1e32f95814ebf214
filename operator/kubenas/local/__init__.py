"""`kubenas run`: the embedded default, one experiment on one machine, no cluster."""
