"""The controller's strategy checkpoint must fit a ConfigMap, or not be written at all."""
import threading

from kubenas.controller import main as controller_main
from kubenas.controller.main import Controller

EXPERIMENT = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
              "metadata": {"name": "exp", "namespace": "ns", "uid": "u-1"}}


class RecordingKube:
    def __init__(self):
        self.writes = []

    def create(self, kind, namespace, body):
        self.writes.append(("create", kind, body))
        return True

    def patch(self, kind, namespace, name, body):
        self.writes.append(("patch", kind, body))
        return True


class FixedStrategy:
    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state


def controller_with(state):
    kube = RecordingKube()
    controller = Controller("ns", "exp", kube=kube)
    controller.strategy = FixedStrategy(state)
    return controller, kube


def test_small_checkpoint_is_saved_once():
    controller, kube = controller_with({"observed": [1, 2, 3]})
    controller._save_checkpoint(EXPERIMENT)
    controller._save_checkpoint(EXPERIMENT)  # unchanged state: no second write
    assert [(op, kind) for op, kind, _ in kube.writes] == [("create", "ConfigMap")]
    assert '"observed":[1,2,3]' in kube.writes[0][2]["data"]["checkpoint.json"]


def test_oversize_checkpoint_is_skipped_not_sent(caplog):
    controller, kube = controller_with({"blob": "x" * (controller_main.MAX_CHECKPOINT_BYTES + 1)})
    controller._save_checkpoint(EXPERIMENT)
    assert kube.writes == []
    assert "rebuild the strategy from the trials" in caplog.text


def test_checkpoints_are_throttled_and_flushed_when_forced():
    """The state grows with the trials: it is written at most every checkpoint_seconds,
    and once more when the experiment ends or the controller stops."""
    kube = RecordingKube()
    controller = Controller("ns", "exp", kube=kube, checkpoint_seconds=3600)
    controller.strategy = FixedStrategy({"observed": [1]})
    controller._save_checkpoint(EXPERIMENT)
    controller.strategy.state = {"observed": [1, 2]}
    controller._save_checkpoint(EXPERIMENT)  # too soon: not written
    assert [(op, kind) for op, kind, _ in kube.writes] == [("create", "ConfigMap")]
    controller._save_checkpoint(EXPERIMENT, force=True)
    # The ConfigMap is known to exist: patched directly, not created first.
    assert [(op, kind) for op, kind, _ in kube.writes] == [("create", "ConfigMap"), ("patch", "ConfigMap")]
    assert '"observed":[1,2]' in kube.writes[1][2]["data"]["checkpoint.json"]


def test_stopping_controller_saves_its_last_state():
    kube = RecordingKube()
    controller = Controller("ns", "exp", kube=kube, checkpoint_seconds=3600)
    controller.strategy = FixedStrategy({"observed": [1]})
    controller._save_checkpoint(EXPERIMENT)
    controller._experiment = EXPERIMENT
    controller.strategy.state = {"observed": [1, 2, 3]}
    stop = threading.Event()  # set: run() makes no pass, only its final save
    stop.set()
    assert controller.run(stop) == 0
    assert '"observed":[1,2,3]' in kube.writes[-1][2]["data"]["checkpoint.json"]
