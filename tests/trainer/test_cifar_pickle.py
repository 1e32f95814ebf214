"""CIFAR-10 batches are unpickled with only the globals a batch needs: a pickle that would
run code is refused, by name, without running it."""
from __future__ import annotations

import os
import pickle
import subprocess

import numpy as np
import pytest

from kubenas_trainer.data import UnsafePickle, load_cifar_pickle, load_dataset
from kubenas_trainer.errors import DataError


class _RunsCode:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _batch(rng, n=10) -> dict:
    return {b"batch_label": b"training batch 1 of 5", b"labels": list(range(n)),
            b"data": rng.randint(0, 256, (n, 3072)).astype(np.uint8),
            b"filenames": [f"img{i}.png".encode() for i in range(n)]}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_shaped_batches_load_with_every_protocol(tmp_path, protocol):
    rng = np.random.RandomState(protocol)
    batch = _batch(rng)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = load_cifar_pickle(path)
    assert loaded[b"labels"] == batch[b"labels"] and loaded[b"filenames"] == batch[b"filenames"]
    np.testing.assert_array_equal(loaded[b"data"], batch[b"data"])


def test_a_pickle_that_would_run_a_command_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _RunsCode(f"touch {marker}"), b"labels": [1]}))
    with pytest.raises(UnsafePickle) as err:
        load_cifar_pickle(path)
    assert err.value.message.startswith(f"cifar10: refused to unpickle {path}: it refers to posix.system, "
                                        "which a CIFAR-10 batch never holds")
    assert err.value.reason == "DataError"
    assert not marker.exists()


@pytest.mark.parametrize("payload, name", [
    ((eval, ("1+1",)), "builtins.eval"),
    ((subprocess.Popen, (["true"],)), "subprocess.Popen"),
    ((__import__, ("os",)), "builtins.__import__"),
])
def test_other_callables_are_refused(tmp_path, payload, name):
    class Evil:
        def __reduce__(self):
            return payload

    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(UnsafePickle, match=f"it refers to {name},"):
        load_cifar_pickle(path)


def test_dataset_load_reports_the_refused_batch_as_a_data_error(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.RandomState(0)
    for name in ["data_batch_1", "data_batch_2", "data_batch_4", "data_batch_5", "test_batch"]:
        (base / name).write_bytes(pickle.dumps(_batch(rng)))
    marker = tmp_path / "pwned"
    (base / "data_batch_3").write_bytes(pickle.dumps(_RunsCode(f"touch {marker}")))
    with pytest.raises(DataError, match="refused to unpickle .*data_batch_3: it refers to posix.system"):
        load_dataset({"name": "cifar10", "path": str(tmp_path)}, seed=0)
    assert not marker.exists()


def test_a_batch_that_is_not_a_dict_is_named(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match=r"holds a list, not a CIFAR-10 batch \(a dict\)"):
        load_cifar_pickle(path)
