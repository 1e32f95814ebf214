"""Audio and sequence classification, and the validation split rules of every task (docs/tasks.md)."""
import json
import warnings

import numpy as np
import pytest
import torch

from kubenas_trainer.tasks import audio
from kubenas_trainer.errors import DataError, InvalidTrial
from kubenas_trainer.training.export import load_metadata, load_onnx_metadata
from kubenas_trainer.data.splits import check_validation, split_train_validation
from kubenas_trainer.data.synthetic import spoken_words, token_sequences
from kubenas_trainer.tasks import load_task
from kubenas_trainer.training.loop import run_trial

FRONT_END = {"sampleRate": 8000, "clipSeconds": 0.5, "nFft": 256, "hopLength": 128, "nMels": 32}
CPU = torch.device("cpu")
SMALL_2D = {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 2},
                                        {"op": "max_pool", "kernel": 3, "stride": 2}]}
TEMPORAL = {"type": "chain", "layers": [{"op": "tconv", "filters": 16, "kernel": 3, "stride": 1, "dilation": 1},
                                        {"op": "sep_tconv", "filters": 16, "kernel": 3, "stride": 2, "dilation": 2},
                                        {"op": "attention"}]}


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    path = tmp_path_factory.mktemp("words") / "words.npz"
    np.savez(path, **spoken_words(train_speakers=6, test_speakers=3, per_word=4))
    return path


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    path = tmp_path_factory.mktemp("seq") / "sequences.npz"
    np.savez(path, **token_sequences(train_users=4, test_users=2, per_class=4))
    return path


def fast(**training):
    return {"epochs": 1, "batchSize": 16, "numThreads": 1, "measureLatency": False, **training}


# ----------------------------------------------------------------------------- splits


def test_groups_never_straddle_the_split_and_are_the_default_rule():
    y = np.repeat(np.arange(4), 30)
    groups = np.array([f"s{i % 10}" for i in range(120)])
    spec = {"validationFraction": 0.2}
    train, val = split_train_validation(y, groups, None, spec, seed=3)
    assert set(groups[train]).isdisjoint(groups[val])
    assert len(train) + len(val) == 120 and 0.1 <= len(val) / 120 <= 0.3
    again = split_train_validation(y, groups, None, spec, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val), again))
    train, val = split_train_validation(y, groups, None, {**spec, "validation": {"type": "random"}}, seed=3)
    assert set(groups[train]) & set(groups[val])  # the old behaviour: speakers on both sides


def test_kfold_by_group_deals_every_group_to_exactly_one_fold():
    y = np.zeros(60, dtype=np.int64)
    groups = np.array([f"g{i % 12}" for i in range(60)])
    held = []
    for fold in range(4):
        spec = {"validationFraction": 0.2, "validation": check_validation({"type": "kfold", "folds": 4, "fold": fold})}
        train, val = split_train_validation(y, groups, None, spec, seed=1)
        assert set(groups[train]).isdisjoint(groups[val])
        held += list(groups[val])
    assert sorted(held) == sorted(groups)


def test_files_rule_holds_out_exactly_the_listed_names(tmp_path):
    (tmp_path / "val.txt").write_text("a/1\n# a comment\nb/3\n")
    names = np.array(["a/0", "a/1", "b/2", "b/3", "b/4"])
    spec = {"validationFraction": 0.2, "validation": {"type": "files", "files": "val.txt"}}
    train, val = split_train_validation(np.zeros(5, dtype=np.int64), None, names, spec, 0, tmp_path / "data.npz")
    assert sorted(names[val]) == ["a/1", "b/3"] and sorted(names[train]) == ["a/0", "b/2", "b/4"]
    with pytest.raises(DataError, match="validation.type: group needs a group"):
        split_train_validation(np.zeros(5, dtype=np.int64), None, names, {"validationFraction": 0.2,
                               "validation": {"type": "group"}}, 0)


@pytest.mark.parametrize("value, field", [
    ({"type": "folds"}, "dataset.validation.type"),
    ({"type": "files"}, "dataset.validation.files"),
    ({"type": "kfold", "folds": 1}, "dataset.validation.folds"),
    ({"type": "kfold", "folds": 3, "fold": 3}, "dataset.validation.fold"),
    ({"type": "group", "folds": 3}, "dataset.validation.folds"),
])
def test_bad_validation_options_name_the_field(value, field):
    with pytest.raises(InvalidTrial, match=field.replace(".", r"\.")):
        check_validation(value)


# ----------------------------------------------------------------------------- audio front end


