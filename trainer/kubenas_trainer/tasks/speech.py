"""Speech recognition on the task interface (``interface.TrialTask``): audio plus transcript,
a CTC head over characters (docs/tasks.md "Speech recognition").

Data: a ``manifest`` folder holding ``train.json`` and ``test.json`` (or ``.jsonl``), JSON
lines ``{"audio_filepath", "text", "duration"?, "speaker"?}`` (the NeMo / ESPnet manifest;
audio paths relative to the manifest), or an ``npz`` with ``x_train`` / ``x_test`` (clips),
``text_train`` / ``text_test``, ``sample_rate``, optional ``lengths_*`` (each clip's samples) and
``groups_train`` (speakers).
The speaker is the group: validation holds out whole speakers unless
``dataset.validation`` says otherwise (splits.py).

Front end: the log-mel features of audio.py over the whole clip (no crop, ``LogMel(crop=False)``),
normalised per channel with the training split's statistics; SpecAugment masks from
``dataset.augment`` (waveform augmentation is refused: clips here have their own lengths).

Network: the searched body is the encoder; its output keeps the time axis, and the head
(``CTCHead``) averages what is left of the frequency axis and maps every frame to
``vocabulary + 1`` logits (index 0 is the CTC blank, index ``i`` the vocabulary's
character ``i - 1``). The valid frames of a padded clip after the encoder's time
downsampling are ``ceil(frames * T_out / T_in)``. Loss: ``torch.nn.functional.ctc_loss``
(blank 0, ``zero_infinity``: an encoder that downsamples a clip below its transcript
costs nothing rather than NaN, and decodes badly). Decoding: greedy (best frame, collapse
repeats, drop blanks). Metrics: WER (the default objective, minimised), CER and the mean
CTC loss, by jiwer; WER and CER are also measured on the test split.

Export: ``N x L`` float32 waveforms (any L; rows padded with zeros) -> ``N x T`` int64 best
token per frame (``GreedyFrames``); decode a row by collapsing repeats and dropping 0,
with the metadata's ``vocabulary`` (``decode`` below does exactly that).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kubenas.contract.tasks import TASK_METRIC_GOALS

from kubenas_trainer.tasks import audio
from kubenas_trainer.data import Raw, read_raw, split_indices, split_info
from kubenas_trainer.errors import DataError, InvalidTrial
from kubenas_trainer.tasks.interface import ExportSpec, Loaders, Step, TensorSpec, TrialTask, evaluation_pass
from kubenas_trainer.models import build_model

SPEECH_METRICS = TASK_METRIC_GOALS["speech-recognition"]
BLANK = 0
MANIFEST_NAMES = ("json", "jsonl")


# --------------------------------------------------------------------------- transcripts


def check_vocabulary(value) -> str | None:
    """``dataset.vocabulary``: a string of distinct characters, or None (from the transcripts)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidTrial(f"dataset.vocabulary: must be a non-empty string of the transcripts' characters, "
                           f"got {value!r}")
    repeated = sorted({c for c in value if value.count(c) > 1})
    if repeated:
        raise InvalidTrial(f"dataset.vocabulary: lists {repeated[0]!r} more than once")
    return value


def normalise_text(text: str) -> str:
    """The transcript as scored: runs of whitespace become one space, ends stripped."""
    return " ".join(text.split())


def vocabulary_of(texts, given: str | None, where: list[str]) -> str:
    """The characters, in order (``given``, else sorted from ``texts``); DataError naming
    ``where[i]`` for a character outside ``given``."""
    if given is None:
        return "".join(sorted({c for t in texts for c in t}))
    allowed = set(given)
    for text, at in zip(texts, where):
        bad = sorted(set(text) - allowed)
        if bad:
            raise DataError(f"{at}: character {bad[0]!r} is not in dataset.vocabulary ({given!r}); add it to "
                            "the vocabulary or remove dataset.vocabulary to take it from the transcripts")
    return given


