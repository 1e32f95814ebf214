"""Bring-your-own examples on scikit-learn's 8x8 digits (no download): a plain PyTorch
script searched as it is (train_mlp.py), and a model builder plus a data loader for the
built-in training loop (models.py, data.py). docs/byo.md explains both routes."""