def test_resampling_keeps_a_tone_and_the_log_mel_peaks_at_its_frequency():
    t = np.arange(16000) / 16000
    tone = torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32))[None]
    down = audio.resample(tone, 16000, 8000)
    assert down.shape == (1, 8000)
    spectrum = torch.fft.rfft(down[0]).abs()
    assert abs(int(spectrum.argmax()) - 1000) <= 1  # 1 Hz bins over one second
    fe = audio.check_front_end({**FRONT_END, "clipSeconds": 1.0})
    logmel = audio.LogMel(fe)(down)
    assert logmel.shape == (1, 1, 32, 8000 // 128 + 1)
    centres = audio.mel_filterbank(256, 32, 8000, fe["fMin"], fe["fMax"]).argmax(dim=0) * 8000 / 256
    assert abs(float(centres[int(logmel[0, 0].mean(dim=1).argmax())]) - 1000) < 150


def test_clips_are_centre_cropped_and_zero_padded_to_the_clip_length():
    x = torch.arange(10.0)[None]
    assert audio.fit_length(x, 4).tolist() == [[3.0, 4.0, 5.0, 6.0]]
    assert audio.fit_length(x[:, :2], 5).tolist() == [[0.0, 0.0, 1.0, 0.0, 0.0]]


@pytest.mark.parametrize("block, field", [
    ({"nMels": 0}, "dataset.frontEnd.nMels"),
    ({"fMax": 9000}, "dataset.frontEnd.fMax"),
    ({"layout": "2d"}, "dataset.frontEnd.layout"),
    ({"hop": 10}, "dataset.frontEnd.hop"),
])
def test_bad_front_end_settings_name_the_field(block, field):
    with pytest.raises(InvalidTrial, match=field.replace(".", r"\.")):
        audio.check_front_end({**FRONT_END, **block})


def test_an_audio_dataset_refuses_image_fields_and_image_datasets(words):
    with pytest.raises(InvalidTrial, match="dataset.imageSize: task audio-classification does not read it"):
        load_task("audio-classification", {"name": "npz", "path": str(words), "imageSize": [8, 8]}, 0, CPU)
    with pytest.raises(InvalidTrial, match="dataset.name: 'digits' is not a dataset of task audio-classification"):
        load_task("audio-classification", {"name": "digits"}, 0, CPU)


def test_audio_features_are_cached_per_dataset_and_split_by_speaker(words):
    spec = {"name": "npz", "path": str(words), "frontEnd": FRONT_END}
    first = load_task("audio-classification", spec, 0, CPU)
    second = load_task("audio-classification", {**spec, "seed": 1}, 1, CPU)
    assert first.dataset.input_shape == (1, 32, 32)
    info = first.dataset.info
    assert info["validation"] == "group" and info["sharedGroups"] == 0 and info["validationGroups"] >= 1
    assert audio.cached_features.cache_info().hits >= 1  # the second split reused the features
    assert not torch.equal(first.dataset.val.y, second.dataset.val.y) or len(first.dataset.val) != len(
        second.dataset.val)


# ----------------------------------------------------------------------------- audio trials


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path))