def encode(text: str, vocabulary: str) -> list[int]:
    index = {c: i + 1 for i, c in enumerate(vocabulary)}
    return [index[c] for c in text]


def decode(frame_ids, vocabulary: str) -> str:
    """Greedy CTC decoding of one clip's best token per frame: collapse repeats, drop the blank (0)."""
    out, previous = [], BLANK
    for t in (int(v) for v in frame_ids):
        if t != previous and t != BLANK:
            out.append(vocabulary[t - 1])
        previous = t
    return "".join(out)


# --------------------------------------------------------------------------- readers


def _manifest_file(root: Path, part: str) -> Path:
    for ext in MANIFEST_NAMES:
        if (root / f"{part}.{ext}").is_file():
            return root / f"{part}.{ext}"
    raise DataError(f"manifest: {root} must hold {part}.json (JSON lines with audio_filepath and text, "
                    "docs/tasks.md)")


def read_manifest(path: Path) -> tuple[list, list[int], list[str], list, list[str]]:
    """(clips, sample rates, transcripts, speakers (None where absent), where) of one manifest file;
    ``where[i]`` is ``file line N`` of example ``i``. DataError naming the line and field."""
    clips, rates, texts, speakers, where = [], [], [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{path.name} line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{at}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise DataError(f"{at}: must be a JSON object with audio_filepath and text")
        audio_path, text = entry.get("audio_filepath"), entry.get("text")
        if not isinstance(audio_path, str) or not audio_path:
            raise DataError(f"{at}: audio_filepath: required, the path of a WAV file (relative to the manifest)")
        if not isinstance(text, str) or not normalise_text(text):
            raise DataError(f"{at}: text: required, the clip's non-empty transcript")
        file = Path(audio_path) if os.path.isabs(audio_path) else path.parent / audio_path
        if not file.is_file():
            raise DataError(f"{at}: audio_filepath: {file} does not exist")
        wave, rate = audio.read_wav(file)
        clips.append(wave)
        rates.append(rate)
        texts.append(normalise_text(text))
        speaker = entry.get("speaker")
        speakers.append(None if speaker is None else str(speaker))
        where.append(at)
    if not clips:
        raise DataError(f"{path}: no examples")
    return clips, rates, texts, speakers, where


def _raw(train: tuple, test: tuple, groups) -> Raw:
    def objects(items) -> np.ndarray:  # a 1-D object array of clips, whatever their lengths
        out = np.empty(len(items), dtype=object)
        out[:] = list(items)
        return out

    return Raw(x_train=objects(train[0]), y_train=np.zeros(len(train[0]), dtype=np.int64),
               x_test=objects(test[0]), y_test=np.zeros(len(test[0]), dtype=np.int64), classes=[],
               groups=groups, names=np.array(train[3]),
               extra={"rates_train": train[1], "rates_test": test[1], "text_train": train[2],
                      "text_test": test[2], "where_train": train[3], "where_test": test[3]})


def read_manifest_folder(spec: dict) -> Raw:
    """The ``manifest`` dataset: ``train.json`` and ``test.json`` under ``dataset.path``."""
    root = Path(os.path.expanduser(str(spec["path"])))
    if not root.is_dir():
        raise DataError(f"manifest: dataset.path {root} must be a folder holding train.json and test.json")
    clips, rates, texts, speakers, where = read_manifest(_manifest_file(root, "train"))
    test = read_manifest(_manifest_file(root, "test"))
    named = [s is not None for s in speakers]
    if any(named) and not all(named):
        missing = where[named.index(False)]
        raise DataError(f"{missing}: speaker: every line needs one when some lines have one "
                        "(validation holds out whole speakers)")
    groups = np.array(speakers) if all(named) else None
    return _raw((clips, rates, texts, where), test[:3] + (test[4],), groups)


def read_speech_npz(spec: dict) -> Raw:
    """The ``npz`` dataset: ``x_*`` clips (N x L, zero-padded), ``text_*`` transcripts,
    ``sample_rate``, optional ``lengths_*`` (each clip's samples; default L) and ``groups_train``."""
    path = Path(os.path.expanduser(str(spec["path"])))
    with np.load(path, allow_pickle=False) as z:
        for key in ("x_train", "text_train", "x_test", "text_test", "sample_rate"):
            if key not in z:
                raise DataError(f"npz: {path} has no array {key!r} (speech recognition: x_train, text_train, "
                                "x_test, text_test, sample_rate; docs/tasks.md)")
        rate = int(z["sample_rate"])
        parts = []
        for part in ("train", "test"):
            x, text = z[f"x_{part}"], z[f"text_{part}"]
            if len(x) != len(text):
                raise DataError(f"npz: x_{part} has {len(x)} clips but text_{part} {len(text)} transcripts")
            texts = [normalise_text(str(t)) for t in text]
            where = [f"npz text_{part}[{i}]" for i in range(len(texts))]
            empty = next((w for w, t in zip(where, texts) if not t), None)
            if empty:
                raise DataError(f"{empty}: empty transcript")
            lengths = z[f"lengths_{part}"] if f"lengths_{part}" in z else np.full(len(x), x.shape[-1])
            if x.ndim != 2 or len(lengths) != len(x) or not ((lengths >= 1) & (lengths <= x.shape[-1])).all():
                raise DataError(f"npz: x_{part} must be N x L clips and lengths_{part} N lengths in 1..L")
            parts.append(([np.asarray(c[:n], dtype=np.float32) for c, n in zip(x, lengths)], [rate] * len(x),
                          texts, where))
        groups = np.array([str(g) for g in z["groups_train"]]) if "groups_train" in z else None
    return _raw(parts[0], parts[1], groups)


# --------------------------------------------------------------------------- batches


class Batch(NamedTuple):
    """Padded features ``N x C x H x T`` (zeros past each clip: the normalised mean), each
    clip's frames, the concatenated target ids, each transcript's length, the transcripts."""
    x: torch.Tensor
    frames: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    texts: list


class SpeechLoader:
    """Batches of clips (normalised features of their own lengths) padded to the longest in the batch."""

    def __init__(self, feats: list, targets: list, texts: list, batch_size: int, device, *, shuffle: bool = False,
                 generator: torch.Generator | None = None, max_batches: int | None = None, transform=None):
        self.feats, self.targets, self.texts = feats, targets, texts
        self.batch_size, self.device, self.shuffle, self.generator = batch_size, device, shuffle, generator
        self.max_batches, self.transform = max_batches, transform
        self.n = len(feats)

    def __len__(self) -> int:
        count = math.ceil(self.n / self.batch_size)
        return min(count, self.max_batches) if self.max_batches else count

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator).tolist() if self.shuffle else list(range(self.n))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            feats = [self.feats[i] for i in idx]
            longest = max(f.shape[-1] for f in feats)
            x = torch.stack([F.pad(f, (0, longest - f.shape[-1])) for f in feats]).to(self.device)
            if self.transform is not None:
                x = self.transform(x)
            yield Batch(x, torch.tensor([f.shape[-1] for f in feats], device=self.device),
                        torch.cat([self.targets[i] for i in idx]).to(self.device),
                        torch.tensor([len(self.targets[i]) for i in idx], device=self.device),
                        [self.texts[i] for i in idx])


