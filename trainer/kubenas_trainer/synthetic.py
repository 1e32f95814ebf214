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

    python -m kubenas_trainer.synthetic words out.npz
    python -m kubenas_trainer.synthetic sequences out.npz
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
        formants = [f * spk["tract"] for f in VOWELS[vowel]]
        tone = np.zeros(b - a)
        for h in range(1, 40):
            fh = f0 * h
            if fh >= sample_rate / 2:
                break
            envelope = 0.05 + sum(np.exp(-((fh - f) / 120.0) ** 2) for f in formants)
            gain = h ** -(spk["rolloff"] / 2) * envelope
            tone += gain * np.sin(2 * np.pi * fh * t[a:b] + rng.uniform(0, 2 * np.pi))
        out[a:b] += tone * np.hanning(b - a)
    freq, at = tic
    a = int(at * samples)
    b = min(samples, a + samples // 6)
    out[a:b] += tic_level * np.sin(2 * np.pi * freq * t[a:b]) * np.hanning(b - a)
    out += rng.normal(0, 0.02, samples)
    return (out / (np.abs(out).max() + 1e-9) * 0.8).astype(np.float32)


def spoken_words(*, train_speakers: int = 16, test_speakers: int = 10, per_word: int = 10, sample_rate: int = 8000,
                 seconds: float = 0.5, tic_level: float = 1.0, seed: int = 0) -> dict:
    """The arrays of an audio npz (docs/tasks.md): waveforms, labels, speakers as groups."""
    rng = np.random.RandomState(seed)
    words = list(WORDS)
    samples = int(round(seconds * sample_rate))
    arrays: dict = {}
    for part, count in (("train", train_speakers), ("test", test_speakers)):
        xs, ys, groups = [], [], []
        for s in range(count):
            spk = _speaker(rng, sample_rate, len(words))
            for w, word in enumerate(words):
                for _ in range(per_word):
                    xs.append(_utterance(rng, spk, WORDS[word], spk["tics"][w], sample_rate, samples, tic_level))
                    ys.append(w)
                    groups.append(f"{part}-speaker-{s}")
        arrays[f"x_{part}"] = np.stack(xs)
        arrays[f"y_{part}"] = np.array(ys, dtype=np.int64)
        if part == "train":
            arrays["groups_train"] = np.array(groups)
            arrays["names_train"] = np.array([f"{g}/{i}" for i, g in enumerate(groups)])
    arrays["sample_rate"] = np.array(sample_rate)
    arrays["classes"] = np.array(words)
    return arrays


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
    parser = argparse.ArgumentParser(prog="python -m kubenas_trainer.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("words", "sequences"))
    parser.add_argument("out", help="the .npz file to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    arrays = spoken_words(seed=args.seed) if args.kind == "words" else token_sequences(seed=args.seed)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
