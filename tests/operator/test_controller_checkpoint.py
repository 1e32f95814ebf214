"""The controller's strategy checkpoint must fit a ConfigMap, or not be written at all."""
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
