"""``kubenas-train``: train one trial described by a JSON/YAML file.

    kubenas-train --trial trial.yaml --out DIR [--export-model] [--save-weights]

Writes DIR/history.jsonl (one line per epoch), DIR/result.json, and on request
DIR/model.pt (TorchScript) and DIR/weights.pt; DIR/checkpoint.pt when the trial's
``checkpoint.save`` is true. The exit code says how the trial ended
(docs/formats.md). This module only parses arguments, picks a reporter and calls
``run_trial``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kubenas.contract.artifacts import CHECKPOINT_FILE
from kubenas.contract.oneshot import is_weight_sharing
from kubenas.contract.result import failed_result

from kubenas_trainer import errors
from kubenas_trainer.reporting.artifacts import Policy, publish_result
from kubenas_trainer.reporting.files import FileReporter, Reporter
from kubenas_trainer.training import launch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubenas-train", description="Train one kubenas trial.")
    p.add_argument("--from-cluster", action="store_true",
                   help="read the NASTrial $KUBENAS_TRIAL and report into its status (see reporting/cluster.py)")
    p.add_argument("--trial", required="--from-cluster" not in (sys.argv[1:] if argv is None else argv), type=Path,
                   help="trial file (.json, .yaml): a Trial object, or a NASTrial whose spec is one")
    p.add_argument("--out", required="--from-cluster" not in (sys.argv[1:] if argv is None else argv), type=Path,
                   help="output directory")
    p.add_argument("--export-model", action="store_true", help="write OUT/model.pt (TorchScript)")
    p.add_argument("--save-weights", action="store_true", help="write OUT/weights.pt (state dict + metadata)")
    p.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="train as N processes under torchrun with DistributedDataParallel (docs/distributed.md)")
    p.add_argument("--backend", choices=("nccl", "gloo"),
                   help="the torch.distributed backend of --nproc-per-node (default: nccl on CUDA, else gloo)")
    return p.parse_args(argv)


def load_trial(path: Path) -> dict:
    """The Trial object in ``path``; raises errors.InvalidTrial if it cannot be read."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise errors.InvalidTrial(f"cannot read trial file {path}: {exc}") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parse error
        raise errors.InvalidTrial(f"trial file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
    if isinstance(doc, dict) and doc.get("kind") == "NASTrial" and isinstance(doc.get("spec"), dict):
        spec = dict(doc["spec"])
        spec.setdefault("name", (doc.get("metadata") or {}).get("name", ""))
        return spec
    if not isinstance(doc, dict):
        raise errors.InvalidTrial(f"trial file {path} must hold an object, got {type(doc).__name__}")
    return doc


def make_reporter(args: argparse.Namespace) -> Reporter:
    return FileReporter(args.out)


def main(argv=None) -> int:
    args = parse_args(argv)
    launched = launch.entry(args, list(sys.argv[1:] if argv is None else argv), train_quietly)  # torchrun, rank>0
    if launched is not None:
        return launched
    return launch.record_exit(_main(args))


def train_quietly(trial: dict, checkpoint_path: Path) -> dict:
    """A rank other than 0 of a trial of several processes (training/launch.py): the same
    training as rank 0's, with no reporter and no outputs."""
    if is_weight_sharing(trial):
        from kubenas_trainer.models.supernet import run_oneshot_trial

        return run_oneshot_trial(trial, checkpoint_path)
    from kubenas_trainer.training.loop import run_trial

    return run_trial(trial, checkpoint_path=checkpoint_path)


def _main(args: argparse.Namespace) -> int:
    if args.from_cluster:
        from kubenas_trainer.reporting.cluster import main_from_cluster

        return main_from_cluster(args)
    reporter = make_reporter(args)
    try:
        trial = load_trial(args.trial)
    except errors.TrialFailure as exc:
        trial = {}
        result = failed_result(exc.reason, exc.message)
    else:
        if is_weight_sharing(trial):  # a supernet or score trial of a one-shot experiment (models/supernet.py)
            from kubenas_trainer.models.supernet import run_oneshot_trial

            result = run_oneshot_trial(trial, args.out / CHECKPOINT_FILE, on_epoch=reporter.epoch)
        else:
            from kubenas_trainer.training.loop import run_trial  # torch is imported only once there is a trial to run

            result = run_trial(trial, on_epoch=reporter.epoch,
                               model_path=args.out / "model.pt" if args.export_model else None,
                               weights_path=args.out / "weights.pt" if args.save_weights else None,
                               checkpoint_path=args.out / CHECKPOINT_FILE)
    policy = Policy.from_env()
    if policy is not None:  # spec.artifacts of a local run (an object store): the same outputs there too
        result = publish_result(policy, trial.get("name") or args.out.name, trial, result,
                                   args.out / "model.pt" if args.export_model else None)
    reporter.final(result)
    status = result["status"] if result.get("reason") is None else f"{result['status']} ({result['reason']})"
    reward = result.get("reward")
    print(f"kubenas-train: {status}" + (f", reward {reward:.4f}" if isinstance(reward, float) else "")
          + (f": {result['message']}" if result.get("message") else ""), file=sys.stderr)
    return errors.exit_code(result)


if __name__ == "__main__":
    sys.exit(main())
