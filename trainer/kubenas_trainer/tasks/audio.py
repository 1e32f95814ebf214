"""Audio classification: waveform readers, the torch front end, audio augmentation.

Front end (``dataset.frontEnd``, docs/tasks.md), all in torch on the training device
(torchaudio is not a dependency): resample each clip to ``sampleRate`` (band-limited,
by the FFT), crop (centred) or zero-pad (both sides) to ``clipSeconds``, then a log-mel
spectrogram: ``log(mel(|STFT|^2) + 1e-6)`` with a periodic Hann window of ``nFft``
samples, hop ``hopLength``, ``nMels`` triangular HTK-mel filters from ``fMin`` to ``fMax``.
``layout: image`` feeds the network ``1 x nMels x frames`` (2-D convs over time and
frequency); ``layout: temporal`` feeds ``nMels x 1 x frames`` (mel bins as channels, for
the temporal ops ``tconv`` / ``sep_tconv`` of a keyword-spotting space).

Features are computed once per dataset and front end, in batches on the device, and
cached in the process; only augmentation that changes the waveform (time shift, noise)
recomputes them, per training batch.

Augmentation (``dataset.augment``), all off by default and applied to training batches
only: ``timeShiftSeconds`` (a random circular shift of up to that much, either way),
``noiseProbability`` / ``noiseSnrDb`` (noise at that signal-to-noise ratio: Gaussian, or
with ``noiseFiles`` a random crop of a random background-noise clip, ``read_noise``),
SpecAugment masks ``freqMasks`` x ``freqMaskWidth`` bins and ``timeMasks`` x
``timeMaskWidth`` frames (masked to the batch mean).
"""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kubenas.contract.datasets import SPEECH_COMMANDS_TEST_LIST, layout_problem

from kubenas_trainer.data import NPZ_SPLITS, Raw, _require_path, dataset_block, npz_side_arrays, read_npz
from kubenas_trainer.errors import DataError, InvalidTrial

AUDIO_EXTENSIONS = (".wav",)
NOISE_FOLDER = "_background_noise_"
SPEAKER_SEPARATOR = "_nohash_"
LAYOUTS = ("image", "temporal")

FRONT_END_DEFAULTS = {"sampleRate": 16000, "clipSeconds": 1.0, "nFft": 512, "hopLength": 160, "nMels": 40,
                      "fMin": 20.0, "fMax": None, "layout": "image"}
AUGMENT_DEFAULTS = {"timeShiftSeconds": 0.0, "noiseProbability": 0.0, "noiseSnrDb": 20.0, "noiseFiles": None,
                    "freqMasks": 0, "freqMaskWidth": 8, "timeMasks": 0, "timeMaskWidth": 10}
_INTS = ("sampleRate", "nFft", "hopLength", "nMels", "freqMasks", "freqMaskWidth", "timeMasks", "timeMaskWidth")


def _check_block(value, defaults: dict, where: str) -> dict:
    out = dataset_block(value, defaults, where)
    for key, v in out.items():
        path = f"dataset.{where}.{key}"
        if key == "noiseFiles":
            if v is not None and not (isinstance(v, str) and v.strip()):
                raise InvalidTrial(f"{path}: must be the path of a folder of WAV clips or an npz with a noise "
                                   f"array, got {v!r}")
            continue
        if key == "layout":
            if v not in LAYOUTS:
                raise InvalidTrial(f"{path}: {v!r} is not one of {', '.join(LAYOUTS)}")
        elif v is None and defaults[key] is None:
            continue
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidTrial(f"{path}: must be a number, got {v!r}")
        elif key in _INTS and v != int(v):
            raise InvalidTrial(f"{path}: must be an integer, got {v!r}")
        elif key == "noiseProbability" and not 0 <= v <= 1:
            raise InvalidTrial(f"{path}: must be between 0 and 1, got {v!r}")
        elif key not in ("noiseSnrDb",) and v < 0:
            raise InvalidTrial(f"{path}: must not be negative, got {v!r}")
        if key in _INTS and v is not None:
            out[key] = int(v)
    return out


