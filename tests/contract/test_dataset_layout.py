"""kubenas.contract.datasets: the folder layout a dataset read from files must have, one
check for the trainer's readers and for kubenas validate / run."""
from __future__ import annotations

import pytest

from kubenas.contract.datasets import layout_problem


def _tree(root, *paths):
    for path in paths:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("")
    return root


@pytest.mark.parametrize("name, paths, problem", [
    ("audio-folder", ("train/yes/", "test/yes/"), None),
    ("audio-folder", ("yes/", "testing_list.txt"), None),  # the Speech Commands layout
    ("audio-folder", ("train/yes/", "train/no/"), "has train/ but no test/ folder"),
    ("audio-folder", ("yes/", "no/"), "has no train/ folder (audio-folder: train/<class>/"),
    ("image-folder", ("train/cat/", "test/cat/"), None),
    ("image-folder", ("train/cat/",), "has train/ but no test/ folder"),
    ("jsonl", ("train.jsonl", "test.jsonl"), None),
    ("jsonl", ("train.jsonl",), "lacks test.jsonl"),
])
def test_a_folder_layout_is_checked_by_names_only(tmp_path, name, paths, problem):
    found = layout_problem(name, _tree(tmp_path / "data", *paths))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and str(tmp_path / "data") in found
        assert ("testing_list.txt" in found) == (name == "audio-folder")


def test_a_missing_path_is_named_and_built_in_datasets_have_no_layout(tmp_path):
    assert layout_problem("npz", tmp_path / "x.npz") == f"{tmp_path / 'x.npz'} does not exist"
    assert layout_problem("digits", tmp_path / "anything") is None
