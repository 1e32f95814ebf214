"""spec.oneShot (weight-sharing search, docs/oneshot.md): its settings, and the
combinations that make no sense with it, each refused naming the field and the fix."""
from __future__ import annotations

from kubenas.contract import oneshot
from kubenas.contract.ops import CHAIN_SUPERNET_OPS, chain_space_block
from kubenas.contract.spaces import supernet_spaces

from ..issues import Issue

# The tasks whose trainer builds a supernet (TrialTask.build_supernet).
SUPERNET_TASKS = ("image-classification",)


def oneshot_issues(spec: dict) -> list[Issue]:
    raw = spec.get(oneshot.SPEC_KEY)
    model = spec["trial"].get("model") or {}
    if raw is None:
        if model.get("supernet"):
            return [Issue("spec.trial.model.supernet", "is read by spec.oneShot only (a supernet to score "
                          "candidates with); remove it or add spec.oneShot")]
        return []
    try:
        s = oneshot.settings(raw)
    except oneshot.OneShotError as err:
        return [Issue(err.path, err.message)]
    issues = []
    space = spec["searchSpace"]
    shared = supernet_spaces()
    if space.get("type") not in shared:
        issues.append(Issue("spec.searchSpace.type", f"{space.get('type')} has no weight-sharing supernet: "
                            f"spec.oneShot searches a {' or '.join(shared)} space (searchSpace.type: "
                            f"{' or '.join(shared)}) only; use such a space or remove spec.oneShot"))
    if space.get("type") == "chain":
        unshared = [op for op in chain_space_block(space.get("chain"))["operations"] if op not in CHAIN_SUPERNET_OPS]
        if unshared:
            issues.append(Issue("spec.searchSpace.chain.operations", f"{', '.join(unshared)} cannot share weights in "
                                f"a chain supernet (the ops that can: {', '.join(CHAIN_SUPERNET_OPS)}); remove "
                                f"{'it' if len(unshared) == 1 else 'them'} or spec.oneShot"))
    if space.get("hyperparameters"):
        issues.append(Issue("spec.searchSpace.hyperparameters", "cannot be searched with spec.oneShot: the "
                            "supernet is trained with one set of training settings, so inherited-weight scores "
                            "do not rank them; fix them in trial.training or remove spec.oneShot"))
    task = spec["trial"]["task"]
    if task not in SUPERNET_TASKS:
        issues.append(Issue("spec.trial.task", f"{task} has no supernet in the trainer; spec.oneShot runs "
                            f"{', '.join(SUPERNET_TASKS)} only"))
    trial = spec["trial"]
    if trial.get("command"):
        issues.append(Issue("spec.trial.command", "a user's training program cannot train or score a supernet; "
                            "remove trial.command or spec.oneShot"))
    if model.get("builder") and not model.get("supernet"):
        issues.append(Issue("spec.trial.model.supernet", "required with trial.model.builder and spec.oneShot: "
                            "your network's weight-sharing supernet (module:function returning a module with "
                            "select(architecture) and sample(rng), docs/oneshot.md), which scores the candidates "
                            "your builder then retrains; add it, or remove model.builder or spec.oneShot"))
    if trial["training"].get("scheduleEpochs") is not None:
        issues.append(Issue("spec.trial.training.scheduleEpochs", "cannot be set with spec.oneShot: the supernet's "
                            "schedule runs over oneShot.supernetEpochs and a retrain's over training.epochs; "
                            "remove it"))
    if spec["strategy"].get("fidelity"):
        issues.append(Issue("spec.strategy.fidelity", "cannot be combined with spec.oneShot: candidates are scored "
                            "with inherited weights, not trained; remove one of them"))
    if spec.get("final"):
        issues.append(Issue("spec.final", "cannot be combined with spec.oneShot, whose last phase already "
                            "retrains its oneShot.topK best candidates stand-alone; remove spec.final"))
    objective = spec["objective"]
    if objective.get("pareto"):
        issues.append(Issue("spec.objective.pareto", "cannot be combined with spec.oneShot: the candidates are "
                            "ranked by one inherited-weight score; remove objective.pareto or spec.oneShot"))
    if objective.get("penalties"):
        issues.append(Issue("spec.objective.penalties", "are not applied to inherited-weight scores, so the "
                            "strategy would search without them; remove them or spec.oneShot (use spec.constraints "
                            "for hard limits)"))
    if objective.get("target") is not None:
        issues.append(Issue("spec.objective.target", "cannot end a one-shot search early: its best is known only "
                            "once the top candidates are retrained; remove objective.target"))
    issues += _candidates_issues(spec, s)
    planned = oneshot.planned_trials(s)
    if spec["budget"]["maxTrials"] < planned:
        issues.append(Issue("spec.budget.maxTrials", f"a one-shot experiment runs 1 supernet trial, "
                            f"{planned - 1 - s['topK']} score trials ({s['candidates']} candidates, "
                            f"{s['candidatesPerTrial']} per trial) and {s['topK']} retrains: {planned} trials; set "
                            f"maxTrials to at least {planned} (more leaves room for retried score trials)"))
    return issues


NETWORK_COUNT_LIMIT = 5000  # spaces up to this many candidates are enumerated (a fraction of a second)


def _candidates_issues(spec: dict, s: dict) -> list[Issue]:
    """oneShot.candidates no more than the space's distinct networks: past them a strategy
    can only propose repeats (each found after many redraws) and scores them again."""
    from kubenas.space import SearchSpace, SpaceError

    try:
        networks = SearchSpace.from_spec(spec["searchSpace"]).network_count(NETWORK_COUNT_LIMIT)
    except SpaceError:
        return []  # the search-space check names what is wrong
    if s["candidates"] <= networks:
        return []
    return [Issue("spec.oneShot.candidates", f"{s['candidates']} is more than the {networks} distinct networks of "
                  f"the search space (candidates whose live operations differ); lower it to at most {networks}, "
                  "or widen the space")]
