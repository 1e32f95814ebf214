"""Speech recognition and audio classification served end to end: the shipped examples
(deploy/examples/speech-vowels.yaml, words-audio.yaml), cut to one trial on small
synthetic data, run by `kubenas run`; `kubenas serve RUN_DIR` serves the best model.

* speech recognition: the V2 metadata is the export's signature (waveforms in, token ids
  per frame out) with the vocabulary in its parameters, and a standard client that decodes
  the served token ids with that vocabulary (greedy CTC, as the metadata's ``decode``
  says) scores the word error rate the trial reported on the test split;
* audio classification: the served predictions over the test split score the trial's
  reported test accuracy, and a clip of another length than the training clips is
  answered as the exported module answers it in-process.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import ROOT

tritonclient = pytest.importorskip("tritonclient.http")
jiwer = pytest.importorskip("jiwer")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_example(example: str, name: str, tmp: Path, dataset: dict, epochs: int, chain: dict | None = None) -> Path:
    """The example as one trial on ``dataset`` (its search space narrowed to ``chain``'s
    choices): the run directory."""
    body = yaml.safe_load((ROOT / "deploy" / "examples" / example).read_text())
    body["metadata"]["name"] = name
    body["spec"]["searchSpace"]["chain"].update(chain or {})
    body["spec"]["budget"].update(maxTrials=1, parallelTrials=1)
    body["spec"]["strategy"] = {"type": "random", "seed": 3}
    body["spec"]["trial"]["dataset"].update(dataset)
    body["spec"]["trial"]["training"].update(epochs=epochs, device="cpu", numThreads=1)
    (tmp / "exp.yaml").write_text(yaml.safe_dump(body))
    done = subprocess.run([sys.executable, "-m", "kubenas.cli", "run", str(tmp / "exp.yaml"), "--run-dir",
                           str(tmp / "run"), "--no-progress"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "run"


def best(run_dir: Path) -> dict:
    return json.loads((run_dir / "best.json").read_text())


def infer_wave(c, model: str, wave: np.ndarray, output: str) -> np.ndarray:
    tensor = tritonclient.InferInput("input", [1, len(wave)], "FP32")
    tensor.set_data_from_numpy(wave[None].astype(np.float32))
    return c.infer(model, [tensor], outputs=[tritonclient.InferRequestedOutput(output)]).as_numpy(output)[0]


def ctc_greedy(frame_ids, vocabulary: str) -> str:
    """What a client does with the served token ids: collapse repeats, drop 0 (the blank);
    id i > 0 is vocabulary[i - 1]."""
    text, previous = [], 0
    for t in (int(v) for v in frame_ids):
        if t != previous and t != 0:
            text.append(vocabulary[t - 1])
        previous = t
    return "".join(text)


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    from kubenas_trainer.data.synthetic import spoken_strings, write_manifests

    tmp = tmp_path_factory.mktemp("speech")
    write_manifests(tmp / "data", spoken_strings())  # the example's data: 12 + 6 speakers, 24 clips each
    # one plain temporal convolution stack: it learns these strings in a few epochs
    chain = {"operations": ["tconv"], "filters": [48], "kernelSizes": [5], "strides": [1], "dilations": [1]}
    return run_example("speech-vowels.yaml", "speech-serve", tmp, {"path": str(tmp / "data")}, epochs=12,
                       chain=chain), tmp / "data"


def test_speech_recognition_is_served_with_its_vocabulary_and_its_wer(speech_run, serve):
    from kubenas_trainer.tasks.speech import read_manifest

    run_dir, data = speech_run
    reported = best(run_dir)["metrics"]
    server = serve(run_dir)
    code, meta = server.json("/v2/models/speech-serve")
    assert code == 200, meta
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}], meta
    assert meta["outputs"] == [{"name": "frame_ids", "datatype": "INT64", "shape": [-1, -1]}], meta
    params = meta["parameters"]
    assert params["task"] == "speech-recognition" and params["sampleRate"] == 8000, params
    vocabulary = params["vocabulary"]
    assert set("iaue ") <= set(vocabulary), vocabulary  # the transcripts' characters

    clips, rates, texts, _, _ = read_manifest(data / "test.json")
    assert set(rates) == {8000}
    c = tritonclient.InferenceServerClient(url=server.url, network_timeout=60)
    hyps = [ctc_greedy(infer_wave(c, "speech-serve", clip, "frame_ids"), vocabulary) for clip in clips]
    wer, cer = float(jiwer.wer(texts, hyps)), float(jiwer.cer(texts, hyps))
    assert abs(wer - reported["testWer"]) <= 0.02, (wer, reported, list(zip(texts, hyps))[:5])
    assert abs(cer - reported["testCer"]) <= 0.02, (cer, reported, list(zip(texts, hyps))[:5])
    assert reported["testCer"] < 0.9, "the trial learned nothing: the comparison would be vacuous"


@pytest.fixture(scope="module")
def words_run(tmp_path_factory):
    from kubenas_trainer.data.synthetic import spoken_words

    tmp = tmp_path_factory.mktemp("words")
    np.savez_compressed(tmp / "words.npz", **spoken_words(train_speakers=8, test_speakers=4, per_word=8))
    return run_example("words-audio.yaml", "words-serve", tmp, {"path": str(tmp / "words.npz")}, epochs=6), \
        tmp / "words.npz"


def test_audio_classification_is_served_at_any_clip_length(words_run, serve):
    import torch

    run_dir, npz = words_run
    reported = best(run_dir)["metrics"]
    server = serve(run_dir)
    code, meta = server.json("/v2/models/words-serve")
    assert code == 200 and meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, -1]}], meta
    assert meta["parameters"]["sampleRate"] == 8000, meta["parameters"]

    arrays = np.load(npz)
    x, y = arrays["x_test"].astype(np.float32), arrays["y_test"]
    c = tritonclient.InferenceServerClient(url=server.url, network_timeout=60)
    tensor = tritonclient.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    predicted = c.infer("words-serve", [tensor]).as_numpy("predicted_class")
    accuracy = float((predicted == y).mean())
    assert abs(accuracy - reported["testAccuracy"]) <= 0.005, (accuracy, reported)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(run_dir / "best_model.pt")).eval()
    for samples in (x.shape[1] * 3 // 5, x.shape[1] * 8 // 5):  # 0.3 s and 0.8 s clips of a 0.5 s model
        clip = np.resize(x[0], samples).astype(np.float32)
        served = infer_wave(c, "words-serve", clip, "logits")
        with torch.inference_mode():
            expected = module(torch.from_numpy(clip[None]))[0].numpy()
        np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-4)
