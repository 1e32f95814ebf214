"""What is searched and for how long: spec.objective, searchSpace, strategy (its
fidelity too), budget, final and constraints."""
from __future__ import annotations

from kubenas.contract import METRIC_GOALS
from kubenas.contract.oneshot import DEFAULTS as ONESHOT_DEFAULTS
from kubenas.contract.spaces import space_names
from kubenas.contract.tasks import TASK_METRICS
from kubenas.strategies import strategy_names

from ..issues import Issue, spec_path


def objective_issues(spec: dict) -> list[Issue]:
    objective = spec["objective"]
    issues = []
    metric, goal = objective["metric"], objective["goal"]
    task = spec["trial"]["task"]
    if metric not in TASK_METRICS.get(task, (metric,)):
        return [Issue("spec.objective.metric", f"{metric} is not measured by {task}; use one of "
                      f"{', '.join(TASK_METRICS[task])}")]
    if goal != METRIC_GOALS[metric]:
        issues.append(Issue("spec.objective.goal", f"{metric} should be {METRIC_GOALS[metric]}d, not {goal}d"))
    target = objective.get("target")
    if target is not None and metric == "accuracy" and not 0 < target <= 1:
        issues.append(Issue("spec.objective.target", f"accuracy lies in (0, 1]; got {target}"))
    return issues


def pareto_issues(spec: dict) -> list[Issue]:
    """objective.pareto: each cost once, measured by the trainer, searched by a strategy that can."""
    from kubenas.contract.pareto import check_pareto
    from kubenas.space import SpaceError
    from kubenas.strategies import check_pareto_strategy

    pareto = spec["objective"].get("pareto") or []
    try:
        check_pareto(pareto, "spec.objective.pareto")
        check_pareto_strategy(spec["strategy"]["type"], pareto)
    except SpaceError as err:
        return [Issue(spec_path(err.path, "objective"), err.message)]
    except ValueError as err:
        path, _, message = str(err).partition(": ")
        return [Issue(path, message)]
    training = spec["trial"]["training"]
    if "latencyMs" in pareto and training.get("measureLatency") is False:
        return [Issue("spec.objective.pareto", "lists latencyMs but spec.trial.training.measureLatency is false; "
                      "remove measureLatency: false or drop latencyMs from pareto")]
    return []


def search_space_issues(spec: dict) -> list[Issue]:
    from kubenas.space import SearchSpace, SpaceError

    space = spec["searchSpace"]
    for other in space_names():
        if other != space["type"] and other in space:
            return [Issue(f"spec.searchSpace.{other}", f"is set but searchSpace.type is {space['type']}; "
                          f"remove it or set type: {other}")]
    try:
        SearchSpace.from_spec(space)
    except SpaceError as err:
        return [Issue(spec_path(err.path, "searchSpace"), err.message)]
    return []


def strategy_issues(spec: dict) -> list[Issue]:
    from kubenas.space import SpaceError
    from kubenas.strategies import check_strategy_spec

    strategy, budget = spec["strategy"], spec["budget"]
    for other in strategy_names():
        if other != strategy["type"] and other in strategy:
            return [Issue(f"spec.strategy.{other}", f"is set but strategy.type is {strategy['type']}; "
                          f"remove it or set type: {other}")]
    try:
        checked = check_strategy_spec(strategy, spec["objective"]["goal"])
    except SpaceError as err:
        return [Issue(spec_path(err.path, "strategy"), err.message)]
    population = checked["settings"].get("populationSize")
    # the candidates it proposes: one per trial, or spec.oneShot's (kubenas.contract.oneshot)
    proposals, field = ((spec["oneShot"].get("candidates", ONESHOT_DEFAULTS["candidates"]), "oneShot.candidates")
                        if spec.get("oneShot") is not None else (budget["maxTrials"], "budget.maxTrials"))
    if strategy["type"] == "evolution" and population >= proposals:
        return [Issue("spec.strategy.evolution.populationSize",
                      f"{population} >= {field} ({proposals}): evolution would never "
                      f"evolve; lower populationSize or raise {field.split('.')[-1]}")]
    return []


