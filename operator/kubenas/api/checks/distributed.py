"""spec.trial.distributed: processes, backend and GPUs agree, and the global batch splits
evenly between the processes (kubenas.contract.distributed, docs/distributed.md)."""
from __future__ import annotations

from kubenas.contract import distributed as dist
from kubenas.contract.settings import SETTINGS
from kubenas.space.errors import SpaceError
from kubenas.space.hyperparameters import parse_hyperparameters

from ..issues import Issue


def distributed_issues(spec: dict) -> list[Issue]:
    trial = spec["trial"]
    found = [Issue(path, message) for path, message in dist.issues(trial)]
    plan = None if found else dist.distributed_for(trial)
    if plan is None or trial.get("command"):  # a program's batch size is its own
        return found
    batch = (trial.get("training") or {}).get("batchSize", SETTINGS["batchSize"].default)
    problem = dist.batch_size_issue(batch, plan.nproc_per_node)
    if problem:
        found.append(Issue("spec.trial.training.batchSize", problem))
    try:
        searched = parse_hyperparameters((spec.get("searchSpace") or {}).get("hyperparameters"))
    except SpaceError:
        return found  # the search space's own check names it
    for i, h in enumerate(searched):
        bad = [v for v in h.values if h.name == "batchSize" and dist.batch_size_issue(v, plan.nproc_per_node)]
        if bad:
            found.append(Issue(f"spec.searchSpace.hyperparameters[{i}]",
                               f"batchSize {dist.batch_size_issue(bad[0], plan.nproc_per_node)}; every searched "
                               f"value must split so ({len(bad)} of {len(h.values)} do not)"))
    return found
