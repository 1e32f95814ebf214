"""Synthetic data sets for the examples and tests (numpy only, nothing downloaded).

``spoken_words``: "keywords" said by "speakers". A word is two vowels, each a harmonic
tone shaped by the vowel's two formants (the cue that carries over to new speakers),
at the speaker's own pitch, timbre (harmonic roll-off), vocal-tract length (formant
scale) and speaking rate. Every speaker
also has a private tic per word (a short whistle at a speaker- and word-specific
frequency and time): a network can recognise seen speakers by it, so a validation split
that shares speakers with training rewards memorising voices, while the test speakers
are new. Each example's group is its speaker.

``token_sequences``: token-id sequences of varying length whose class is the motif
(a fixed run of tokens) hidden at a random place among background tokens drawn from
the "user"'s own vocabulary; each example's group is its user.

    python -m kubenas_trainer.data.synthetic words out.npz
    python -m kubenas_trainer.data.synthetic sequences out.npz
    python -m kubenas_trainer.data.synthetic habits out.npz
    python -m kubenas_trainer.data.synthetic speech out-folder

``spoken_strings``: speech recognition, strings of those vowel words said by speakers,
written as NeMo-style manifests and WAV files (``write_manifests``).

``speaker_habits``: whistled calls whose word is a pitch contour, where every training
speaker also has a private habit per word; made so that memorising speakers wins a
random validation split and loses on new speakers (the test of speaker-disjoint
validation, tests/trainer/test_group_validation.py).
"""
from __future__ import annotations

import argparse

import numpy as np

VOWELS = {"i": (270, 2290), "a": (730, 1090), "u": (300, 870), "e": (530, 1840)}  # F1, F2 in Hz
WORDS = {"ia": ("i", "a"), "ue": ("u", "e"), "au": ("a", "u"), "ei": ("e", "i")}


def _speaker(rng: np.random.RandomState, sample_rate: int, words: int) -> dict:
    return {
        "f0": rng.uniform(100, 180),
        "rolloff": rng.uniform(0.8, 1.4),
        "tract": rng.uniform(0.93, 1.07),
        "rate": rng.uniform(0.8, 1.2),
        "tics": [(rng.uniform(400, sample_rate / 2 - 300), rng.uniform(0.0, 0.7)) for _ in range(words)],
    }


