"""Speech recognition (docs/tasks.md "Speech recognition"): manifests, CTC training, WER/CER, export."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from kubenas_trainer.tasks import speech
from kubenas_trainer.errors import DataError
from kubenas_trainer.training.export import load_metadata
from kubenas_trainer.data.synthetic import spoken_strings, write_manifests
from kubenas_trainer.tasks import load_task
from kubenas_trainer.training.loop import run_trial

CPU = torch.device("cpu")
FRONT_END = {"sampleRate": 8000, "nFft": 256, "hopLength": 128, "nMels": 32, "layout": "temporal"}
ENCODER = {"type": "chain", "layers": [{"op": "tconv", "filters": 32, "kernel": 5, "stride": 1, "dilation": 1},
                                       {"op": "sep_tconv", "filters": 32, "kernel": 3, "stride": 1, "dilation": 2},
                                       {"op": "tconv", "filters": 32, "kernel": 3, "stride": 1, "dilation": 1}]}


def _spec(path, **extra):
    return {"name": "manifest", "path": str(path), "frontEnd": FRONT_END, **extra}


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    """Three one-vowel "words" (a, i, u: formant pairs far apart), 1-2 per clip, 6 + 3 speakers."""
    folder = tmp_path_factory.mktemp("easy")
    write_manifests(folder, spoken_strings(train_speakers=6, test_speakers=3, per_speaker=24, words=("a", "i", "u"),
                                           max_words=2, seed=1))
    return folder


def test_the_manifest_reads_back_with_relative_paths_and_speakers(easy):
    lines = [json.loads(x) for x in (easy / "train.json").read_text().splitlines()]
    assert not lines[0]["audio_filepath"].startswith("/")  # relative to the manifest
    task = load_task("speech-recognition", _spec(easy), 0, CPU)
    assert task.vocabulary == " aiu"  # sorted characters of the training transcripts
    assert task.split["validation"] == "group" and task.split["sharedGroups"] == 0
    assert task.split["trainGroups"] + task.split["validationGroups"] == 6
    feats, targets, texts = task.splits["train"]
    assert len(feats) + len(task.splits["val"][0]) == len(lines)
    assert {t for t in texts} <= {x["text"] for x in lines}
    assert all(speech.decode(t, task.vocabulary) == s for t, s in zip(targets, texts))  # ids round-trip
    lengths = {f.shape[-1] for f in feats}
    assert len(lengths) > 1  # clips keep their own lengths (no crop)


def test_ctc_trains_evaluates_with_jiwer_and_decodes_easy_words(tmp_path, easy):
    """Three vowels far apart in formant space, said by new speakers: after 25 short epochs
    the greedy decode's CER on the held-out test speakers is below 0.25. Chance is far
    above: a blank-only or constant decode scores CER >= 0.67 (every character of a
    1-2 word transcript deleted, or two of three substituted)."""
    result = run_trial({"architecture": ENCODER, "task": "speech-recognition", "dataset": _spec(easy),
                        "objective": {"metric": "wer"},
                        "training": {"epochs": 25, "batchSize": 16, "numThreads": 1, "measureLatency": False,
                                     "optimizer": "adam", "learningRate": 0.01}},
                       model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    m = result["metrics"]
    assert result["reward"] == m["wer"]  # the objective: WER, minimised
    first = result["history"][0]
    assert first["cer"] == pytest.approx(1.0) and m["loss"] < first["loss"]  # it learned from blank-only
    assert 0 <= m["testCer"] < 0.25 and 0 <= m["testWer"] <= 1
    meta = load_metadata(tmp_path / "model.pt")
    assert meta["vocabulary"] == " aiu" and meta["blank"] == 0
    assert meta["signature"]["outputs"] == [{"name": "frame_ids", "datatype": "INT64", "shape": [-1, -1]}]


def test_jiwer_scores_the_decoded_strings():
    import jiwer

    ids = [0, 2, 2, 0, 1, 0, 3, 3, 0]  # "a" (2), " " (1), "i" (3) in vocabulary " ai"
    assert speech.decode(ids, " ai") == "a i"
    assert jiwer.wer(["a i"], ["a i"]) == 0 and jiwer.cer(["a i"], ["a u"]) == pytest.approx(1 / 3)


EXPORT_CHECK = """
import json, sys, torch
model = torch.jit.load(sys.argv[1])
wave = torch.load(sys.argv[2])
print(json.dumps(model(wave).tolist()))
assert not [m for m in sys.modules if m.split(".")[0] in ("kubenas", "kubenas_trainer")], "kubenas was imported"
"""


def test_the_export_loads_without_kubenas_and_decodes_any_length(tmp_path, easy):
    result = run_trial({"architecture": ENCODER, "task": "speech-recognition", "dataset": _spec(easy),
                        "training": {"epochs": 1, "batchSize": 16, "numThreads": 1, "measureLatency": False}},
                       model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(tmp_path / "model.pt"))
    wave = torch.randn(2, 7777) * 0.1  # not a training length (the export's own check used 8000 +- steps)
    in_process = model(wave)
    assert in_process.dtype == torch.int64 and in_process.shape[0] == 2
    torch.save(wave, tmp_path / "wave.pt")
    script = tmp_path / "check.py"
    script.write_text(EXPORT_CHECK)
    out = subprocess.run([sys.executable, "-I", str(script), str(tmp_path / "model.pt"), str(tmp_path / "wave.pt")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == in_process.tolist()


def _manifest(folder, lines):
    (folder / "train.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    (folder / "test.json").write_text(json.dumps(lines[0]) + "\n")


def test_bad_input_is_a_data_error_naming_the_line_and_field(tmp_path, easy):
    good = [json.loads(x) for x in (easy / "train.json").read_text().splitlines()][:4]
    for entry in good:
        entry["audio_filepath"] = str(easy / entry["audio_filepath"])
    cases = [
        ([good[0], {k: v for k, v in good[1].items() if k != "text"}], {}, "train.json line 2: text"),
        ([good[0], {**good[1], "audio_filepath": "missing.wav"}], {}, "train.json line 2: audio_filepath"),
        ([good[0], good[1], {**good[2], "text": "a x"}], {"vocabulary": " aiu"}, "train.json line 3: character 'x'"),
    ]
    for i, (lines, extra, expected) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        _manifest(folder, lines)
        with pytest.raises(DataError, match=expected):
            load_task("speech-recognition", _spec(folder, **extra), 0, CPU)


def test_an_npz_of_clips_and_transcripts_reads_with_speakers(tmp_path):
    parts = spoken_strings(train_speakers=4, test_speakers=2, per_speaker=5, words=("a", "i"), max_words=2)
    arrays = {"text_train": np.array([t for _, t, _ in parts["train"]]),
              "text_test": np.array([t for _, t, _ in parts["test"]]),
              "groups_train": np.array([s for _, _, s in parts["train"]]), "sample_rate": np.array(8000)}
    longest = max(len(c) for items in parts.values() for c, _, _ in items)
    for part, items in parts.items():  # N x L padded, with each clip's length
        arrays[f"x_{part}"] = np.stack([np.pad(c, (0, longest - len(c))) for c, _, _ in items])
        arrays[f"lengths_{part}"] = np.array([len(c) for c, _, _ in items])
    np.savez(tmp_path / "speech.npz", **arrays)
    task = load_task("speech-recognition", {"name": "npz", "path": str(tmp_path / "speech.npz"),
                                            "frontEnd": FRONT_END}, 0, CPU)
    assert task.vocabulary == " ai" and task.split["validation"] == "group" and task.split["sharedGroups"] == 0
    frames = sorted(f.shape[-1] for f in task.splits["test"][0])
    assert frames[0] < frames[-1]  # the lengths cut the padding off
    arrays["text_test"][1] = "  "
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=r"npz text_test\[1\]: empty transcript"):
        load_task("speech-recognition", {"name": "npz", "path": str(tmp_path / "bad.npz"), "frontEnd": FRONT_END},
                  0, CPU)
