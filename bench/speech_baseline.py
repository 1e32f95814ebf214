"""Speech recognition: the search's pick against a hand-built conv + BiGRU encoder, on speakers
neither ever saw (bench/RESULTS.md).

Both are trained by the same loop, CTC head, data and settings as
deploy/examples/speech-vowels.yaml (``run_trial``), from ``--seeds`` initialisations each;
the numbers are WER and CER of greedy decoding on the test split (the 6 test speakers of
``python -m kubenas_trainer.data.synthetic speech``), which the search never read.

    python -m kubenas_trainer.data.synthetic speech data/speech
    kubenas run deploy/examples/speech-vowels.yaml --run-dir runs/speech-vowels
    python bench/speech_baseline.py --data data/speech --run-dir runs/speech-vowels
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


class ConvBiGRU(nn.Module):
    """Two 1-D convs over time (mel bins as channels) -> a bidirectional GRU -> per-frame
    logits, ``N x T x tokens`` (what the task's CTC head gives)."""

    def __init__(self, mels: int, tokens: int, width: int = 32, hidden: int = 24):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(mels, width, 5, padding=2, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=2, bias=False), nn.BatchNorm1d(width), nn.ReLU())
        self.rnn = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N x mels x 1 x T (layout: temporal)
        y = self.conv(x.mean(dim=2)).transpose(1, 2)
        y, _ = self.rnn(y)
        return self.fc(y)


def conv_bigru(architecture, input_shape, num_classes):
    """The ``trial.model.builder`` of the baseline (the architecture is ignored)."""
    return ConvBiGRU(int(input_shape[0]), num_classes)


def _trial(example: dict, data: str, architecture: dict, seed: int, builder: str | None) -> dict:
    from kubenas_trainer.training.loop import run_trial

    trial = example["spec"]["trial"]
    body = {"architecture": architecture, "task": trial["task"], "seed": seed,
            "dataset": {**trial["dataset"], "path": data}, "objective": {"metric": "wer"},
            "training": {**trial["training"], "measureLatency": False}}
    if builder:
        body["model"] = {"builder": builder}
    start = time.monotonic()
    result = run_trial(body)
    if result["status"] != "Succeeded":
        raise SystemExit(f"trial failed: {result.get('message')}")
    m = result["metrics"]
    return {"seed": seed, "wer": m["wer"], "testWer": m["testWer"], "testCer": m["testCer"],
            "parameters": m["parameters"], "seconds": round(time.monotonic() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/speech")
    parser.add_argument("--run-dir", default="runs/speech-vowels", help="the example's run (best.json)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="instead of the example's (a shorter budget)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the builder: speech_baseline:conv_bigru
    example = yaml.safe_load((ROOT / "deploy/examples/speech-vowels.yaml").read_text())
    if args.epochs:
        example["spec"]["trial"]["training"]["epochs"] = args.epochs
    pick = json.loads((Path(args.run_dir) / "best.json").read_text())
    arch = pick["architecture"]
    rows = {"pick": [_trial(example, args.data, arch, s, None) for s in range(args.seeds)],
            "conv+BiGRU": [_trial(example, args.data, arch, s, "speech_baseline:conv_bigru")
                           for s in range(args.seeds)]}
    print(f"pick: {json.dumps(arch)}")
    for name, runs in rows.items():
        mean = {k: statistics.mean(r[k] for r in runs) for k in ("testWer", "testCer", "seconds")}
        seeds = ", ".join(f"{r['testWer']:.3f}" for r in runs)
        print(f"{name:12s} params {runs[0]['parameters']:>7,}  test WER {mean['testWer']:.3f} (seeds {seeds})  "
              f"test CER {mean['testCer']:.3f}  {mean['seconds']:.0f} s/trial")
    if args.out:
        Path(args.out).write_text(json.dumps({"architecture": arch, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
