"""dataset.augment.noiseFiles: background-noise clips mixed into training takes only, seeded."""
import numpy as np
import pytest
import torch
from scipy.io import wavfile

from kubenas_trainer.tasks import audio
from kubenas_trainer.errors import DataError, InvalidTrial
from kubenas_trainer.data.synthetic import spoken_words
from kubenas_trainer.tasks import load_task

FRONT_END = {"sampleRate": 8000, "clipSeconds": 0.5, "nFft": 256, "hopLength": 128, "nMels": 32}
CPU = torch.device("cpu")


def test_the_noise_is_a_crop_of_a_clip_at_the_asked_snr(tmp_path):
    # One clip: a 2 kHz tone. Mixed into silence-free takes at 0 dB, what is added is that tone.
    t = np.arange(16000) / 8000
    np.savez(tmp_path / "noise.npz", noise=np.sin(2 * np.pi * 2000 * t).astype(np.float32), sample_rate=8000)
    aug = audio.check_augment({"noiseProbability": 1.0, "noiseSnrDb": 0.0, "noiseFiles": "noise.npz"})
    clips = audio.read_noise(aug["noiseFiles"], tmp_path / "data.npz", FRONT_END)
    augment = audio.Augment(aug, audio.LogMel(audio.check_front_end(FRONT_END)), FRONT_END,
                            torch.Generator().manual_seed(0), clips)
    wave = torch.full((3, 4000), 0.5)
    added = augment.waveform(wave) - wave
    assert torch.allclose(added.pow(2).mean(dim=1), wave.pow(2).mean(dim=1), rtol=1e-3)  # 0 dB
    spectrum = torch.fft.rfft(added, dim=1).abs()
    assert (spectrum.argmax(dim=1) * 8000 / 4000 == 2000).all()  # the clip's tone, not white noise


def test_a_folder_of_wav_clips_is_resampled_to_the_front_end(tmp_path):
    (tmp_path / "_background_noise_").mkdir()
    hum = (np.sin(2 * np.pi * 100 * np.arange(16000) / 16000) * 10000).astype(np.int16)
    wavfile.write(tmp_path / "_background_noise_" / "hum.wav", 16000, hum)
    (clip,) = audio.read_noise("_background_noise_", tmp_path, FRONT_END)
    assert clip.numel() == 8000  # 1 s at 8 kHz, already longer than a clip


def test_noise_files_are_mixed_only_into_training_batches_and_are_seeded(tmp_path):
    np.savez(tmp_path / "words.npz", **spoken_words(train_speakers=4, test_speakers=2, per_word=2))
    np.savez(tmp_path / "noise.npz", noise=np.random.RandomState(1).uniform(-1, 1, (2, 6000)).astype(np.float32))
    spec = {"name": "npz", "path": str(tmp_path / "words.npz"), "frontEnd": FRONT_END}
    clean = load_task("audio-classification", spec, 0, CPU)
    noisy = load_task("audio-classification", {**spec, "augment": {"noiseProbability": 1.0, "noiseSnrDb": 5.0,
                                                                      "noiseFiles": "noise.npz"}}, 0, CPU)
    assert torch.equal(clean.dataset.val.x, noisy.dataset.val.x)  # validation and test: never augmented
    assert torch.equal(clean.dataset.test.x, noisy.dataset.test.x)
    batch = noisy.dataset.train.x[:8]
    first = noisy.train_transform(torch.Generator().manual_seed(7))(batch)
    again = noisy.train_transform(torch.Generator().manual_seed(7))(batch)
    other = noisy.train_transform(torch.Generator().manual_seed(8))(batch)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.allclose(first, clean.dataset.train.x[:8])


def test_bad_noise_files_name_the_field(tmp_path):
    with pytest.raises(InvalidTrial, match=r"dataset\.augment\.noiseFiles: mixed into a take with probability"):
        audio.check_augment({"noiseFiles": "noise"})
    with pytest.raises(InvalidTrial, match=r"dataset\.augment\.noiseFiles: must be the path"):
        audio.check_augment({"noiseFiles": 3, "noiseProbability": 0.5})
    with pytest.raises(DataError, match=r"dataset\.augment\.noiseFiles: .* neither a folder"):
        audio.read_noise("missing.npz", tmp_path, FRONT_END)
    (tmp_path / "quiet").mkdir()
    wavfile.write(tmp_path / "quiet" / "silence.wav", 16000, np.zeros(1600, dtype=np.int16))
    with pytest.raises(DataError, match=r"dataset\.augment\.noiseFiles: .* holds no non-silent clip"):
        audio.read_noise("quiet", tmp_path, FRONT_END)