# --------------------------------------------------------------------------- network


class CTCHead(nn.Module):
    """Encoder output ``N x C x H x T`` -> per-frame logits ``N x T x (vocabulary + 1)``:
    the mean over the frequency axis (H), then a linear layer per frame."""

    def __init__(self, channels: int, tokens: int):
        super().__init__()
        self.fc = nn.Linear(channels, tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=2).transpose(1, 2))


class GreedyFrames(nn.Module):
    """The exported model's last step: per-frame logits -> the best token id per frame (int64)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1)


def output_frames(frames: torch.Tensor, t_in: int, t_out: int) -> torch.Tensor:
    """The valid encoder frames of clips of ``frames`` input frames in a batch padded to ``t_in``."""
    return torch.clamp(torch.ceil(frames.double() * t_out / t_in).long(), 1, t_out)


# --------------------------------------------------------------------------- the task


class SpeechRecognitionTask(TrialTask):
    """Character CTC over the searched encoder (module docstring)."""

    metrics = SPEECH_METRICS
    test_metrics = ("wer", "cer")

    def __init__(self, name: str, fe: dict, aug: dict, vocabulary: str, splits: dict, mean: torch.Tensor,
                 std: torch.Tensor, info: dict):
        self.data_name, self.fe, self.aug, self.vocabulary = name, fe, aug, vocabulary
        self.splits = splits  # part -> (features, target ids, texts)
        self.mean, self.std, self.split = mean, std, info
        frames = sorted(f.shape[-1] for f in splits["train"][0])
        self.frames = int(frames[len(frames) // 2])  # the median clip: MACs and latency are of it
        self._shape = (*splits["train"][0][0].shape[:-1], self.frames)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self._shape)

    @property
    def tokens(self) -> int:
        return len(self.vocabulary) + 1

    def example(self, n: int = 1, device=None) -> torch.Tensor:
        return torch.randn(n, *self.input_shape, device=device)

    def loaders(self, training: dict, device, generator, memory_format) -> Loaders:
        transform = None
        if audio.Augment.needed(self.aug):
            transform = audio.Augment(self.aug, audio.LogMel(self.fe, crop=False), self.fe, generator).spec_augment
        train = SpeechLoader(*self.splits["train"], training["batchSize"], device, shuffle=True, generator=generator,
                             max_batches=training["maxTrainBatches"], transform=transform)
        val = SpeechLoader(*self.splits["val"], training["evalBatchSize"], device)
        test = SpeechLoader(*self.splits["test"], training["evalBatchSize"], device)
        return Loaders(train, val, test)

    def build_model(self, architecture, builder: str | None = None) -> nn.Module:
        if builder:  # the user's encoder ends in the CTC head too
            from kubenas_trainer.models.user_code import build_user_model

            return build_user_model(builder, architecture, self.input_shape, self.tokens)
        return build_model(architecture, self.input_shape, head=lambda channels: CTCHead(channels, self.tokens))

    def _loss(self, logits: torch.Tensor, batch: Batch, reduction: str) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = output_frames(batch.frames, batch.x.shape[-1], logits.shape[1])
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # T x N x tokens
        loss = F.ctc_loss(log_probs, batch.targets, lengths, batch.target_lengths, blank=BLANK,
                          reduction=reduction, zero_infinity=True)
        return loss, lengths

    def train_step(self, model: nn.Module, batch: Batch, training: dict) -> Step:
        loss, _ = self._loss(model(batch.x), batch, "mean")
        return Step(loss, len(batch.texts), {})

    def evaluate(self, model: nn.Module, loader: SpeechLoader, autocast=contextlib.nullcontext,
                 check: Callable[[], None] | None = None) -> dict[str, float]:
        """WER and CER (jiwer, over the whole split) of greedy decoding, and the mean CTC loss per clip."""
        import jiwer

        refs, hyps, losses = [], [], []

        def take(batch, logits) -> None:
            loss, lengths = self._loss(logits, batch, "sum")
            losses.append(float(loss))
            best = logits.argmax(-1).cpu()
            hyps.extend(decode(best[i, :int(n)], self.vocabulary) for i, n in enumerate(lengths.tolist()))
            refs.extend(batch.texts)

        evaluation_pass(model, loader, lambda batch: batch.x, take, autocast, check)
        return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps)),
                "loss": sum(losses, 0.0) / max(1, loader.n)}

    def saved_fields(self) -> dict:
        return {"inputShape": list(self.input_shape), "vocabulary": self.vocabulary, "blank": BLANK,
                "mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    def metadata_fields(self) -> dict:
        return {"dataset": self.data_name, "split": self.split, "vocabulary": self.vocabulary, "blank": BLANK,
                "frontEnd": self.fe, "sampleRate": self.fe["sampleRate"],
                "decode": "per row: take the frames of the clip, collapse repeated ids, drop 0 (the CTC blank); "
                          "id i > 0 is vocabulary[i - 1]"}

    def export_spec(self) -> ExportSpec:
        rate = self.fe["sampleRate"]
        samples = audio.clip_samples(self.fe)
        return ExportSpec(
            inputs=(TensorSpec("input", "FP32", (-1, -1)),),
            outputs=(TensorSpec("frame_ids", "INT64", (-1, -1)),),
            input_shape=self.input_shape, mean=self.mean.flatten().tolist(), std=self.std.flatten().tolist(),
            front=audio.LogMel(self.fe, crop=False),
            input_doc=(f"float32 N x L mono waveforms at {rate} Hz in [-1, 1], any L (rows of a batch zero-padded "
                       "at the end); returns int64 N x T, the best token per encoder frame (greedy CTC): collapse "
                       "repeats and drop 0 (blank) to read the transcript with the metadata's vocabulary"),
            example=torch.randn(2, samples) * 0.1, variable_length=True,
            wrap=lambda network: nn.Sequential(network, GreedyFrames()))


# --------------------------------------------------------------------------- loading


def _features(clips, rates, fe: dict, frontend: audio.LogMel) -> list[torch.Tensor]:
    out = []
    with torch.no_grad():
        for clip, rate in zip(clips, rates):
            wave = audio.resample(torch.from_numpy(np.asarray(clip, dtype=np.float32)), int(rate), fe["sampleRate"])
            if wave.numel() < fe["nFft"] // 2 + 1:
                wave = F.pad(wave, (0, fe["nFft"] // 2 + 1 - wave.numel()))
            out.append(frontend(wave[None])[0])  # C x H x T
    return out


def load_speech(spec: dict, seed: int, device: torch.device) -> SpeechRecognitionTask:
    """The ``speech-recognition`` task of a checked dataset spec (tasks.TASK_REGISTRY)."""
    fe = audio.check_front_end(spec.get("frontEnd"))
    aug = audio.check_augment(spec.get("augment"))
    for key in ("timeShiftSeconds", "noiseProbability"):
        if aug[key] > 0:
            raise InvalidTrial(f"dataset.augment.{key}: not supported for speech-recognition (clips keep their "
                               "own lengths); use freqMasks / timeMasks (SpecAugment)")
    given = check_vocabulary(spec.get("vocabulary"))
    raw = read_raw(spec, read_speech_npz if spec["name"] == "npz" else read_manifest_folder)
    ex = raw.extra
    vocabulary = vocabulary_of(ex["text_train"], given, ex["where_train"])
    vocabulary_of(ex["text_test"], vocabulary, ex["where_test"])  # the test split may not bring new characters
    train_idx, val_idx, test_idx = split_indices(raw, spec, seed)
    frontend = audio.LogMel(fe, crop=False)
    feats_train = _features(raw.x_train, ex["rates_train"], fe, frontend)
    feats_test = _features(raw.x_test, ex["rates_test"], fe, frontend)
    # Per-channel statistics over every frame of the training clips.
    frames = torch.cat([feats_train[i].flatten(1) for i in train_idx], dim=1)  # C x (H * frames)
    mean, std = frames.mean(1).view(1, -1, 1, 1), frames.std(1).clamp_min(1e-5).view(1, -1, 1, 1)

    def part(feats, texts, idx):
        norm = [((feats[i][None] - mean) / std)[0] for i in idx]
        return norm, [torch.tensor(encode(texts[i], vocabulary), dtype=torch.int64) for i in idx], \
            [texts[i] for i in idx]

    splits = {"train": part(feats_train, ex["text_train"], train_idx),
              "val": part(feats_train, ex["text_train"], val_idx),
              "test": part(feats_test, ex["text_test"], test_idx)}
    info = split_info(raw, spec, seed, train_idx, val_idx)
    return SpeechRecognitionTask(spec["name"], fe, aug, vocabulary, splits, mean, std, info)