def budget_issues(spec: dict) -> list[Issue]:
    budget = spec["budget"]
    if budget["parallelTrials"] > budget["maxTrials"]:
        return [Issue("spec.budget.parallelTrials", f"{budget['parallelTrials']} exceeds budget.maxTrials "
                      f"({budget['maxTrials']}); lower it to at most {budget['maxTrials']}")]
    return []


def fidelity_issues(spec: dict) -> list[Issue]:
    """spec.strategy.fidelity: rungs within trial.training.epochs, and nothing it would contradict."""
    from kubenas.space import SpaceError
    from kubenas.strategies import resolve_fidelity

    strategy = spec["strategy"]
    if strategy.get("fidelity") is None:
        return []
    try:
        resolve_fidelity(strategy, spec["trial"]["training"]["epochs"])
    except SpaceError as err:
        return [Issue(spec_path(err.path, "strategy"), err.message)]
    if spec["earlyStopping"]["type"] != "none":
        return [Issue("spec.earlyStopping.type", f"{spec['earlyStopping']['type']} cannot be combined with "
                      "strategy.fidelity, which already stops the weaker trials at every rung; set it to none "
                      "or remove strategy.fidelity")]
    if spec["objective"].get("pareto"):
        return [Issue("spec.strategy.fidelity", "promotes by one scalar reward and cannot rank several "
                      "objectives (objective.pareto); remove objective.pareto or strategy.fidelity")]
    return _final_after_fidelity(spec)


def _final_after_fidelity(spec: dict) -> list[Issue]:
    """spec.final after a multi-fidelity search re-evaluates candidates trained to the last
    rung (kubenas.experiment.final): topK cannot ask for more than successive halving
    trains that far."""
    from kubenas.contract import fidelity as fidelity_contract
    from kubenas.strategies import resolve_fidelity

    final = spec.get("final")
    if not final:
        return []
    settings = resolve_fidelity(spec["strategy"], spec["trial"]["training"]["epochs"])
    rungs = settings["rungs"]
    full = fidelity_contract.full_runs(settings["type"], spec["budget"]["maxTrials"], len(rungs),
                                       settings["reductionFactor"])
    if final["topK"] <= full:
        return []
    return [Issue("spec.final.topK", f"{final['topK']} is more than the {full} candidate{'s' * (full != 1)} "
                  f"strategy.fidelity ({settings['type']}, rungs {rungs} epochs, reductionFactor "
                  f"{settings['reductionFactor']}) trains to the full {rungs[-1]} epochs out of "
                  f"budget.maxTrials {spec['budget']['maxTrials']}; only those are re-evaluated: "
                  + (f"lower final.topK to at most {full} or raise budget.maxTrials" if full
                     else "raise budget.maxTrials or lower strategy.fidelity.reductionFactor"))]


def final_issues(spec: dict) -> list[Issue]:
    """spec.final re-evaluates after all maxTrials search trials; objective.target would end
    the search before (kubenas.experiment.final)."""
    final = spec.get("final")
    if final and spec["objective"].get("target") is not None:
        return [Issue("spec.final", f"cannot follow objective.target ({spec['objective']['target']}): reaching it "
                      "ends the search before the re-evaluation; remove one of them")]
    return []


def constraints_issues(spec: dict) -> list[Issue]:
    from kubenas.space import SearchSpace, SpaceError, cheapest_violation, constraints_from_spec

    try:
        constraints = constraints_from_spec(spec)
    except SpaceError as err:
        return [Issue(spec_path(err.path, "constraints"), err.message)]
    try:
        space = SearchSpace.from_spec(spec["searchSpace"])
    except SpaceError:
        return []  # reported by the search-space check
    violation = cheapest_violation(constraints, space)
    if violation is not None:
        field = violation.split(" > ")[1].split()[0]
        return [Issue(f"spec.constraints.{field}", f"even the cheapest network of the search space breaks it "
                      f"({violation}); raise the limit or shrink the space's skeleton")]
    return []
