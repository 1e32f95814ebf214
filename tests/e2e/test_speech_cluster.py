"""Speech recognition on the real-API-server tier (docs/tasks.md "Speech recognition"): the
shipped example, cut to 2 trials, runs as Jobs on the node stand-in; the NASTrials keep WER
in their status (metrics and the per-epoch history the median rule reads), the experiment
ranks the lowest WER best, and the best model decodes a WAV with plain ``torch.jit.load``.

The data and the exported models live under the checkout's ``runs/`` folder, which the
node stand-in's pods see."""
from __future__ import annotations

import json
import warnings

from tests.e2e.test_cluster import every_trial_succeeds, example


def test_speech_example_searches_on_the_cluster_and_ranks_wer_ascending(local_only, namespace, run_folder):
    import torch

    from kubenas_trainer.data.synthetic import spoken_strings, write_manifests
    from kubenas_trainer.tasks.audio import read_wav

    data = run_folder / "speech"
    write_manifests(data, spoken_strings(train_speakers=6, test_speakers=2, per_speaker=16))
    body = example("speech-vowels", "e2e-speech", data, run_folder / "models")
    body["spec"]["budget"].update(maxTrials=2, parallelTrials=2)
    body["spec"]["strategy"] = {"type": "random", "seed": 3}  # evolution needs more than 2 trials
    body["spec"]["trial"]["training"].update(epochs=8, device="cpu", mixedPrecision=False)
    status, trials = every_trial_succeeds(local_only, namespace, body, 900, history=("wer", "cer"))
    for st in trials.values():
        assert 0 <= st["metrics"]["wer"] <= 1 and "testCer" in st["metrics"]
    wers = {name: st["metrics"]["wer"] for name, st in trials.items()}
    best = status["bestTrial"]
    assert best["reward"] == min(wers.values()) and wers[best["name"]] == best["reward"]  # lowest WER best
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(run_folder / "models" / best["name"] / "model.pt"))
    first = json.loads((data / "test.json").read_text().splitlines()[0])
    wave, _ = read_wav(data / first["audio_filepath"])
    ids = model(torch.from_numpy(wave)[None])
    assert ids.dtype == torch.int64 and ids.shape[0] == 1
