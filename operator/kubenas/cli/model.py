"""``kubenas model EXPERIMENT | RUN_DIR [-o best_model.pt]``: copy the best trial's exported
model out of where its experiment's ``spec.artifacts`` put it, or out of a local run
directory (kubenas.artifacts.model does the finding and copying)."""
from __future__ import annotations

import sys
from pathlib import Path

from .arguments import cluster_command


def cmd_model(args) -> int:
    from kubenas.artifacts.model import HOW_TO_LOAD, RUN_DIR_MODEL, ModelUnavailable, fetch
    from kubenas.contract.settings import EXPORT_SUFFIX

    try:
        output = Path(args.output) if args.output else Path(RUN_DIR_MODEL).with_suffix(EXPORT_SUFFIX[args.format])
        path, source = fetch(args.experiment, output, namespace=args.namespace, kubeconfig=args.kubeconfig,
                             context=args.context, volume_dir=args.volume_dir, fmt=args.format)
    except ModelUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{path}: best model from {source} ({path.stat().st_size} bytes; {HOW_TO_LOAD[args.format]})")
    return 0


def add_commands(sub) -> None:
    from kubenas.contract.settings import EXPORT_FORMATS

    with cluster_command(sub, "model", cmd_model,
                         help="download the best model of an experiment (cluster) or a run directory",
                         description="Copy the best trial's exported model (TorchScript: loads with torch.jit.load; "
                                     "ONNX: loads with onnxruntime) out of where the experiment's spec.artifacts put "
                                     "it, or out of a local run directory.") as p:
        p.add_argument("experiment", help="NASExperiment name, or a local run directory (kubenas run --run-dir)")
        p.add_argument("-o", "--output",
                       help="file to write (default best_model.pt, or best_model.onnx for --format onnx)")
        p.add_argument("--format", choices=EXPORT_FORMATS, default="torchscript",
                       help="which exported file (trial.export.formats; default torchscript)")
        p.add_argument("--volume-dir", help="local folder where the artifacts PersistentVolumeClaim is mounted "
                                            "(for a pvc:// model)")
