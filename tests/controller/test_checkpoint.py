"""The controller's strategy checkpoint must fit a ConfigMap, or not be written at all."""
import threading

from kubenas.cluster.objects import owner_reference
from kubenas.controller.checkpoint import MAX_CHECKPOINT_BYTES, CheckpointStore
from kubenas.controller.main import Controller

EXPERIMENT = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
              "metadata": {"name": "exp", "namespace": "ns", "uid": "u-1"}}
OURS = {"uid": "cm-1", "ownerReferences": [owner_reference(EXPERIMENT)]}


def configmap(text: str, **metadata) -> dict:
    return {"metadata": {"name": "exp-strategy", **(metadata or OURS)}, "data": {"checkpoint.json": text}}


class RecordingKube:
    def __init__(self, stored=None):
        self.writes = []
        self.stored = stored

    def get(self, kind, namespace, name):
        return self.stored

    def create(self, kind, namespace, body):
        self.writes.append(("create", kind, body))
        if self.stored is not None:
            return None  # 409: the name is taken
        self.stored = {**body, "metadata": {**body["metadata"], "uid": "cm-1"}}
        return self.stored

    def patch(self, kind, namespace, name, body):
        self.writes.append(("patch", kind, body))
        return True


def ops(kube):
    return [(op, kind) for op, kind, _ in kube.writes]


def test_small_checkpoint_is_saved_once():
    kube = RecordingKube()
    store = CheckpointStore(kube, "ns", "exp")
    assert store.save(EXPERIMENT, lambda: {"observed": [1, 2, 3]})
    assert not store.save(EXPERIMENT, lambda: {"observed": [1, 2, 3]})  # unchanged state: no second write
    assert ops(kube) == [("create", "ConfigMap")]
    assert '"observed":[1,2,3]' in kube.writes[0][2]["data"]["checkpoint.json"]


def test_oversize_checkpoint_is_skipped_not_sent(caplog):
    kube = RecordingKube()
    assert not CheckpointStore(kube, "ns", "exp").save(EXPERIMENT, lambda: {"blob": "x" * (MAX_CHECKPOINT_BYTES + 1)})
    assert kube.writes == []
    assert "rebuild the strategy from the trials" in caplog.text


def test_checkpoints_are_throttled_and_flushed_when_forced():
    """The state grows with the trials: it is written at most every interval seconds,
    and once more when the experiment ends or the controller stops."""
    kube = RecordingKube()
    store = CheckpointStore(kube, "ns", "exp", interval=3600)
    asked = []

    def state(value):
        return lambda: asked.append(value) or value

    store.save(EXPERIMENT, state({"observed": [1]}))
    store.save(EXPERIMENT, state({"observed": [1, 2]}))  # too soon: neither asked for nor written
    assert ops(kube) == [("create", "ConfigMap")] and asked == [{"observed": [1]}]
    store.save(EXPERIMENT, state({"observed": [1, 2]}), force=True)
    # The ConfigMap is known to exist: patched directly, not created first.
    assert ops(kube) == [("create", "ConfigMap"), ("patch", "ConfigMap")]
    assert '"observed":[1,2]' in kube.writes[1][2]["data"]["checkpoint.json"]


def test_a_checkpoint_of_another_experiment_is_refused():
    stored = configmap('{"experimentUid": "u-0", "state": {}}')
    store = CheckpointStore(RecordingKube(stored), "ns", "exp")
    try:
        store.load(EXPERIMENT)
    except ValueError as err:
        assert "earlier experiment" in str(err)
    else:
        raise AssertionError("a foreign checkpoint was loaded")
    mine = configmap('{"experimentUid": "u-1", "state": {"observed": [4]}}')
    assert CheckpointStore(RecordingKube(mine), "ns", "exp").load(EXPERIMENT) == {"observed": [4]}


class FixedStrategy:
    def __init__(self, state):
        self.state = state

    def state_dict(self):
        return self.state


def test_stopping_controller_saves_its_last_state():
    kube = RecordingKube()
    controller = Controller("ns", "exp", kube=kube, checkpoint_seconds=3600)
    controller.strategy = FixedStrategy({"observed": [1]})
    controller.save_checkpoint(EXPERIMENT)
    controller.strategy.state = {"observed": [1, 2, 3]}
    controller.last_experiment = EXPERIMENT  # what the passes before the stop read
    stop = threading.Event()
    stop.set()  # set: run() makes no pass, only its final save
    assert controller.run(stop) == 0
    assert '"observed":[1,2,3]' in kube.writes[-1][2]["data"]["checkpoint.json"]


def test_a_checkpoint_of_the_wrong_shape_is_a_named_error_not_a_wedge():
    import pytest

    for text in ("[]", '"x"', "1", '{"experimentUid": "u-1"}', '{"state": []}', "{not json"):
        stored = configmap(text)
        with pytest.raises(ValueError, match="wrong shape|not JSON"):
            CheckpointStore(RecordingKube(stored), "ns", "exp").load(EXPERIMENT)


def test_a_configmap_of_that_name_not_owned_by_the_experiment_is_neither_read_nor_written(caplog):
    """NameConflict: someone else's ConfigMap <experiment>-strategy (no ownerReference to
    this experiment's uid) is not a checkpoint to restore, and the controller's create
    answered 409 does not make it patch it."""
    for metadata in ({"uid": "admin-1"},  # no owner at all
                     {"uid": "admin-2", "ownerReferences": [{**owner_reference(EXPERIMENT), "uid": "u-0",
                                                             "name": "other"}]}):
        foreign = configmap('{"experimentUid": "u-1", "state": {"observed": [9]}}', **metadata)
        kube = RecordingKube(foreign)
        store = CheckpointStore(kube, "ns", "exp")
        assert store.load(EXPERIMENT) is None
        assert not store.save(EXPERIMENT, lambda: {"observed": [1]}, force=True)
        assert not store.save(EXPERIMENT, lambda: {"observed": [1, 2]}, force=True)
        assert ops(kube) == [], kube.writes  # nothing was even created: the name is known to be taken
        assert "NameConflict: ConfigMap ns/exp-strategy exists and is not this experiment's" in caplog.text

    # Found only when the create answers 409 (no load before): still not patched.
    kube = RecordingKube(configmap("{}", uid="admin-3"))
    store = CheckpointStore(kube, "ns", "exp")
    assert not store.save(EXPERIMENT, lambda: {"observed": [1]}, force=True)
    assert ops(kube) == [("create", "ConfigMap")] and store.foreign


def test_our_own_configmap_is_patched_by_its_uid():
    """A restarted controller finds its experiment's ConfigMap (create answers 409) and
    patches it naming its uid, so a namesake made meanwhile is refused (uid is immutable)."""
    kube = RecordingKube(configmap('{"experimentUid": "u-1", "state": {}}'))
    store = CheckpointStore(kube, "ns", "exp")
    assert store.save(EXPERIMENT, lambda: {"observed": [1]}, force=True)
    assert ops(kube) == [("create", "ConfigMap"), ("patch", "ConfigMap")]
    assert kube.writes[-1][2]["metadata"] == {"uid": "cm-1"}
