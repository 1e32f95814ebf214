"""The audio and sequence examples run to the end locally as shipped (12 trials each, on
data the test synthesises; docs/tasks.md), and the best model loads with plain
``torch.jit.load`` and takes what docs/tasks.md says it takes. Wall times on a 2-core
machine are in bench/RESULTS.md."""
import json
import os
import warnings

import numpy as np
import pytest

from kubenas.cli import main

from .conftest import ROOT, finished_lines

EXAMPLES = {"words-audio": "words", "words-kws-temporal": "words", "sequences-motif": "sequences"}


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_task_example_runs_locally_and_its_best_model_loads_with_plain_torch(tmp_path, example, monkeypatch):
    import torch

    from kubenas_trainer.data.synthetic import spoken_words, token_sequences

    kind = EXAMPLES[example]
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / f"{kind}.npz", **(spoken_words() if kind == "words" else token_sequences()))
    monkeypatch.chdir(tmp_path)  # the examples name data/<kind>.npz, relative to where kubenas runs
    run_dir = tmp_path / "run"
    assert main(["run", str(ROOT / "deploy" / "examples" / f"{example}.yaml"), "--run-dir", str(run_dir),
                 "--no-progress"]) == 0
    records = finished_lines(run_dir)
    assert len(records) == 12 and all(r["status"] in ("Succeeded", "EarlyStopped") for r in records), records
    best = json.loads((run_dir / "best.json").read_text())
    assert best["reward"] >= 0.5, best  # 4 classes: chance is 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(os.fspath(run_dir / "best_model.pt"))
    if kind == "words":
        wave = torch.from_numpy(np.load(tmp_path / "data" / "words.npz")["x_test"][:5])  # N x 4000, 8 kHz
        assert model(wave).shape == (5, 4)
    else:
        for length in (6, 32, 90):
            assert model(torch.randint(0, 40, (2, length))).shape == (2, 4)


@pytest.mark.slow
def test_speech_example_runs_locally_ranks_wer_ascending_and_decodes(tmp_path, monkeypatch):
    import torch

    from kubenas_trainer.tasks.audio import read_wav
    from kubenas_trainer.training.export import load_metadata
    from kubenas_trainer.tasks.speech import decode
    from kubenas_trainer.data.synthetic import spoken_strings, write_manifests

    write_manifests(tmp_path / "data" / "speech", spoken_strings())
    monkeypatch.chdir(tmp_path)  # the example names data/speech, relative to where kubenas runs
    run_dir = tmp_path / "run"
    assert main(["run", str(ROOT / "deploy" / "examples" / "speech-vowels.yaml"), "--run-dir", str(run_dir),
                 "--no-progress"]) == 0
    records = finished_lines(run_dir)
    assert len(records) == 8 and all(r["status"] in ("Succeeded", "EarlyStopped") for r in records), records
    best = json.loads((run_dir / "best.json").read_text())
    assert best["reward"] == min(r["reward"] for r in records)  # WER: the lowest is the best
    assert best["reward"] <= 0.5, best
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(os.fspath(run_dir / "best_model.pt"))
    vocabulary = load_metadata(run_dir / "best_model.pt")["vocabulary"]
    lines = [json.loads(x) for x in (tmp_path / "data" / "speech" / "test.json").read_text().splitlines()[:20]]
    right = 0
    for entry in lines:
        wave, _ = read_wav(tmp_path / "data" / "speech" / entry["audio_filepath"])  # each at its own length
        right += decode(model(torch.from_numpy(wave)[None])[0], vocabulary) == entry["text"]
    assert right >= 10, right  # held-out speakers, whole transcripts