def check_front_end(value) -> dict:
    """``dataset.frontEnd`` with defaults filled; InvalidTrial naming the field."""
    fe = _check_block(value, FRONT_END_DEFAULTS, "frontEnd")
    for key in ("sampleRate", "nFft", "hopLength", "nMels"):
        if fe[key] < 1:
            raise InvalidTrial(f"dataset.frontEnd.{key}: must be at least 1, got {fe[key]}")
    if fe["clipSeconds"] <= 0:
        raise InvalidTrial(f"dataset.frontEnd.clipSeconds: must be positive, got {fe['clipSeconds']}")
    nyquist = fe["sampleRate"] / 2
    f_max = nyquist if fe["fMax"] is None else float(fe["fMax"])
    if not 0 <= fe["fMin"] < f_max <= nyquist:
        raise InvalidTrial(f"dataset.frontEnd.fMax: need 0 <= fMin < fMax <= sampleRate / 2 ({nyquist:g}), "
                           f"got fMin={fe['fMin']:g}, fMax={f_max:g}")
    samples = clip_samples(fe)
    if fe["nFft"] > max(samples, 2) * 4:
        raise InvalidTrial(f"dataset.frontEnd.nFft: {fe['nFft']} is far longer than the clip ({samples} samples)")
    return {**fe, "fMin": float(fe["fMin"]), "fMax": f_max, "clipSeconds": float(fe["clipSeconds"])}


def check_augment(value) -> dict:
    aug = _check_block(value, AUGMENT_DEFAULTS, "augment")
    if aug["noiseFiles"] and aug["noiseProbability"] <= 0:
        raise InvalidTrial("dataset.augment.noiseFiles: mixed into a take with probability noiseProbability, "
                           "which is 0; set noiseProbability above 0 or remove noiseFiles")
    return aug