def _utterance(rng, spk: dict, vowels, tic, sample_rate: int, samples: int, tic_level: float) -> np.ndarray:
    t = np.arange(samples) / sample_rate
    out = np.zeros(samples)
    seg = samples / 2 * 0.8 * spk["rate"] * rng.uniform(0.95, 1.05)
    start = rng.uniform(0, max(1.0, samples - 2 * seg))
    f0 = spk["f0"] * rng.uniform(0.97, 1.03)
    for i, vowel in enumerate(vowels):
        a, b = int(start + i * seg), min(samples, int(start + (i + 1) * seg))
        if b <= a:
            continue
        out[a:b] += _vowel(rng, spk, vowel, f0, t[a:b], sample_rate)
    _mark(out, t, tic, samples // 6, tic_level)
    return _finish(out, rng, 0.02)


def _vowel(rng, spk: dict, vowel: str, f0: float, t: np.ndarray, sample_rate: int) -> np.ndarray:
    """One vowel at times ``t``: harmonics of ``f0`` shaped by the vowel's formants (scaled by
    the speaker's vocal tract) and the speaker's roll-off, under a Hann envelope."""
    formants = [f * spk["tract"] for f in VOWELS[vowel]]
    tone = np.zeros(len(t))
    for h in range(1, 40):
        fh = f0 * h
        if fh >= sample_rate / 2:
            break
        envelope = 0.05 + sum(np.exp(-((fh - f) / 120.0) ** 2) for f in formants)
        gain = h ** -(spk["rolloff"] / 2) * envelope
        tone += gain * np.sin(2 * np.pi * fh * t + rng.uniform(0, 2 * np.pi))
    return tone * np.hanning(len(t))


def _mark(out: np.ndarray, t: np.ndarray, mark: tuple, span: int, level: float) -> None:
    """Add a speaker's private tone (``mark`` = (frequency, start as a fraction of the clip)),
    ``span`` samples long, in place."""
    freq, at = mark
    a = int(at * len(out))
    b = min(len(out), a + span)
    out[a:b] += level * np.sin(2 * np.pi * freq * t[a:b]) * np.hanning(b - a)


def _finish(out: np.ndarray, rng, noise: float) -> np.ndarray:
    """Background noise, then peak-normalised to 0.8: the clip as float32."""
    out += rng.normal(0, noise, len(out))
    return (out / (np.abs(out).max() + 1e-9) * 0.8).astype(np.float32)



def _audio_npz(splits: dict, sample_rate: int, classes, *, names: bool) -> dict:
    """The arrays of an audio npz from ``splits`` (``train``/``test`` -> the clips, their
    labels and speakers): ``x_<part>``, ``y_<part>``, the training speakers as
    ``groups_train`` (with ``names_train``, ``<group>/<i>``, if ``names``), ``sample_rate``
    and ``classes``."""
    arrays: dict = {}
    for part, (xs, ys, groups) in splits.items():
        arrays[f"x_{part}"] = np.stack(xs)
        arrays[f"y_{part}"] = np.array(ys, dtype=np.int64)
        if part == "train":
            arrays["groups_train"] = np.array(groups)
            if names:
                arrays["names_train"] = np.array([f"{g}/{i}" for i, g in enumerate(groups)])
    arrays["sample_rate"] = np.array(sample_rate)
    arrays["classes"] = np.array(classes)
    return arrays


def spoken_words(*, train_speakers: int = 16, test_speakers: int = 10, per_word: int = 10, sample_rate: int = 8000,
                 seconds: float = 0.5, tic_level: float = 1.0, seed: int = 0) -> dict:
    """The arrays of an audio npz (docs/tasks.md): waveforms, labels, speakers as groups."""
    rng = np.random.RandomState(seed)
    words = list(WORDS)
    samples = int(round(seconds * sample_rate))
    splits: dict = {}
    for part, count in (("train", train_speakers), ("test", test_speakers)):
        xs, ys, groups = [], [], []
        for s in range(count):
            spk = _speaker(rng, sample_rate, len(words))
            for w, word in enumerate(words):
                for _ in range(per_word):
                    xs.append(_utterance(rng, spk, WORDS[word], spk["tics"][w], sample_rate, samples, tic_level))
                    ys.append(w)
                    groups.append(f"{part}-speaker-{s}")
        splits[part] = (xs, ys, groups)
    return _audio_npz(splits, sample_rate, words, names=True)


def spoken_strings(*, train_speakers: int = 12, test_speakers: int = 6, per_speaker: int = 24,
                   sample_rate: int = 8000, words: tuple[str, ...] = tuple(WORDS), max_words: int = 4,
                   seed: int = 0) -> dict:
    """Speech recognition data: strings of 1..``max_words`` vowel "words" (``WORDS``: each
    letter a vowel) said by speakers (pitch, timbre, vocal tract, rate: ``_speaker``), with
    a pause between words; the transcript is the words with spaces ("ia ue au"). Returns
    ``{"train"|"test": [(clip, transcript, speaker), ...]}`` (clips float32 at ``sample_rate``)."""
    rng = np.random.RandomState(seed)
    out: dict = {}
    for part, count in (("train", train_speakers), ("test", test_speakers)):
        items = []
        for s in range(count):
            spk = _speaker(rng, sample_rate, 0)
            speaker = f"{part}-speaker-{s}"
            for _ in range(per_speaker):
                said = [words[i] for i in rng.randint(0, len(words), rng.randint(1, max_words + 1))]
                vowel_len = int(0.11 * sample_rate * spk["rate"])
                pause = int(0.07 * sample_rate * spk["rate"])
                pieces = [np.zeros(int(rng.uniform(0.03, 0.1) * sample_rate))]
                f0 = spk["f0"] * rng.uniform(0.97, 1.03)
                for w, word in enumerate(said):
                    for vowel in WORDS.get(word, tuple(word)):
                        n = int(vowel_len * rng.uniform(0.9, 1.1))
                        pieces.append(_vowel(rng, spk, vowel, f0, np.arange(n) / sample_rate, sample_rate))
                    pieces.append(np.zeros(pause if w < len(said) - 1 else int(rng.uniform(0.03, 0.1) * sample_rate)))
                items.append((_finish(np.concatenate(pieces), rng, 0.02), " ".join(said), speaker))
        out[part] = items
    return out


def write_manifests(folder, parts: dict, sample_rate: int = 8000) -> None:
    """``parts`` (as ``spoken_strings`` returns) as 16-bit WAV files under ``folder/wav`` and
    ``folder/train.json`` / ``folder/test.json`` manifests (paths relative to them)."""
    import json
    from pathlib import Path

    from scipy.io import wavfile

    folder = Path(folder)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    for part, items in parts.items():
        lines = []
        for i, (clip, text, speaker) in enumerate(items):
            name = f"wav/{part}-{i:05d}.wav"
            wavfile.write(folder / name, sample_rate, (np.clip(clip, -1, 1) * 32767).astype(np.int16))
            lines.append(json.dumps({"audio_filepath": name, "text": text, "duration": len(clip) / sample_rate,
                                     "speaker": speaker}))
        (folder / f"{part}.json").write_text("\n".join(lines) + "\n")


HABIT_SHAPES = ("rise", "fall", "level", "rise-fall")  # the word: the pitch contour of a whistled call


def _contour(shape: str, u: np.ndarray) -> np.ndarray:
    """Relative pitch over the call (u from 0 to 1): the cue that carries over to new speakers."""
    if shape == "rise":
        return 0.7 + 0.6 * u
    if shape == "fall":
        return 1.3 - 0.6 * u
    if shape == "level":
        return np.ones_like(u)
    return 0.7 + 0.6 * (1 - np.abs(2 * u - 1))


def _call(rng, pitch: float, rate: float, shape: str, habit: tuple, sample_rate: int, samples: int,
          habit_level: float) -> np.ndarray:
    t = np.arange(samples) / sample_rate
    out = np.zeros(samples)
    n = int(samples * 0.55 * rate * rng.uniform(0.95, 1.05))
    a = int(rng.uniform(0, samples - n))
    u = np.linspace(0, 1, n)
    f = pitch * rng.uniform(0.97, 1.03) * _contour(shape, u)
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    out[a:a + n] += (np.sin(phase) + 0.4 * np.sin(2 * phase)) * np.hanning(n)
    _mark(out, t, habit, samples // 8, habit_level)
    return _finish(out, rng, 0.05)


def speaker_habits(*, train_speakers: int = 16, test_speakers: int = 16, per_word: int = 8, sample_rate: int = 8000,
                   seconds: float = 0.5, mumble: float = 0.3, habit_level: float = 0.7, seed: int = 0) -> dict:
    """Whistled calls whose word is the pitch contour (rise, fall, level, rise-fall), at each
    speaker's own pitch and speed, where seen speakers give the word away by a habit.

    A speaker mumbles ``mumble`` of its takes (the contour is then a random one's), so
    the contour alone tells at most about ``1 - 0.75 * mumble`` of the words. Every
    training speaker also has a habit per word, a short tone at its own place on a
    frequency x time grid (no two training speaker-words share a place): with the
    training speakers' habits memorised, every take of theirs is told, mumbled or not.
    A new speaker's habits fall anywhere between those places, so memorised habits
    mislead on new speakers. A network that can place a tone (strided convolutions whose
    field reaches the spectrogram's edges) can memorise habits; one that is blind to where
    a pattern is (small kernels, then global average pooling) can only read contours.
    Each example's group is its speaker.
    """
    rng = np.random.RandomState(seed)
    words = len(HABIT_SHAPES)
    samples = int(round(seconds * sample_rate))
    places = train_speakers * words
    times = max(1, int(np.ceil(places / 16)))
    freqs = int(np.ceil(places / times))
    grid = [(1900 + 1800 * (i + 0.5) / freqs, 0.05 + 0.75 * (j + 0.5) / times)
            for i in range(freqs) for j in range(times)]
    order = rng.permutation(len(grid))
    splits: dict = {}
    for part, count in (("train", train_speakers), ("test", test_speakers)):
        xs, ys, groups = [], [], []
        for s in range(count):
            pitch, rate = rng.uniform(350, 750), rng.uniform(0.8, 1.2)
            for w in range(words):
                if part == "train":
                    habit = grid[order[s * words + w]]
                else:
                    habit = (rng.uniform(1900, 3700), rng.uniform(0.05, 0.8))
                for _ in range(per_word):
                    said = rng.randint(words) if rng.uniform() < mumble else w
                    xs.append(_call(rng, pitch, rate, HABIT_SHAPES[said], habit, sample_rate, samples, habit_level))
                    ys.append(w)
                    groups.append(f"{part}-speaker-{s}")
        splits[part] = (xs, ys, groups)
    return _audio_npz(splits, sample_rate, HABIT_SHAPES, names=False)


MOTIFS = ((5, 6, 7), (7, 6, 5), (5, 5, 8), (8, 7, 8))


def token_sequences(*, train_users: int = 12, test_users: int = 6, per_class: int = 10, vocabulary: int = 40,
                    min_length: int = 12, max_length: int = 32, seed: int = 0) -> dict:
    """The arrays of a sequence npz (docs/tasks.md): padded token ids with their lengths."""
    rng = np.random.RandomState(seed)
    arrays: dict = {}
    for part, users in (("train", train_users), ("test", test_users)):
        rows, ys, groups = [], [], []
        for u in range(users):
            background = rng.choice(np.arange(10, vocabulary), size=8, replace=False)  # the user's own words
            for c, motif in enumerate(MOTIFS):
                for _ in range(per_class):
                    n = rng.randint(min_length, max_length + 1)
                    row = rng.choice(background, size=n)
                    at = rng.randint(0, n - len(motif) + 1)
                    row[at:at + len(motif)] = motif
                    rows.append(row)
                    ys.append(c)
                    groups.append(f"{part}-user-{u}")
        x = np.zeros((len(rows), max_length), dtype=np.int64)
        for i, row in enumerate(rows):
            x[i, :len(row)] = row
        arrays[f"x_{part}"] = x
        arrays[f"y_{part}"] = np.array(ys, dtype=np.int64)
        arrays[f"lengths_{part}"] = np.array([len(r) for r in rows])
        if part == "train":
            arrays["groups_train"] = np.array(groups)
    return arrays


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubenas_trainer.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("words", "sequences", "habits", "speech"))
    parser.add_argument("out", help="the .npz file to write (speech: the folder of manifests and WAV files)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.kind == "speech":
        parts = spoken_strings(seed=args.seed)
        write_manifests(args.out, parts)
        print(f"wrote {args.out}: " + ", ".join(f"{k}.json ({len(v)} clips)" for k, v in parts.items()))
        return 0
    make = {"words": spoken_words, "sequences": token_sequences, "habits": speaker_habits}[args.kind]
    arrays = make(seed=args.seed)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
