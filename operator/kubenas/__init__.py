"""kubenas, the control plane: CLI, API validation, search spaces, strategies, local runner, operator, controller.
Layers, lowest first: contract; experiment, early_stopping; space; api, strategies; cluster, local; operator, controller; cli."""
