"""The contract of a trial that runs the user's own program (``spec.trial.command``; docs/byo.md).

What kubenas hands the program (the candidate file and the environment), how it
substitutes ``${name}`` in the command, and the one text format of a metric report
(``kubenas: epoch=3 accuracy=0.912``), read from the program's output and from the
report file that :mod:`kubenas.report` writes. Pure functions, no I/O: the wrapper
(``kubenas-trial``, kubenas_trainer.reporting.wrapper), the API validation and ``kubenas.report``
all use these, so the format is written down once.
"""
from __future__ import annotations

import math
import re
from typing import Any

# ------------------------------------------------------------------- the environment

ENV_TRIAL_FILE = "KUBENAS_TRIAL_FILE"      # the candidate as JSON (candidate_document)
ENV_TRIAL_NAME = "KUBENAS_TRIAL_NAME"
ENV_TRIAL_INDEX = "KUBENAS_TRIAL_INDEX"
ENV_EXPERIMENT = "KUBENAS_EXPERIMENT"
ENV_SEED = "KUBENAS_SEED"
ENV_EPOCHS = "KUBENAS_EPOCHS"
ENV_REPORT_FILE = "KUBENAS_REPORT_FILE"    # metric lines appended by kubenas.report
ENV_RESULT_FILE = "KUBENAS_RESULT_FILE"    # optional: a JSON object of final metrics
ENV_OUTPUT_DIR = "KUBENAS_OUTPUT_DIR"      # a writable folder of this trial
ENV_MODEL_FILE = "KUBENAS_MODEL_FILE"      # optional: where a TorchScript model of the trial may go
# trial.checkpoint: kubenas cannot resume a program, which trains from scratch unless it opts in:
ENV_CHECKPOINT_FILE = "KUBENAS_CHECKPOINT_FILE"  # with save: where to write its state after its last epoch
ENV_RESUME_FROM = "KUBENAS_RESUME_FROM"          # with resumeFrom: that path or URL, to continue from if readable

CANDIDATE_VERSION = 1

# -------------------------------------------------------------------- metric lines

LINE_PREFIX = "kubenas:"
FINAL_WORD = "final"
_KEY = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_PAIR = re.compile(rf"^({_KEY})=(\S+)$")
_KEY_RE = re.compile(rf"^{_KEY}$")


class ReportError(ValueError):
    """A metric report that does not follow the format (names what is wrong)."""


def format_report(values: dict, *, final: bool = False) -> str:
    """``kubenas: epoch=3 accuracy=0.912`` (or ``kubenas: final accuracy=0.95``), one line."""
    if not final and "epoch" not in values:
        raise ReportError("an intermediate report needs epoch=N (use final(...) for the end result)")
    parts = [LINE_PREFIX] + ([FINAL_WORD] if final else [])
    for key, value in values.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ReportError(f"metric name {key!r}: use letters, digits, _ . - (not starting with a digit)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReportError(f"{key}: must be a number, got {value!r}")
        if key == "epoch" and (value != int(value) or value < 1):
            raise ReportError(f"epoch: must be a whole number >= 1, got {value!r}")
        parts.append(f"{key}={int(value) if key == 'epoch' else repr(float(value))}")
    return " ".join(parts)


def parse_report(line: str) -> tuple[str, dict] | None:
    """("epoch", values) or ("final", values) for a metric line; None for any other line.

    A line that starts with ``kubenas:`` but is malformed raises ReportError, so a typo
    is reported instead of silently dropped. Non-finite values (nan, inf) are kept as
    float("nan")/inf: a diverged program says so.
    """
    text = line.strip()
    if not text.startswith(LINE_PREFIX):
        return None
    words = text[len(LINE_PREFIX):].split()
    kind = "epoch"
    if words and words[0] == FINAL_WORD:
        kind, words = "final", words[1:]
    values: dict[str, float] = {}
    for word in words:
        match = _PAIR.match(word)
        if not match:
            raise ReportError(f"{word!r} is not name=number (a report line reads "
                              "'kubenas: epoch=3 accuracy=0.912' or 'kubenas: final accuracy=0.95')")
        key, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise ReportError(f"{key}={raw}: {raw!r} is not a number") from None
        values[key] = value
    if kind == "epoch":
        epoch = values.get("epoch")
        if epoch is None or not math.isfinite(epoch) or epoch != int(epoch) or epoch < 1:
            raise ReportError(f"{text!r}: an epoch report needs epoch=N (a whole number >= 1)")
        values["epoch"] = int(epoch)
    if not [k for k in values if k != "epoch"]:
        raise ReportError(f"{text!r}: reports no metric")
    return kind, values


# ---------------------------------------------------------------- the candidate file

BUILTIN_NAMES = ("trial", "index", "experiment", "seed", "epochs", "trialFile", "outputDir")
_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def assignment(trial: dict) -> dict | None:
    """The decisions of a ``parameters`` space candidate (docs/byo.md), else None."""
    architecture = trial.get("architecture")
    if isinstance(architecture, dict) and architecture.get("type") == "parameters":
        return architecture.get("parameters") or {}
    return None


def scalar_values(trial: dict) -> dict:
    """The scalar values a command may name: a ``parameters`` candidate's decisions,
    flattened (``norm``, ``norm.momentum``, ``layers``, ``layers[1].width``), and the
    searched hyperparameters."""
    out: dict[str, Any] = {}
    decisions = assignment(trial)
    if decisions is not None:
        from .parameters import flatten

        out.update({k: v for k, v in flatten(decisions).items() if _is_scalar(v)})
    out.update({k: v for k, v in (trial.get("hyperparameters") or {}).items() if _is_scalar(v)})
    return out


def _is_scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool)) and not (isinstance(value, float) and not math.isfinite(value))


