"""Speech recognition on the real-API-server tier (docs/tasks.md "Speech recognition"): the
shipped example, cut to 2 trials, runs as Jobs on the node stand-in; the NASTrials keep WER
in their status (metrics and the per-epoch history the median rule reads), the experiment
ranks the lowest WER best, and the best model decodes a WAV with plain ``torch.jit.load``.

The data and the exported models live under the checkout's ``runs/`` folder, which the
node stand-in's pods see."""
from __future__ import annotations

import json
import shutil
import warnings

import yaml

from tests.realtier.cluster import REPO
from tests.waiting import wait_until


def test_speech_example_searches_on_the_cluster_and_ranks_wer_ascending(local_only, namespace):
    import torch

    from kubenas_trainer.data.synthetic import spoken_strings, write_manifests

    work = REPO / "runs" / f"e2e-{namespace}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = work / "speech"
        write_manifests(data, spoken_strings(train_speakers=6, test_speakers=2, per_speaker=16))
        body = yaml.safe_load((REPO / "deploy" / "examples" / "speech-vowels.yaml").read_text())
        body["metadata"]["name"] = "e2e-speech"
        body["spec"]["budget"].update(maxTrials=2, parallelTrials=2)
        body["spec"]["strategy"] = {"type": "random", "seed": 3}  # evolution needs more than 2 trials
        trial = body["spec"]["trial"]
        trial["dataset"]["path"] = str(data)
        trial["training"].update(epochs=8, device="cpu", mixedPrecision=False)
        trial["template"] = {"env": [{"name": "KUBENAS_MODEL_DIR", "value": str(work / "models")}],
                             "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
        local_only.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))

        def phase():
            return (local_only.get_json("nasexperiment", "e2e-speech", "-n", namespace).get("status") or {}).get("phase")

        wait_until(lambda: phase() in ("Succeeded", "Failed"), 900, "e2e-speech to finish", interval=3)
        status = local_only.get_json("nasexperiment", "e2e-speech", "-n", namespace)["status"]
        assert status["phase"] == "Succeeded", status
        assert status["trials"]["succeeded"] == 2
        trials = local_only.get_json("nastrials", "-n", namespace)["items"]
        wers = {}
        for t in trials:
            st = t["status"]
            assert st["phase"] == "Succeeded", st
            assert 0 <= st["metrics"]["wer"] <= 1 and "testCer" in st["metrics"]
            assert all("wer" in h and "cer" in h for h in st["history"])  # the CRD keeps them
            wers[t["metadata"]["name"]] = st["metrics"]["wer"]
        best = status["bestTrial"]
        assert best["reward"] == min(wers.values()) and wers[best["name"]] == best["reward"]  # lowest WER best
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(work / "models" / best["name"] / "model.pt"))
        from kubenas_trainer.tasks.audio import read_wav

        first = json.loads((data / "test.json").read_text().splitlines()[0])
        wave, _ = read_wav(data / first["audio_filepath"])
        ids = model(torch.from_numpy(wave)[None])
        assert ids.dtype == torch.int64 and ids.shape[0] == 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
