"""Audio and sequence searches on the real-API-server tier (docs/tasks.md): the shipped
examples, on data the test synthesises, run to the end as Jobs on the node stand-in, and
the best trial's exported model loads with plain ``torch.jit.load``.

The data and the exported models live under the checkout's ``runs/`` folder, which the
node stand-in's pods see (a real cluster would mount a volume; see the examples)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.e2e.test_cluster import every_trial_succeeds, example

CASES = {
    "words-kws-temporal": ("words", "e2e-words"),
    "sequences-motif": ("sequences", "e2e-sequences"),
}


@pytest.mark.parametrize("file", sorted(CASES))
def test_task_example_searches_on_the_cluster_and_exports_its_best_model(local_only, namespace, run_folder, file):
    import torch

    from kubenas_trainer.data.synthetic import spoken_words, token_sequences

    kind, name = CASES[file]
    data = run_folder / f"{kind}.npz"
    np.savez(data, **(spoken_words() if kind == "words" else token_sequences()))
    body = example(file, name, data, run_folder / "models")
    body["spec"]["trial"]["training"].update(device="cpu", mixedPrecision=False)
    status, _ = every_trial_succeeds(local_only, namespace, body, 1500)
    assert status["trials"]["succeeded"] == 12
    best = status["bestTrial"]
    assert best["reward"] >= 0.5, best  # 4 classes: chance is 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(run_folder / "models" / best["name"] / "model.pt"))
    if kind == "words":
        wave = torch.from_numpy(np.load(data)["x_test"][:4])  # float32 N x 4000: 0.5 s at 8 kHz
        assert model(wave).shape == (4, 4)
    else:
        for length in (7, 50):
            assert model(torch.randint(0, 40, (3, length))).shape == (3, 4)
