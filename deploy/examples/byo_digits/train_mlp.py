"""A plain PyTorch training script that knows nothing of kubenas (docs/byo.md, route 1).

It trains a variable-depth MLP on scikit-learn's 8x8 digits and prints one line per
epoch in the format kubenas reads from a program's output:

    kubenas: epoch=3 accuracy=0.912 loss=0.31

Run by hand:  python -m byo_digits.train_mlp --lr 0.05
As a trial:   `kubenas run deploy/examples/byo-script-digits.yaml` runs it under the
kubenas-trial wrapper, which hands the candidate over in the JSON file named by
$KUBENAS_TRIAL_FILE (the `parameters` object holds the searched decisions) and fills
`${lr}` in the command line.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

DEFAULTS = {"layers": [{"width": 64, "activation": "relu"}], "dropout": 0.0}
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def candidate() -> dict:
    """The searched decisions, from the file kubenas names (or the defaults)."""
    path = os.environ.get("KUBENAS_TRIAL_FILE")
    if not path:
        return {"parameters": DEFAULTS, "epochs": 20, "seed": 0}
    with open(path) as f:
        return json.load(f)


def mlp(layers: list[dict], dropout: float, inputs: int = 64, classes: int = 10) -> nn.Module:
    modules: list[nn.Module] = [nn.Flatten()]
    width = inputs
    for layer in layers:
        modules += [nn.Linear(width, layer["width"]), ACTIVATIONS[layer["activation"]]()]
        if dropout > 0:
            modules.append(nn.Dropout(dropout))
        width = layer["width"]
    modules.append(nn.Linear(width, classes))
    return nn.Sequential(*modules)


def data(seed: int):
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.from_numpy(np.random.RandomState(seed).permutation(len(y)))
    cut = int(0.8 * len(y))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    trial = candidate()
    decisions = trial.get("parameters") or DEFAULTS
    torch.manual_seed(trial.get("seed") or 0)
    (x_train, y_train), (x_val, y_val) = data(0)
    model = mlp(decisions["layers"], float(decisions.get("dropout", 0.0)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, int(trial.get("epochs") or 20) + 1):
        model.train()
        for batch in torch.randperm(len(y_train)).split(args.batch_size):
            optimizer.zero_grad()
            loss_fn(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            loss = loss_fn(logits, y_val).item()
            accuracy = (logits.argmax(1) == y_val).float().mean().item()
        print(f"kubenas: epoch={epoch} accuracy={accuracy:.4f} loss={loss:.4f}", flush=True)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"kubenas: final accuracy={accuracy:.4f} parameters={parameters}", flush=True)
    if os.environ.get("KUBENAS_MODEL_FILE"):  # optional: kubenas keeps the best trial's model
        torch.jit.script(model).save(os.environ["KUBENAS_MODEL_FILE"])


if __name__ == "__main__":
    main()