def read_noise(path: str, root: Path | None, fe: dict) -> list[torch.Tensor]:
    """The background-noise clips of ``augment.noiseFiles`` at the front end's sample rate,
    each tiled to at least one clip length: a folder of WAV files (Speech Commands'
    ``_background_noise_``) or an npz with ``noise`` (one clip, or clips x samples) and
    ``sample_rate``. A relative path is read from ``dataset.path``'s folder."""
    p = Path(os.path.expanduser(path))
    if not p.is_absolute() and root is not None:
        p = (root if root.is_dir() else root.parent) / p
    if p.is_dir():
        clips = [read_wav(f) for f in sorted(p.glob("*.wav"))]
    elif p.is_file() and p.suffix == ".npz":
        with np.load(p) as npz:
            if "noise" not in npz.files:
                raise DataError(f"dataset.augment.noiseFiles: {p} has no noise array")
            noise = np.asarray(npz["noise"], dtype=np.float32)
            rate = int(npz["sample_rate"]) if "sample_rate" in npz.files else fe["sampleRate"]
        clips = [(c, rate) for c in (noise[None] if noise.ndim == 1 else noise)]
    else:
        raise DataError(f"dataset.augment.noiseFiles: {p} is neither a folder of WAV files nor an .npz file")
    n = clip_samples(fe)
    out = []
    for samples, rate in clips:
        clip = resample(torch.from_numpy(np.asarray(samples, dtype=np.float32)), rate, fe["sampleRate"])
        if clip.numel() == 0 or float(clip.pow(2).mean()) <= 0:
            continue
        out.append(clip.repeat(-(-n // clip.numel())))
    if not out:
        raise DataError(f"dataset.augment.noiseFiles: {p} holds no non-silent clip")
    return out


def clip_samples(fe: dict) -> int:
    return max(1, int(round(fe["clipSeconds"] * fe["sampleRate"])))


# --------------------------------------------------------------------------- front end (torch)


def resample(x: torch.Tensor, rate_in: int, rate_out: int) -> torch.Tensor:
    """Band-limited resampling of the last axis by the FFT (as scipy.signal.resample)."""
    if rate_in == rate_out:
        return x
    n_in = x.shape[-1]
    n_out = max(1, int(round(n_in * rate_out / rate_in)))
    spectrum = torch.fft.rfft(x.float(), dim=-1)
    keep = min(spectrum.shape[-1], n_out // 2 + 1)
    return torch.fft.irfft(spectrum[..., :keep], n=n_out, dim=-1) * (n_out / n_in)


def fit_length(x: torch.Tensor, n: int) -> torch.Tensor:
    """Crop (centred: ``(length - n) // 2`` samples off the start) or zero-pad (both sides:
    ``(n - length) // 2`` zeros before) the last axis to ``n`` samples.

    Written without a branch on the length, as tensor arithmetic on the input's shape,
    so that scripting, tracing and the ONNX export all keep it a function of the length
    (a traced ``if length > n`` would freeze the example's length into the model)."""
    length = torch._shape_as_tensor(x)[-1]
    offset = torch.div(length - n, 2, rounding_mode="trunc")  # crop start, or minus the left padding
    index = torch.arange(n, device=x.device) + (offset + n)
    return torch.nn.functional.pad(x, (n, n)).index_select(-1, index)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    """``(n_fft // 2 + 1) x n_mels`` triangular filters, equally spaced on the HTK mel scale."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    points = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]
    up = (freqs[None] - lower) / np.maximum(centre - lower, 1e-9)
    down = (upper - freqs[None]) / np.maximum(upper - centre, 1e-9)
    return torch.from_numpy(np.maximum(0.0, np.minimum(up, down)).T.astype(np.float32))


class LogMel(nn.Module):
    """Waveform ``N x L`` (at ``sampleRate``) -> log-mel ``N x 1 x nMels x frames``
    (``layout: image``) or ``N x nMels x 1 x frames`` (``layout: temporal``).
    Crops or pads to ``clipSeconds`` first, for any input length ``L`` (``crop=False``:
    every frame of the clip as it is, for speech recognition). Scriptable, and
    traceable without freezing ``L`` (the ONNX export), checked by export.py on clips
    shorter and longer than ``clipSeconds``."""

    def __init__(self, fe: dict, crop: bool = True):
        super().__init__()
        self.crop = crop
        self.n_fft = int(fe["nFft"])
        self.hop = int(fe["hopLength"])
        self.samples = clip_samples(fe)
        self.temporal = fe["layout"] == "temporal"
        self.register_buffer("window", torch.hann_window(self.n_fft))
        self.register_buffer("fbank", mel_filterbank(self.n_fft, int(fe["nMels"]), int(fe["sampleRate"]),
                                                     float(fe["fMin"]), float(fe["fMax"])))

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave.float()
        if self.crop:
            wave = fit_length(wave, self.samples)
        if torch.jit.is_tracing():
            # Traced only by the ONNX export (TorchScript is scripted): ONNX's STFT has no
            # complex output, so (real, imag) pairs, same values.
            pairs = torch.stft(wave, self.n_fft, self.hop, self.n_fft, self.window, center=True, return_complex=False)
            power = (pairs * pairs).sum(-1)
        else:
            spec = torch.stft(wave, self.n_fft, self.hop, self.n_fft, self.window, center=True, return_complex=True)
            power = spec.real * spec.real + spec.imag * spec.imag  # N x freq x frames
        return torch.matmul(power.transpose(1, 2), self.fbank).transpose(1, 2)  # N x mels x frames

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        logmel = torch.log(self.power_mel(wave) + 1e-6)
        return logmel.unsqueeze(2) if self.temporal else logmel.unsqueeze(1)


def waveforms(raw_x, rates, fe: dict, device: torch.device, chunk: int = 512) -> torch.Tensor:
    """Clips (an N x L array at one rate, or a list of 1-D arrays with a rate each)
    resampled to ``sampleRate`` and cropped/padded to ``clipSeconds``: float32 N x L on ``device``."""
    n = clip_samples(fe)
    target = int(fe["sampleRate"])
    if isinstance(raw_x, np.ndarray) and raw_x.dtype != object:
        out = []
        for start in range(0, len(raw_x), chunk):
            part = torch.from_numpy(np.array(raw_x[start:start + chunk], dtype=np.float32)).to(device)
            out.append(fit_length(resample(part, int(rates), target), n))
        return torch.cat(out) if out else torch.zeros(0, n, device=device)
    clips = [fit_length(resample(torch.from_numpy(np.asarray(c, dtype=np.float32)).to(device), int(r), target), n)
             for c, r in zip(raw_x, rates)]
    return torch.stack(clips) if clips else torch.zeros(0, n, device=device)


def features(wave: torch.Tensor, frontend: LogMel, chunk: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([frontend(wave[i:i + chunk]) for i in range(0, wave.shape[0], chunk)])


# --------------------------------------------------------------------------- augmentation


class Augment:
    """The training-batch transform of ``dataset.augment``: waveform -> features when time
    shift or noise is on (``on_waveform``), else features -> features (SpecAugment only)."""

    def __init__(self, aug: dict, frontend: LogMel, fe: dict, generator: torch.Generator,
                 noise: list[torch.Tensor] | None = None):
        self.aug = aug
        self.noise = noise
        self.frontend = frontend
        self.shift = int(round(aug["timeShiftSeconds"] * fe["sampleRate"]))
        self.generator = generator
        self.on_waveform = self.shift > 0 or aug["noiseProbability"] > 0

    @staticmethod
    def needed(aug: dict) -> bool:
        return any(aug[k] > 0 for k in ("timeShiftSeconds", "noiseProbability", "freqMasks", "timeMasks"))

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.on_waveform:
            x = self.waveform(x)
            x = self.frontend(x)
        return self.spec_augment(x)

    def waveform(self, wave: torch.Tensor) -> torch.Tensor:
        n = wave.shape[0]
        if self.shift > 0:
            shifts = ((self._rand(n) * 2 - 1) * self.shift).round().long().tolist()
            wave = torch.stack([torch.roll(w, s) for w, s in zip(wave, shifts)])
        if self.aug["noiseProbability"] > 0:
            power = wave.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-12)
            noise_power = power / (10 ** (self.aug["noiseSnrDb"] / 10))
            if self.noise:
                noise = self._background(n, wave.shape[1]).to(wave.device)
                noise = noise / noise.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-12).sqrt()
            else:
                noise = torch.randn(wave.shape, generator=self.generator).to(wave.device)
            noise = noise * noise_power.sqrt()
            use = (self._rand(n, 1) < self.aug["noiseProbability"]).to(wave.device)
            wave = wave + noise * use
        return wave

    def _background(self, n: int, length: int) -> torch.Tensor:
        """``n`` random crops of ``length`` samples from random background-noise clips."""
        picks = (self._rand(n) * len(self.noise)).long().clamp_max(len(self.noise) - 1).tolist()
        starts = self._rand(n).tolist()
        crops = []
        for k, u in zip(picks, starts):
            clip = self.noise[k]
            at = int(u * (clip.numel() - length + 1))
            crops.append(clip[at:at + length])
        return torch.stack(crops)

    def spec_augment(self, x: torch.Tensor) -> torch.Tensor:
        freq_axis, time_axis = (1, 3) if self.frontend.temporal else (2, 3)
        if not (self.aug["freqMasks"] or self.aug["timeMasks"]):
            return x
        x = x.clone()
        fill = x.mean()
        for axis, count, width in ((freq_axis, self.aug["freqMasks"], self.aug["freqMaskWidth"]),
                                   (time_axis, self.aug["timeMasks"], self.aug["timeMaskWidth"])):
            size = x.shape[axis]
            for _ in range(count):
                widths = (self._rand(x.shape[0]) * (min(width, size) + 1)).long()
                starts = (self._rand(x.shape[0]) * (size - widths + 1).float()).long()
                pos = torch.arange(size)
                mask = (pos[None] >= starts[:, None]) & (pos[None] < (starts + widths)[:, None])  # N x size
                shape = [x.shape[0], 1, 1, 1]
                shape[axis] = size
                x = torch.where(mask.view(shape).to(x.device), fill, x)
        return x


# --------------------------------------------------------------------------- readers


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sample rate) of a PCM or float WAV file."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"audio-folder: cannot read {path}: {exc}") from exc
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    elif data.dtype.kind == "u":
        data = (data.astype(np.float32) - 128.0) / 128.0
    data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    return data, int(rate)


def _group_of(name: str) -> str | None:
    return name.split(SPEAKER_SEPARATOR)[0] if SPEAKER_SEPARATOR in name else None


def _wavs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def read_audio_folder(spec: dict) -> Raw:
    """Two layouts: ``train/<class>/[<group>/]*.wav`` + ``test/<class>/...`` or the Speech
    Commands one, ``<class>/*.wav`` with ``testing_list.txt`` naming the test files.

    The group of a file is the folder level between the class and the file when there is
    one, else the part of its name before ``_nohash_`` (the Speech Commands speaker id).
    An example's name (what ``validation.files`` lists) is ``<class>/<path below it>``."""
    root = _require_path(spec)
    problem = layout_problem("audio-folder", root)  # what `kubenas validate` says too
    if problem:
        raise DataError(f"audio-folder: {problem}")
    if (root / "train").is_dir():
        train_root, test_root, test_list = root / "train", root / "test", None
    else:
        train_root = test_root = root
        test_list = {line.strip() for line in (root / SPEECH_COMMANDS_TEST_LIST).read_text().splitlines()
                     if line.strip()}
    classes = sorted(p.name for p in train_root.iterdir()
                     if p.is_dir() and p.name not in ("train", "test", NOISE_FOLDER) and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"audio-folder: {train_root} must hold one folder per class (found {len(classes)})")

    def collect(base: Path, want_test: bool | None):
        items = []
        for index, cls in enumerate(classes):
            folder = base / cls
            if not folder.is_dir():
                continue
            for path in _wavs(folder):
                name = f"{cls}/{path.relative_to(folder).as_posix()}"
                if want_test is not None and (name in test_list) != want_test:
                    continue
                rel = path.relative_to(folder).parts
                group = rel[0] if len(rel) > 1 else _group_of(path.name)
                items.append((path, index, name, group))
        return items

    train_items = collect(train_root, False if test_list is not None else None)
    test_items = collect(test_root, True if test_list is not None else None)
    for items, where in ((train_items, train_root), (test_items, test_root)):
        if not items:
            raise DataError(f"audio-folder: no .wav files for {'training' if items is train_items else 'testing'} "
                            f"under {where}")

    def load(items):
        clips, rates = [], []
        for path, *_ in items:
            data, rate = read_wav(path)
            clips.append(data)
            rates.append(rate)
        arr = np.empty(len(clips), dtype=object)
        arr[:] = clips
        return arr, np.array(rates), np.array([c for _, c, _, _ in items], dtype=np.int64)

    x_tr, rates_tr, y_tr = load(train_items)
    x_te, rates_te, y_te = load(test_items)
    groups = [g for *_, g in train_items]
    group_arr = np.array(groups, dtype=str) if all(g is not None for g in groups) else None
    names = np.array([n for _, _, n, _ in train_items], dtype=str)
    return Raw(x_tr, y_tr, x_te, y_te, classes, 1.0, group_arr, names,
               extra={"rates_train": rates_tr, "rates_test": rates_te})


def read_audio_npz(spec: dict) -> Raw:
    """``x_train``/``x_test``: N x L waveforms (float in [-1, 1], or int16), ``y_*``,
    ``sample_rate`` (a scalar), optional ``groups_train``, ``names_train``, ``classes``."""
    path, a = read_npz(spec, NPZ_SPLITS + ("sample_rate",), holds="an audio npz holds N x L waveforms and their "
                                                                  "sample_rate")
    xs, ys = [], []
    for part in ("train", "test"):
        x, y = a[f"x_{part}"], np.asarray(a[f"y_{part}"]).reshape(-1)
        if x.ndim != 2:
            raise DataError(f"npz: x_{part} must be N x L waveforms (mono), got shape {x.shape}")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"npz: x_{part} has {x.shape[0]} clips but y_{part} has {y.shape[0]} labels")
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise DataError(f"npz: x_{part} contains NaN or infinite values")
        if y.size and (not np.issubdtype(y.dtype, np.number) or np.any(y != np.round(y)) or y.min() < 0):
            raise DataError(f"npz: y_{part} must hold non-negative integer class indices")
        xs.append(x)
        ys.append(y.astype(np.int64))
    rate = np.asarray(a["sample_rate"]).reshape(-1)
    if rate.size != 1 or not rate[0] > 0:
        raise DataError(f"npz: sample_rate must be one positive number, got {a['sample_rate']!r}")
    num_classes = int(max(ys[0].max(initial=0), ys[1].max(initial=0))) + 1
    names = [str(c) for c in a["classes"]] if "classes" in a else None
    classes = names if names and len(names) >= num_classes else [str(i) for i in range(num_classes)]
    groups, example_names = npz_side_arrays(a, len(ys[0]), path)
    rate_value = int(rate[0])
    return Raw(xs[0], ys[0], xs[1], ys[1], classes, 1.0, groups, example_names,
               extra={"rates_train": rate_value, "rates_test": rate_value})


@functools.lru_cache(maxsize=4)
def cached_features(raw: Raw, fe_key: tuple, device_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel features of every training and every test clip, computed once per dataset
    and front end in this process (on ``device_name``)."""
    fe = dict(fe_key)
    device = torch.device(device_name)
    frontend = LogMel(fe).to(device)
    out = []
    for x, rates in ((raw.x_train, raw.extra["rates_train"]), (raw.x_test, raw.extra["rates_test"])):
        out.append(features(waveforms(x, rates, fe, device), frontend))
    return out[0], out[1]
