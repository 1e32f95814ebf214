"""Speaker-disjoint validation changes the pick, and tells the truth about new speakers
(issue 13, docs/tasks.md).

Synthesised calls (kubenas_trainer.data.synthetic.speaker_habits): the word is a pitch
contour, mumbled in some takes, and every training speaker has a habit per word (a tone
at its own place in the spectrogram) that gives the word away for that speaker only.
Two candidate architectures: ``local`` (small kernels then global average pooling, blind
to where a pattern is, so it can only read contours) and ``strided`` (wide strided
convolutions whose field reaches the spectrogram's edges, so it can place and memorise
habits). Both are trained twice, validated on held-out speakers (the default with
groups) and on a random split (the old behaviour, speakers on both sides); each time the
candidate with the best validation accuracy is "the pick", and its accuracy on the test
speakers (never seen) is what a user gets. Measured numbers: bench/RESULTS.md.
"""
import numpy as np
import pytest

from kubenas_trainer.data.synthetic import speaker_habits
from kubenas_trainer.training.loop import run_trial

DATA = {"train_speakers": 12, "test_speakers": 16, "per_word": 14, "mumble": 0.35, "habit_level": 2.0, "seed": 0}
FRONT_END = {"sampleRate": 8000, "clipSeconds": 0.5, "nFft": 256, "hopLength": 128, "nMels": 48}
TRAINING = {"epochs": 30, "batchSize": 32, "optimizer": "adam", "learningRate": 3e-3, "numThreads": 1,
            "measureLatency": False}
CANDIDATES = {
    "local": [{"op": "conv", "filters": 16, "kernel": 3, "stride": 1}, {"op": "max_pool", "kernel": 3, "stride": 2},
              {"op": "conv", "filters": 32, "kernel": 3, "stride": 1}],
    "strided": [{"op": "conv", "filters": 16, "kernel": 5, "stride": 2},
                {"op": "conv", "filters": 32, "kernel": 5, "stride": 2},
                {"op": "conv", "filters": 64, "kernel": 5, "stride": 2},
                {"op": "conv", "filters": 128, "kernel": 3, "stride": 2}],
}


def pick(path, validation: dict) -> dict:
    """Train every candidate with this validation rule; the one with the best validation accuracy."""
    results = {}
    for name, layers in CANDIDATES.items():
        result = run_trial({"architecture": {"type": "chain", "layers": layers}, "task": "audio-classification",
                            "dataset": {"name": "npz", "path": str(path), "validationFraction": 0.375,
                                        "validation": validation, "frontEnd": FRONT_END},
                            "training": TRAINING})
        assert result["status"] == "Succeeded", result
        results[name] = result["metrics"]
    best = max(results, key=lambda n: results[n]["accuracy"])
    return {"name": best, "validation": results[best]["accuracy"], "test": results[best]["testAccuracy"],
            "all": {n: (round(m["accuracy"], 3), round(m["testAccuracy"], 3)) for n, m in results.items()}}


@pytest.mark.slow
def test_speaker_disjoint_validation_changes_the_pick_and_tells_the_truth(tmp_path):
    path = tmp_path / "calls.npz"
    np.savez(path, **speaker_habits(**DATA))
    by_speaker = pick(path, {"type": "group"})
    mixed = pick(path, {"type": "random"})
    print("group:", by_speaker, "\nrandom:", mixed)
    group_gap = by_speaker["validation"] - by_speaker["test"]
    random_gap = mixed["validation"] - mixed["test"]
    assert by_speaker["name"] != mixed["name"], (by_speaker, mixed)
    assert by_speaker["test"] > mixed["test"] + 0.05, (by_speaker, mixed)  # the group pick is better on new speakers
    assert abs(group_gap) <= 0.05, by_speaker
    assert random_gap > abs(group_gap) + 0.10, (mixed, by_speaker)