@pytest.mark.parametrize("layout, arch", [("image", SMALL_2D), ("temporal", TEMPORAL)])
def test_an_audio_trial_exports_a_model_that_takes_a_waveform(tmp_path, words, layout, arch):
    result = run_trial({"architecture": arch, "task": "audio-classification",
                        "dataset": {"name": "npz", "path": str(words), "frontEnd": {**FRONT_END, "layout": layout}},
                        "training": fast()}, model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    assert result["metrics"]["macs"] > 0 and 0 <= result["metrics"]["testAccuracy"] <= 1
    model = _load(tmp_path / "model.pt")
    wave = torch.from_numpy(np.load(words)["x_test"][:3])
    logits = model(wave)
    assert logits.shape == (3, 4)
    fe = audio.check_front_end({**FRONT_END, "layout": layout})
    assert torch.allclose(model.classify_features(audio.LogMel(fe)(wave)), logits, atol=1e-5)
    meta = load_metadata(tmp_path / "model.pt")
    assert meta["task"] == "audio-classification" and meta["sampleRate"] == 8000
    assert "waveform" in meta["input"] and meta["classes"] == ["ia", "ue", "au", "ei"]
    assert meta["split"]["validation"] == "group"
    assert result["split"] == meta["split"] and result["split"]["sharedGroups"] == 0  # the result says it too


def test_audio_augmentation_trains_when_switched_on(words):
    augment = {"timeShiftSeconds": 0.05, "noiseProbability": 0.5, "freqMasks": 1, "timeMasks": 2}
    result = run_trial({"architecture": SMALL_2D, "task": "audio-classification",
                        "dataset": {"name": "npz", "path": str(words), "frontEnd": FRONT_END, "augment": augment},
                        "training": fast()})
    assert result["status"] == "Succeeded", result


def test_augmentation_changes_training_batches_only():
    fe = audio.check_front_end(FRONT_END)
    frontend = audio.LogMel(fe)
    aug = audio.check_augment({"freqMasks": 2, "freqMaskWidth": 4})
    x = frontend(torch.randn(4, 4000) * 0.1)
    out = audio.Augment(aug, frontend, fe, torch.Generator().manual_seed(0))(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert not audio.Augment.needed(audio.check_augment(None))  # off by default


def test_audio_folder_reads_speech_commands_layout_with_speakers(tmp_path):
    from scipy.io import wavfile

    arrays = spoken_words(train_speakers=3, test_speakers=1, per_word=2)
    words = list(arrays["classes"])
    test_list = []
    for part in ("train", "test"):
        for i, (x, y) in enumerate(zip(arrays[f"x_{part}"], arrays[f"y_{part}"])):
            speaker = f"{part}{i // 8:02d}ab"
            folder = tmp_path / words[y]
            folder.mkdir(exist_ok=True)
            name = f"{speaker}_nohash_{i % 2}.wav"
            wavfile.write(folder / name, 8000, (x * 32767).astype(np.int16))
            if part == "test":
                test_list.append(f"{words[y]}/{name}")
    (tmp_path / "testing_list.txt").write_text("\n".join(test_list))
    (tmp_path / "_background_noise_").mkdir()
    data = load_task("audio-classification", {"name": "audio-folder", "path": str(tmp_path),
                                              "frontEnd": FRONT_END, "validationFraction": 0.34}, 0, CPU)
    assert len(data.dataset.test) == len(test_list)
    assert len(data.dataset.train) + len(data.dataset.val) == len(arrays["y_train"])
    assert data.dataset.info["validation"] == "group" and data.dataset.info["sharedGroups"] == 0
    assert sorted(data.dataset.classes) == sorted(words)


def test_an_audio_folder_without_test_fails_with_what_validate_says(tmp_path):
    from kubenas.contract.datasets import layout_problem

    for word in ("yes", "no"):
        (tmp_path / "train" / word).mkdir(parents=True)
    with pytest.raises(DataError) as err:
        load_task("audio-classification", {"name": "audio-folder", "path": str(tmp_path), "frontEnd": FRONT_END},
                  0, CPU)
    assert str(err.value) == f"audio-folder: {layout_problem('audio-folder', tmp_path)}"
    assert "has train/ but no test/ folder" in str(err.value)


# ----------------------------------------------------------------------------- sequences


def test_a_sequence_trial_exports_a_model_for_any_length(tmp_path, sequences):
    result = run_trial({"architecture": TEMPORAL, "task": "sequence-classification",
                        "dataset": {"name": "npz", "path": str(sequences), "sequence": {"embeddingDim": 8}},
                        "training": fast()}, model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    model = _load(tmp_path / "model.pt")
    for length in (5, 32, 77):
        assert model(torch.randint(0, 40, (2, length))).shape == (2, 4)
    assert model(torch.full((1, 6), 10_000)).shape == (1, 4)  # unknown ids are padding, not an error
    meta = load_metadata(tmp_path / "model.pt")
    assert meta["task"] == "sequence-classification" and meta["vocabulary"] <= 40
    assert "token ids" in meta["input"]
    assert meta["torchscript"] == "scripted"  # never a trace frozen at the trained length


def test_float_sequences_from_jsonl_with_string_labels(tmp_path):
    rng = np.random.RandomState(0)
    for part, n in (("train", 40), ("test", 10)):
        with open(tmp_path / f"{part}.jsonl", "w") as f:
            for i in range(n):
                label = ["low", "high"][i % 2]
                length = rng.randint(4, 12)
                x = (rng.randn(length, 3) + (2.0 if label == "high" else -2.0)).round(3).tolist()
                f.write(json.dumps({"x": x, "y": label, "group": f"u{i % 5}"}) + "\n")
    result = run_trial({"architecture": TEMPORAL, "task": "sequence-classification",
                        "dataset": {"name": "jsonl", "path": str(tmp_path)},
                        "training": fast(epochs=3)}, model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    model = _load(tmp_path / "model.pt")
    assert model(torch.randn(2, 9, 3)).shape == (2, 2)
    assert load_metadata(tmp_path / "model.pt")["classes"] == ["high", "low"]


def test_bad_sequence_files_name_the_problem(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"x": [1, 2], "y": 0}\n{"x": [1, -2], "y": 1}\n')
    (tmp_path / "test.jsonl").write_text('{"x": [1, 2], "y": 0}\n')
    with pytest.raises(DataError, match="non-negative integer ids"):
        load_task("sequence-classification", {"name": "jsonl", "path": str(tmp_path)}, 0, CPU)


# ----------------------------------------------------------------------------- ONNX of every task


def _onnx_logits(path, x):
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    return session.run(["logits"], {"input": x.numpy()})[0]


@pytest.mark.parametrize("layout, arch", [("image", SMALL_2D), ("temporal", TEMPORAL)])
def test_an_audio_trial_exports_onnx_that_takes_the_waveform(tmp_path, words, layout, arch):
    """The ONNX file has the log-mel front end inside, like the TorchScript one:
    onnxruntime's logits for a waveform equal TorchScript's."""
    result = run_trial({"architecture": arch, "task": "audio-classification",
                        "dataset": {"name": "npz", "path": str(words), "frontEnd": {**FRONT_END, "layout": layout}},
                        "training": fast(), "export": {"formats": ["torchscript", "onnx"]}},
                       model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    wave = torch.from_numpy(np.load(words)["x_test"][:5])
    with torch.no_grad():
        expected = _load(tmp_path / "model.pt")(wave).numpy()
    got = _onnx_logits(tmp_path / "model.onnx", wave)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-4), np.abs(got - expected).max()
    assert "waveform" in load_onnx_metadata(tmp_path / "model.onnx")["input"]


def _clips_of_other_lengths(x_test: np.ndarray) -> list[np.ndarray]:
    """Held-out clips as a user has them: shorter and longer than the 4000 samples trained
    on, by odd and even amounts (so the centring rounds)."""
    return [x_test[0][:1000], x_test[1][:2999], x_test[2][:3998], x_test[3],
            np.concatenate([x_test[4], x_test[5][:1]]), np.concatenate([x_test[6], x_test[7][:2001]])]


@pytest.mark.parametrize("layout, arch", [("image", SMALL_2D), ("temporal", TEMPORAL)])
def test_an_exported_audio_model_takes_clips_at_their_own_length(tmp_path, words, layout, arch):
    """A clip of another length than clipSeconds, fed to the exported model at its own
    length, is cropped or padded as in training: TorchScript's and onnxruntime's logits
    equal the in-process model's on the features the trainer computes for that clip."""
    fe = {**FRONT_END, "layout": layout}
    result = run_trial({"architecture": arch, "task": "audio-classification",
                        "dataset": {"name": "npz", "path": str(words), "frontEnd": fe},
                        "training": fast(), "export": {"formats": ["torchscript", "onnx"]}},
                       model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    model = _load(tmp_path / "model.pt")
    assert load_metadata(tmp_path / "model.pt")["torchscript"] == "scripted"
    checked = audio.check_front_end(fe)
    for clip in _clips_of_other_lengths(np.load(words)["x_test"]):
        in_process = audio.features(audio.waveforms([clip], [8000], checked, CPU), audio.LogMel(checked))
        wave = torch.from_numpy(np.repeat(clip[None], 2, axis=0))
        with torch.no_grad():
            expected = model.classify_features(in_process.repeat(2, 1, 1, 1))
            got = model(wave)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), (len(clip), (got - expected).abs().max())
        onnx = _onnx_logits(tmp_path / "model.onnx", wave)
        assert np.allclose(onnx, expected.numpy(), rtol=1e-4, atol=1e-4), (len(clip), np.abs(onnx - expected.numpy()).max())


def test_a_sequence_trial_exports_onnx_for_any_length(tmp_path, sequences):
    result = run_trial({"architecture": TEMPORAL, "task": "sequence-classification",
                        "dataset": {"name": "npz", "path": str(sequences), "sequence": {"embeddingDim": 8}},
                        "training": fast(), "export": {"formats": ["torchscript", "onnx"]}},
                       model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result
    model = _load(tmp_path / "model.pt")
    for length in (5, 32, 77):
        tokens = torch.randint(0, 40, (2, length))
        with torch.no_grad():
            expected = model(tokens).numpy()
        got = _onnx_logits(tmp_path / "model.onnx", tokens)
        assert np.allclose(got, expected, rtol=1e-4, atol=1e-4), (length, np.abs(got - expected).max())
    assert "token ids" in load_onnx_metadata(tmp_path / "model.onnx")["input"]
