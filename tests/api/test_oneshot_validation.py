"""spec.oneShot: its settings and the combinations refused with it, each naming the field
and the fix (kubenas.api.checks.oneshot), as `kubenas validate`, `kubenas run` and the
operator see them."""
import copy

import pytest

from kubenas.api.validation import validate_experiment

VALID = {
    "apiVersion": "kubenas.io/v1alpha1",
    "kind": "NASExperiment",
    "metadata": {"name": "shot"},
    "spec": {
        "objective": {"metric": "accuracy"},
        "searchSpace": {"type": "cell", "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_3x3"],
                                                 "channels": 8, "cellsPerStage": 1, "stages": 2}},
        "strategy": {"type": "evolution", "seed": 1, "evolution": {"populationSize": 8, "sampleSize": 3}},
        "oneShot": {"supernetEpochs": 5, "candidates": 40, "candidatesPerTrial": 20, "topK": 2},
        "budget": {"maxTrials": 5, "parallelTrials": 2},
        "trial": {"dataset": {"name": "digits"}, "training": {"epochs": 2}},
    },
}


def issues(change) -> list:
    experiment = copy.deepcopy(VALID)
    change(experiment["spec"])
    return validate_experiment(experiment)


def test_a_one_shot_experiment_is_valid():
    assert validate_experiment(copy.deepcopy(VALID)) == []


def test_a_one_shot_experiment_over_a_chain_space_is_valid():
    chain = issues(_set("searchSpace", {"type": "chain", "chain": {"layers": 3, "filters": [8, 16],
                                                                   "kernelSizes": [3, 5], "strides": [1, 2]}}))
    assert chain == []


def _set(path, value):
    def change(spec):
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return change


@pytest.mark.parametrize("change, path, fragment", [
    (_set("searchSpace", {"type": "parameters", "parameters": [{"name": "width", "type": "categorical",
                                                                "values": [8, 16]}]}),
     "spec.searchSpace.type", "no weight-sharing"),
    (_set("searchSpace", {"type": "chain", "chain": {"layers": 2, "operations": ["conv", "attention"]}}),
     "spec.searchSpace.chain.operations", "attention cannot share weights"),
    (_set("searchSpace.hyperparameters", [{"name": "learningRate", "type": "logUniform", "min": 0.01, "max": 0.1}]),
     "spec.searchSpace.hyperparameters", "one set of training settings"),
    (_set("strategy.fidelity", {"minResource": 1, "reductionFactor": 3}), "spec.strategy.fidelity", "remove one"),
    (_set("final", {"topK": 1, "seeds": 2}), "spec.final", "already retrains"),
    (_set("objective.target", 0.9), "spec.objective.target", "remove objective.target"),
    (_set("objective.penalties", [{"metric": "parameters", "target": 1000, "weight": -0.1}]),
     "spec.objective.penalties", "not applied to inherited-weight scores"),
    (_set("trial.command", ["python", "train.py"]), "spec.trial.command", "cannot train or score a supernet"),
    (_set("trial.training.scheduleEpochs", 10), "spec.trial.training.scheduleEpochs", "supernetEpochs"),
    (_set("budget.maxTrials", 4), "spec.budget.maxTrials", "at least 5"),
    (_set("oneShot.candidatesPerTrial", 41), "spec.oneShot.candidatesPerTrial", "from 1 to 40"),
    (_set("oneShot.topK", 41), "spec.oneShot.topK", "maximum of 20"),
    (_set("strategy.evolution.populationSize", 40), "spec.strategy.evolution.populationSize", "oneShot.candidates"),
])
def test_what_makes_no_sense_with_one_shot_is_refused_naming_the_field(change, path, fragment):
    found = issues(change)
    assert any(i.path == path and fragment in i.message for i in found), found


def test_sampling_by_the_strategy_is_refused_by_the_schema():
    found = issues(_set("oneShot.sampling", "reinforce"))
    assert any(i.path == "spec.oneShot.sampling" for i in found), found


def test_your_own_network_takes_part_in_one_shot_search_with_its_supernet():
    from kubenas.api.policy import user_code_fields

    chain = {"type": "chain", "chain": {"layers": 4, "operations": ["conv", "identity"], "filters": [8],
                                        "kernelSizes": [1, 3, 5], "strides": [1]}}

    def both(spec):
        spec["searchSpace"] = chain
        spec["trial"]["model"] = {"builder": "mine:build", "supernet": "mine:build_supernet"}

    assert issues(both) == []

    def builder_only(spec):
        spec["searchSpace"] = chain
        spec["trial"]["model"] = {"builder": "mine:build"}

    [issue] = issues(builder_only)
    assert issue.path == "spec.trial.model.supernet" and "select(architecture)" in issue.message

    def supernet_without_one_shot(spec):
        both(spec)
        del spec["oneShot"]

    [found] = [i for i in issues(supernet_without_one_shot) if i.path == "spec.trial.model.supernet"]
    assert "spec.oneShot only" in found.message
    spec = copy.deepcopy(VALID["spec"])
    both(spec)
    assert "spec.trial.model.supernet" in user_code_fields(spec)  # gated as user code, as builder is


def test_more_candidates_than_the_space_has_networks_is_refused():
    def small(spec):  # 3 ops on 6 edges: 729 genotypes, 471 distinct networks
        spec["oneShot"].update(candidates=500, candidatesPerTrial=100)
        spec["budget"]["maxTrials"] = 10

    [issue] = issues(small)
    assert issue.path == "spec.oneShot.candidates"
    assert "more than the 471 distinct networks" in issue.message and "at most 471" in issue.message

    def fits(spec):
        spec["oneShot"].update(candidates=471, candidatesPerTrial=100)
        spec["budget"]["maxTrials"] = 10

    assert issues(fits) == []