def candidate_document(trial: dict, *, trial_file: str, output_dir: str) -> dict:
    """What ``$KUBENAS_TRIAL_FILE`` holds: the candidate and the trial's settings."""
    training = trial.get("training") or {}
    name = trial.get("name") or f"{trial.get('experiment', '')}-{trial.get('index', 0)}"
    return {
        "version": CANDIDATE_VERSION,
        "experiment": trial.get("experiment", ""),
        "trial": name,
        "index": trial.get("index", 0),
        "seed": training.get("seed", 0),
        "epochs": training.get("epochs"),
        "timeoutSeconds": trial.get("timeoutSeconds"),
        "architecture": trial.get("architecture"),
        "parameters": assignment(trial),
        "hyperparameters": trial.get("hyperparameters") or {},
        "values": scalar_values(trial),
        "objective": trial.get("objective") or {},
        "dataset": trial.get("dataset") or {},
        "training": training,
        "trialFile": trial_file,
        "outputDir": output_dir,
    }


def environment(document: dict, *, report_file: str, result_file: str, model_file: str | None,
                checkpoint_file: str | None = None, resume_from: str | None = None) -> dict:
    """The environment variables a user program gets (strings)."""
    env = {ENV_TRIAL_FILE: document["trialFile"], ENV_TRIAL_NAME: str(document["trial"]),
           ENV_TRIAL_INDEX: str(document["index"]), ENV_EXPERIMENT: str(document["experiment"]),
           ENV_SEED: str(document["seed"]), ENV_OUTPUT_DIR: document["outputDir"],
           ENV_REPORT_FILE: report_file, ENV_RESULT_FILE: result_file}
    if document.get("epochs") is not None:
        env[ENV_EPOCHS] = str(document["epochs"])
    if model_file:
        env[ENV_MODEL_FILE] = model_file
    if checkpoint_file:
        env[ENV_CHECKPOINT_FILE] = checkpoint_file
    if resume_from:
        env[ENV_RESUME_FROM] = resume_from
    return env


def references(command: list) -> list[tuple[int, str]]:
    """(argument index, name) of every ``${name}`` in a command (``$${`` is a literal ``${``)."""
    found = []
    for i, arg in enumerate(command):
        for match in _REFERENCE.finditer(str(arg).replace("$${", "\0")):
            found.append((i, match.group(1)))
    return found


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(command: list, document: dict) -> list[str]:
    """The command with every ``${name}`` replaced by the candidate's value.

    Names: the decisions and hyperparameters with scalar values (``values``) and
    BUILTIN_NAMES. KeyError names the first reference that has no scalar value.
    """
    known = {name: document[name] for name in BUILTIN_NAMES}
    known.update(document["values"])

    def one(arg: str) -> str:
        def repl(match):
            name = match.group(1)
            if name not in known:
                raise KeyError(name)
            return _text(known[name])

        return _REFERENCE.sub(repl, str(arg).replace("$${", "\0")).replace("\0", "${")

    return [one(arg) for arg in command]
