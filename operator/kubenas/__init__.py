"""kubenas, the control plane: CLI, API validation, search spaces, strategies, local runner, operator, controller.
Layers, lowest first (docs/architecture.md): contract; space, experiment, early_stopping; strategies; api; cluster; operator, controller, local; cli."""
