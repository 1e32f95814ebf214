"""Audio and sequence searches on the real-API-server tier (docs/tasks.md): the shipped
examples, on data the test synthesises, run to the end as Jobs on the node stand-in, and
the best trial's exported model loads with plain ``torch.jit.load``.

The data and the exported models live under the checkout's ``runs/`` folder, which the
node stand-in's pods see (a real cluster would mount a volume; see the examples)."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import yaml

from tests.realtier.cluster import REPO
from tests.waiting import wait_until

CASES = {
    "words-kws-temporal": ("words", "e2e-words"),
    "sequences-motif": ("sequences", "e2e-sequences"),
}


@pytest.mark.parametrize("example", sorted(CASES))
def test_task_example_searches_on_the_cluster_and_exports_its_best_model(local_only, namespace, example):
    import torch

    from kubenas_trainer.data.synthetic import spoken_words, token_sequences

    kind, name = CASES[example]
    work = REPO / "runs" / f"e2e-{namespace}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = work / f"{kind}.npz"
        np.savez(data, **(spoken_words() if kind == "words" else token_sequences()))
        body = yaml.safe_load((REPO / "deploy" / "examples" / f"{example}.yaml").read_text())
        body["metadata"]["name"] = name
        trial = body["spec"]["trial"]
        trial["dataset"]["path"] = str(data)
        trial["training"].update(device="cpu", mixedPrecision=False)
        trial["template"] = {"env": [{"name": "KUBENAS_MODEL_DIR", "value": str(work / "models")}],
                             "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
        local_only.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))

        def phase():
            return (local_only.get_json("nasexperiment", name, "-n", namespace).get("status") or {}).get("phase")

        wait_until(lambda: phase() in ("Succeeded", "Failed"), 1500, f"{name} to finish", interval=3)
        status = local_only.get_json("nasexperiment", name, "-n", namespace)["status"]
        assert status["phase"] == "Succeeded", status
        assert status["trials"]["succeeded"] == body["spec"]["budget"]["maxTrials"] == 12
        best = status["bestTrial"]
        assert best["reward"] >= 0.5, best  # 4 classes: chance is 0.25
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(work / "models" / best["name"] / "model.pt"))
        if kind == "words":
            wave = torch.from_numpy(np.load(data)["x_test"][:4])  # float32 N x 4000: 0.5 s at 8 kHz
            assert model(wave).shape == (4, 4)
        else:
            for length in (7, 50):
                assert model(torch.randint(0, 40, (3, length))).shape == (3, 4)
    finally:
        shutil.rmtree(work, ignore_errors=True)
