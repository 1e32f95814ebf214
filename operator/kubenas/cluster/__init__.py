"""What the operator and the controller share on a cluster: the API client, names, labels, shared object builders.
Owns how kubenas talks to the API server; imports kubenas.contract and kubenas.api, never kubenas.operator or kubenas.controller."""
