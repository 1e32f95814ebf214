"""The data plane: build, train and measure one trial (models, data, training loop, export, reporters).
Owns everything that needs torch; imports kubenas.contract only (never the control plane)."""
