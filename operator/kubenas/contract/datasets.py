"""The files a dataset read from ``dataset.path`` must have: one check of the layout, for
the trainer's readers and for ``kubenas validate`` / ``kubenas run`` on the machine that
holds the data (the operator never sees the files: they are on the trial pods' volumes).

``layout_problem(name, path)`` looks at names only (folders and files present), never
reads a file, so it is cheap enough to run before any trial starts; the readers still
report what is wrong inside a file.
"""
from __future__ import annotations

from pathlib import Path

SPEECH_COMMANDS_TEST_LIST = "testing_list.txt"

_FOLDER_LAYOUT = {
    "audio-folder": ("train/<class>/[<speaker>/]*.wav and test/<class>/*.wav, or the Speech Commands "
                     f"layout (<class>/*.wav with {SPEECH_COMMANDS_TEST_LIST} naming the test files)"),
    "image-folder": "train/<class>/*.png and test/<class>/*.png",
}
_TEST_SPLIT = ("the test split is the held-out data the result's test accuracy is measured on (never used to "
               "pick an architecture)")


def layout_problem(name: str, path: str | Path) -> str | None:
    """What is missing at ``path`` for dataset ``name`` (the message names the path and the
    layout expected), or None when the layout is there. Datasets not read from files: None."""
    p = Path(path).expanduser()
    if name in ("npz", "mnist", "fashion-mnist", "cifar10", "jsonl", "image-folder", "audio-folder") \
            and not p.exists():
        return f"{p} does not exist"
    if name == "jsonl":
        missing = [f for f in ("train.jsonl", "test.jsonl") if not (p / f).is_file()]
        if missing:
            return (f"{p} lacks {' and '.join(missing)} (a jsonl dataset is a folder with train.jsonl and "
                    f"test.jsonl; {_TEST_SPLIT})")
        return None
    if name not in _FOLDER_LAYOUT:
        return None
    if not p.is_dir():
        return f"{p} is not a directory ({name}: {_FOLDER_LAYOUT[name]})"
    if (p / "train").is_dir():
        if not (p / "test").is_dir():
            return (f"{p} has train/ but no test/ folder: put held-out examples in {p / 'test'}/<class>/ "
                    f"({_TEST_SPLIT}; e.g. other speakers' clips)"
                    + (f", or use the Speech Commands layout with {SPEECH_COMMANDS_TEST_LIST}"
                       if name == "audio-folder" else ""))
        return None
    if name == "audio-folder" and (p / SPEECH_COMMANDS_TEST_LIST).is_file():
        return None
    return f"{p} has no train/ folder ({name}: {_FOLDER_LAYOUT[name]})"
