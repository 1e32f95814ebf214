"""Experiment validation: the CRD schema, unknown fields and semantic checks."""
import copy
from pathlib import Path

import pytest
import yaml

from kubenas.api.defaults import with_defaults
from kubenas.api.loading import load_experiment_file
from kubenas.api.validation import ExperimentInvalid, validate_experiment
from kubenas.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))


@pytest.fixture
def experiment():
    return yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())


def paths(obj):
    return [issue.path for issue in validate_experiment(obj)]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid(path):
    assert validate_experiment(yaml.safe_load(path.read_text())) == []


def test_wrong_type_names_the_field(experiment):
    experiment["spec"]["budget"]["maxTrials"] = "twenty"
    assert paths(experiment) == ["spec.budget.maxTrials"]


def test_unknown_strategy_names_the_field(experiment):
    experiment["spec"]["strategy"]["type"] = "bayesian"
    assert "spec.strategy.type" in paths(experiment)


def test_strategy_fidelity_is_validated_with_named_fields(experiment):
    experiment["spec"]["trial"]["training"]["epochs"] = 9
    experiment["spec"]["strategy"]["fidelity"] = {"minResource": 1, "reductionFactor": 3}
    assert validate_experiment(experiment) == []
    filled = with_defaults(experiment["spec"])["strategy"]["fidelity"]
    assert filled == {"type": "asha", "minResource": 1, "reductionFactor": 3}

    # maxResource is trial.training.epochs: a separate setting would be a second truth.
    experiment["spec"]["strategy"]["fidelity"] = {"maxResource": 9}
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec.strategy.fidelity.maxResource"]
    assert "unknown field" in issues[0].message

    experiment["spec"]["strategy"]["fidelity"] = {"minResource": 9}
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec.strategy.fidelity.minResource"]
    assert "trial.training.epochs (9)" in issues[0].message and "lower minResource" in issues[0].message

    experiment["spec"]["strategy"]["fidelity"] = {"reductionFactor": 1}
    assert paths(experiment) == ["spec.strategy.fidelity.reductionFactor"]
    experiment["spec"]["strategy"]["fidelity"] = {"type": "bohb"}
    assert paths(experiment) == ["spec.strategy.fidelity.type"]
    experiment["spec"]["strategy"]["fidelity"] = {"type": "hyperband"}
    assert validate_experiment(experiment) == []


@pytest.mark.parametrize("other, path", [
    ({"earlyStopping": {"type": "median"}}, "spec.earlyStopping.type"),
    ({"objective": {"metric": "accuracy", "pareto": ["parameters"]}}, "spec.strategy.fidelity"),
])
def test_strategy_fidelity_refuses_what_it_would_contradict(experiment, other, path):
    experiment["spec"]["trial"]["training"]["epochs"] = 9
    experiment["spec"]["strategy"]["fidelity"] = {}
    experiment["spec"]["objective"].pop("target", None)
    experiment["spec"].update(other)
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == [path]
    assert "fidelity" in issues[0].message and "remove" in issues[0].message


def test_unknown_op_names_the_field_and_index(experiment):
    experiment["spec"]["searchSpace"]["cell"]["operations"][2] = "conv_2x2"
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec.searchSpace.cell.operations[2]"]
    assert "conv_2x2" in issues[0].message


def test_parallel_trials_above_max_trials(experiment):
    experiment["spec"]["budget"]["parallelTrials"] = 50
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec.budget.parallelTrials"]
    assert "maxTrials" in issues[0].message


def test_missing_required_field_is_named(experiment):
    del experiment["spec"]["budget"]["maxTrials"]
    assert paths(experiment) == ["spec.budget.maxTrials"]


def test_misspelt_field_gets_a_suggestion(experiment):
    experiment["spec"]["budget"]["maxFailedTrails"] = experiment["spec"]["budget"].pop("maxFailedTrials")
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec.budget.maxFailedTrails"]
    assert "maxFailedTrials" in issues[0].message


def test_dataset_read_from_files_needs_a_path(experiment):
    experiment["spec"]["trial"]["dataset"] = {"name": "cifar10"}
    assert paths(experiment) == ["spec.trial.dataset.path"]


def test_settings_of_another_strategy_are_refused(experiment):
    experiment["spec"]["strategy"]["reinforce"] = {"learningRate": 0.01}
    assert paths(experiment) == ["spec.strategy.reinforce"]


