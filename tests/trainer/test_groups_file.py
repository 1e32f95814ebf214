"""dataset.groupsFile: groups from a separate name,group CSV (docs/tasks.md)."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from kubenas.api.validation import validate_experiment
from kubenas_trainer.tasks import audio
from kubenas_trainer.data import check_spec, read_raw, split_indices, split_info
from kubenas_trainer.errors import DataError, InvalidTrial
from kubenas_trainer.data.splits import groups_from_file
from kubenas_trainer.data.synthetic import spoken_words


def test_groups_come_from_the_file_and_replace_the_datasets_own(tmp_path):
    arrays = spoken_words(train_speakers=6, test_speakers=2, per_word=3)
    np.savez(tmp_path / "words.npz", **arrays)
    names, own = arrays["names_train"], arrays["groups_train"]
    # The file says who really spoke: speakers 0-1, 2-3 and 4-5 are one person each.
    person = {g: f"person-{int(g.rsplit('-', 1)[1]) // 2}" for g in set(own)}
    lines = ["# name,group"] + [f"{n},{person[g]}" for n, g in zip(names, own)] + ["test/unused.wav,person-9"]
    (tmp_path / "groups.csv").write_text("\n".join(lines) + "\n")
    given = {"name": "npz", "path": str(tmp_path / "words.npz"), "validationFraction": 0.3}
    fields = ("name", "path", "validationFraction", "groupsFile", "layout")
    spec = check_spec({**given, "groupsFile": "groups.csv"}, fields=fields, datasets=("npz",),
                      task="audio-classification")
    raw = read_raw(spec, audio.read_audio_npz)
    train, val, _ = split_indices(raw, spec, seed=0)
    file_groups = np.array([person[g] for g in own])
    assert set(file_groups[train]).isdisjoint(file_groups[val])
    info = split_info(raw, spec, 0, train, val)
    assert info["validation"] == "group" and info["groupsFile"] == "groups.csv"
    assert info["sharedGroups"] == 0 and info["trainGroups"] + info["validationGroups"] == 3
    without = check_spec(given, fields=fields, datasets=("npz",), task="audio-classification")
    assert split_info(raw, without, 0, *split_indices(raw, without, 0)[:2])["trainGroups"] > 3  # its own 6 speakers


def test_a_groups_file_must_name_every_training_example(tmp_path):
    names = np.array(["a/0", "a/1", "b/2"])
    (tmp_path / "g.csv").write_text("a/0,s1\na/1,s2\n")
    with pytest.raises(DataError, match=r"dataset\.groupsFile: 1 training example\(s\) have no group, e.g. 'b/2'"):
        groups_from_file(names, "g.csv", tmp_path)
    (tmp_path / "bad.csv").write_text("a/0 s1\n")
    with pytest.raises(DataError, match=r"dataset\.groupsFile: line 1 'a/0 s1' is not name,group"):
        groups_from_file(names, "bad.csv", tmp_path)
    with pytest.raises(DataError, match=r"dataset\.groupsFile: .*missing\.csv is not a file"):
        groups_from_file(names, "missing.csv", tmp_path)
    with pytest.raises(DataError, match=r"dataset\.groupsFile: this dataset has no example names"):
        groups_from_file(None, "g.csv", tmp_path)
    assert list(groups_from_file(names[:2], "g.csv", tmp_path)) == ["s1", "s2"]
    with pytest.raises(InvalidTrial, match=r"dataset\.groupsFile: must be the path"):
        check_spec({"name": "digits", "groupsFile": 3})


def _issues(dataset: dict, task: str = "audio-classification") -> dict:
    root = Path(__file__).resolve().parents[2]
    kws = yaml.safe_load((root / "deploy/examples/words-kws-temporal.yaml").read_text())
    kws["spec"]["trial"]["task"] = task
    kws["spec"]["trial"]["dataset"] = dataset if task != "audio-classification" else \
        {**kws["spec"]["trial"]["dataset"], **dataset}
    return {issue.path: issue.message for issue in validate_experiment(kws)}


def test_validate_knows_groups_file():
    assert _issues({"groupsFile": "speakers.csv"}) == {}
    assert "spec.trial.dataset.groupsFile" in _issues({"groupsFile": ""})  # the schema: minLength 1
    built_in = _issues({"name": "digits", "groupsFile": "g.csv"}, task="image-classification")
    assert "no example names to match" in built_in["spec.trial.dataset.groupsFile"], built_in


def test_validate_knows_noise_files():
    assert _issues({"augment": {"noiseProbability": 0.5, "noiseFiles": "_background_noise_"}}) == {}
    refused = _issues({"augment": {"noiseFiles": "_background_noise_"}})
    assert "set noiseProbability above 0" in refused["spec.trial.dataset.augment.noiseFiles"], refused
