"""Datasets: digits, idx (MNIST/Fashion-MNIST), CIFAR-10 pickles, npz, image folders; splits."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from kubenas_trainer.data import load_dataset, read_idx
from kubenas_trainer.errors import DataError, InvalidTrial


def test_digits_shapes_and_normalisation():
    d = load_dataset({"name": "digits"}, seed=0)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert d.scale == 1 / 16 and d.train.x.dtype == torch.uint8
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    x = d.normalize(d.train.x)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    assert 0 <= d.train.x.min() and d.train.x.max() <= 16


def test_split_is_deterministic_and_test_split_is_fixed():
    a, b, c = (load_dataset({"name": "digits"}, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.val.x, c.val.x)
    assert torch.equal(a.test.x, c.test.x)  # the test split does not depend on the seed
    # the spec's seed wins over the argument
    assert torch.equal(load_dataset({"name": "digits", "seed": 2}, seed=1).val.x, c.val.x)
    # stratified: every class is in the validation split, in proportion
    counts = torch.bincount(a.val.y, minlength=10)
    assert counts.min() >= 25


def test_train_val_test_are_disjoint():
    d = load_dataset({"name": "digits", "validationFraction": 0.3}, seed=0)
    train, val, test = (set(map(tuple, s.x.reshape(len(s), -1).tolist())) for s in (d.train, d.val, d.test))
    # digits has a few exact duplicate images, so compare sizes of the overlaps with the split sizes
    assert len(train & val) <= 3 and len(val & test) <= 3
    assert abs(len(d.val) / (len(d.train) + len(d.val)) - 0.3) < 0.01


def test_limit_caps_every_split():
    d = load_dataset({"name": "digits", "limit": 40}, seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (40, 40, 40)
    assert len(torch.unique(d.train.y)) >= 8


def _write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("name,layout,gz", [("mnist", "MNIST/raw", True), ("fashion-mnist", "", False)])
def test_idx_datasets(tmp_path, name, layout, gz):
    rng = np.random.RandomState(0)
    root = tmp_path / layout if layout else tmp_path
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    _write_idx(root / f"train-images-idx3-ubyte{suffix}", rng.randint(0, 256, (50, 28, 28)), gz)
    _write_idx(root / f"train-labels-idx1-ubyte{suffix}", np.arange(50) % 10, gz)
    _write_idx(root / f"t10k-images-idx3-ubyte{suffix}", rng.randint(0, 256, (20, 28, 28)), gz)
    _write_idx(root / f"t10k-labels-idx1-ubyte{suffix}", np.arange(20) % 10, gz)
    d = load_dataset({"name": name, "path": str(tmp_path)}, seed=0)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10 and d.scale == 1 / 255
    assert len(d.train) + len(d.val) == 50 and len(d.test) == 20
    assert read_idx(root / f"t10k-labels-idx1-ubyte{suffix}").tolist() == (np.arange(20) % 10).tolist()


def test_idx_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="train-images"):
        load_dataset({"name": "mnist", "path": str(tmp_path)}, seed=0)


def test_cifar10_pickles(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.RandomState(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.randint(0, 256, (10, 3072)).astype(np.uint8), b"labels": list(range(10))}
        pickle.dump(batch, open(base / name, "wb"))
    pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, open(base / "batches.meta", "wb"))
    d = load_dataset({"name": "cifar10", "path": str(tmp_path), "validationFraction": 0.1}, seed=0)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10 and d.classes[3] == "c3"
    assert (len(d.train), len(d.val), len(d.test)) == (40, 10, 10)
    assert len(d.mean) == 3


@pytest.mark.parametrize("shape,expected", [((30, 6, 5), (1, 6, 5)), ((30, 2, 6, 5), (2, 6, 5)),
                                            ((30, 6, 5, 3), (3, 6, 5))])
def test_npz_layouts(tmp_path, shape, expected):
    rng = np.random.RandomState(0)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=rng.rand(*shape).astype(np.float32), y_train=np.arange(30) % 3,
             x_test=rng.rand(9, *shape[1:]).astype(np.float32), y_test=np.arange(9) % 3)
    d = load_dataset({"name": "npz", "path": str(path)}, seed=0)
    assert d.input_shape == expected and d.num_classes == 3 and d.scale == 1.0


def test_npz_problems_are_data_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((4, 5, 5)), y_train=np.zeros(4))
    with pytest.raises(DataError, match="x_test"):
        load_dataset({"name": "npz", "path": str(path)}, seed=0)
    nan = np.zeros((4, 5, 5))
    nan[0, 0, 0] = np.nan
    np.savez(path, x_train=nan, y_train=np.arange(4) % 2, x_test=np.zeros((2, 5, 5)), y_test=[0, 1])
    with pytest.raises(DataError, match="NaN"):
        load_dataset({"name": "npz", "path": str(path)}, seed=0)


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.RandomState(0)
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.randint(0, 256, (12, 10, 3)).astype(np.uint8)).save(
                    tmp_path / split / cls / f"{i}.png")
    d = load_dataset({"name": "image-folder", "path": str(tmp_path)}, seed=0)
    assert d.input_shape == (3, 12, 10) and d.classes == ["cat", "dog"] and len(d.test) == 4
    d = load_dataset({"name": "image-folder", "path": str(tmp_path), "imageSize": [8, 8]}, seed=0)
    assert d.input_shape == (3, 8, 8)


@pytest.mark.parametrize("spec,field", [
    ({"name": "imagenet"}, "dataset.name"),
    ({"name": "mnist"}, "dataset.path"),
    ({"name": "digits", "validationFraction": 1.5}, "dataset.validationFraction"),
    ({"name": "digits", "limit": 1}, "dataset.limit"),
    ({"name": "digits", "colour": "red"}, "dataset.colour"),
])
def test_bad_specs_name_the_field(spec, field):
    with pytest.raises(InvalidTrial, match=field.replace(".", r"\.")):
        load_dataset(spec, seed=0)


def test_missing_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset({"name": "cifar10", "path": str(tmp_path / "nope")}, seed=0)
