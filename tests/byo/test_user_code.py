"""trial.model.builder and trial.dataset.loader in the built-in trainer (docs/byo.md):
what a loader may return, and every failure named by its field."""
from __future__ import annotations

import textwrap

import pytest
import torch

from kubenas_trainer.errors import DataError, InvalidArchitecture, InvalidTrial
from kubenas_trainer.training.loop import run_trial
from kubenas_trainer.models.user_code import build_user_model, dataset_from_loader

MODULE = '''
import numpy as np
import torch
from torch import nn

def features(seed=0):
    g = np.random.RandomState(seed)
    x = g.randn(200, 6).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    return x[:150], y[:150], x[150:], y[150:]

class Pairs(torch.utils.data.Dataset):
    def __init__(self, n):
        self.x, self.y = torch.rand(n, 3, 4, 4), torch.arange(n) % 3
    def __len__(self):
        return len(self.y)
    def __getitem__(self, i):
        return self.x[i], int(self.y[i])

def datasets():
    return {"train": Pairs(12), "validation": Pairs(6), "classes": ["a", "b", "c"]}

def not_splits():
    return "data"

def shapes():
    return torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), torch.zeros(4, 1, 3, 3), torch.zeros(4, dtype=torch.long)

def linear(decisions, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))

def refuses(decisions, input_shape, num_classes):
    raise ValueError("width must be even")

def not_a_module(decisions, input_shape, num_classes):
    return 42
'''


@pytest.fixture(autouse=True)
def user_module(tmp_path, monkeypatch):
    (tmp_path / "byo_user_test.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_features_become_channels_and_the_seed_is_passed():
    data = dataset_from_loader({"loader": "byo_user_test:features", "seed": 3}, 0)
    assert data.input_shape == (6, 1, 1) and data.num_classes == 2
    assert len(data.train) == 150 and len(data.test) == len(data.val) == 50  # no test split: validation
    assert data.info["seed"] == 3


def test_map_style_datasets_and_class_names():
    data = dataset_from_loader({"loader": "byo_user_test:datasets"}, 0)
    assert data.input_shape == (3, 4, 4) and data.classes == ["a", "b", "c"] and len(data.train) == 12


@pytest.mark.parametrize("spec, error, words", [
    ({"loader": "byo_user_test:not_splits"}, DataError, "must return (x_train"),
    ({"loader": "byo_user_test:shapes"}, DataError, "different shapes"),
    ({"loader": "byo_user_test:nothing"}, InvalidTrial, "has no 'nothing'"),
    ({"loader": "byo_user_test:features", "limit": 3}, InvalidTrial, "dataset.limit"),
])
def test_loader_errors_name_the_field(spec, error, words):
    with pytest.raises(error, match="dataset") as caught:
        dataset_from_loader(spec, 0)
    assert words in caught.value.message


def test_builder_errors_name_the_field():
    assert isinstance(build_user_model("byo_user_test:linear", {"type": "parameters", "parameters": {}}, (1, 2, 2), 3),
                      torch.nn.Module)
    with pytest.raises(InvalidArchitecture, match="width must be even"):
        build_user_model("byo_user_test:refuses", {}, (1, 2, 2), 3)
    with pytest.raises(InvalidTrial, match="returned int, not a torch.nn.Module"):
        build_user_model("byo_user_test:not_a_module", {}, (1, 2, 2), 3)


def test_a_builder_and_loader_train_in_the_built_in_loop(tmp_path):
    result = run_trial({"architecture": {"type": "parameters", "parameters": {}},
                        "model": {"builder": "byo_user_test:linear"},
                        "dataset": {"loader": "byo_user_test:features", "seed": 0},
                        "training": {"epochs": 3, "batchSize": 32, "optimizer": "adam", "learningRate": 0.05}},
                       model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result["message"]
    assert result["reward"] > 0.8 and result["metrics"]["parameters"] == 14 and result["metrics"]["macs"] > 0
    model = torch.jit.load(str(tmp_path / "model.pt"))
    assert tuple(model(torch.zeros(2, 6, 1, 1)).shape) == (2, 2)