def test_tournament_larger_than_population(experiment):
    experiment["spec"]["strategy"]["evolution"] = {"populationSize": 4, "sampleSize": 6}
    assert paths(experiment) == ["spec.strategy.evolution.sampleSize"]


def test_name_too_long_for_trial_names(experiment):
    experiment["metadata"]["name"] = "x" * 60
    assert paths(experiment) == ["metadata.name"]


def test_goal_must_match_metric(experiment):
    experiment["spec"]["objective"] = {"metric": "loss", "goal": "maximize"}
    assert paths(experiment) == ["spec.objective.goal"]


def test_defaults_fill_every_setting_without_touching_input(experiment):
    before = copy.deepcopy(experiment)
    spec = with_defaults(experiment["spec"])
    assert experiment == before
    assert spec["budget"]["maxFailedTrials"] == 4  # given in the file
    assert spec["trial"]["training"]["schedule"] == "cosine"
    assert spec["earlyStopping"]["type"] == "none"
    assert with_defaults({"objective": {"metric": "loss"}, "budget": {"maxTrials": 50}})["budget"]["maxFailedTrials"] == 8


def test_load_reports_yaml_errors_with_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed")
    with pytest.raises(ExperimentInvalid) as err:
        load_experiment_file(bad)
    assert str(bad) in err.value.issues[0].path


@pytest.mark.parametrize("change, field", [
    (lambda s: s["budget"].update(maxTrials="twenty"), "spec.budget.maxTrials"),
    (lambda s: s["strategy"].update(type="annealing"), "spec.strategy.type"),
    (lambda s: s["searchSpace"]["cell"]["operations"].append("conv_9x9"), "spec.searchSpace.cell.operations[5]"),
    (lambda s: s["budget"].update(parallelTrials=21), "spec.budget.parallelTrials"),
])
def test_cli_validate_exits_non_zero_and_names_the_field(tmp_path, capsys, experiment, change, field):
    change(experiment["spec"])
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(experiment))
    assert main(["validate", str(path)]) == 2
    assert field in capsys.readouterr().err


def test_cli_validate_accepts_an_example(capsys):
    assert main(["validate", str(EXAMPLES[0])]) == 0
    assert "ok" in capsys.readouterr().err


def test_cli_validate_checks_the_dataset_layout_where_the_files_are(tmp_path, capsys):
    """An audio-folder with train/ and no test/ used to pass validate and then fail every
    trial with DataError; where the folder is on this machine validate says so first."""
    experiment = yaml.safe_load((ROOT / "deploy/examples/words-kws-temporal.yaml").read_text())
    root = tmp_path / "words"
    for word in ("yes", "no"):
        (root / "train" / word).mkdir(parents=True)
    experiment["spec"]["trial"]["dataset"].update(name="audio-folder", path=str(root))
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(experiment))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "spec.trial.dataset.path" in err and f"{root} has train/ but no test/ folder" in err
    assert "testing_list.txt" in err and "every trial would fail with DataError" in err
    (root / "test" / "yes").mkdir(parents=True)
    assert main(["validate", str(path)]) == 0
    # A path on a cluster's volume is not here: not checked, and said so.
    experiment["spec"]["trial"]["dataset"]["path"] = str(tmp_path / "on-the-cluster")
    path.write_text(yaml.safe_dump(experiment))
    assert main(["validate", str(path)]) == 0
    assert "is not on this machine" in capsys.readouterr().err


def _crd_trial_properties(kind_file: str, *path: str) -> set:
    crd = yaml.safe_load((ROOT / "crds" / kind_file).read_text())
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for key in path:
        node = node["properties"][key]
    return set(node["properties"])


@pytest.mark.parametrize("kind_file, prefix", [
    ("kubenas.io_nasexperiments.yaml", ("spec", "trial")),
    ("kubenas.io_nastrials.yaml", ("spec",)),
])
def test_crds_know_every_trainer_setting(kind_file, prefix):
    """The CRDs and the trainer accept the same training and dataset fields."""
    from kubenas_trainer.data import SPEC_FIELDS
    from kubenas_trainer.settings import SETTINGS

    assert _crd_trial_properties(kind_file, *prefix, "training") == set(SETTINGS)
    assert _crd_trial_properties(kind_file, *prefix, "dataset") == set(SPEC_FIELDS)


def test_searchable_hyperparameters_are_trainer_settings():
    from kubenas.contract.settings import SEARCHABLE, SETTINGS

    assert set(SEARCHABLE) <= set(SETTINGS)
