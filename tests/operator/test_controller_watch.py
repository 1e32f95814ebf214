"""The controller's informer: a watch the server ends is resumed from the last version
seen; only a failed watch makes the controller list every trial again."""
from kubernetes.client.exceptions import ApiException

from kubenas.controller.main import Controller


def trial(name, version):
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": {"experiment": "exp"}}


class ScriptedWatches:
    """Each call to watch_custom plays the next script (a list of events, or an exception)."""

    def __init__(self, scripts):
        self.controller = None
        self.scripts = list(scripts)
        self.versions = []

    def watch_custom(self, plural, namespace, selector, version, watcher=None):
        self.versions.append(version)
        if not self.scripts:
            self.controller._closed = True  # end the test: no more watches
            return
        script = self.scripts.pop(0)
        if isinstance(script, Exception):
            raise script
        yield from script


def run_watch(scripts):
    kube = ScriptedWatches(scripts)
    controller = kube.controller = Controller("ns", "exp", kube=kube)
    controller._watching, controller._watch_generation = True, 1
    controller._watch(1, "10")
    return controller, kube


def test_ended_watch_resumes_from_the_last_version_seen():
    controller, kube = run_watch([
        [{"type": "ADDED", "object": trial("exp-0", "11")}, {"type": "BOOKMARK", "object": trial("", "15")}],
        [{"type": "MODIFIED", "object": trial("exp-0", "16")}],
    ])
    assert kube.versions == ["10", "15", "16"]
    assert controller._changes["exp-0"]["metadata"]["resourceVersion"] == "16"


def test_failed_watch_lists_again():
    controller, kube = run_watch([ApiException(status=410, reason="Gone")])
    assert kube.versions == ["10"]
    assert controller._watching is False  # the next pass lists


def test_error_event_lists_again():
    controller, kube = run_watch([[{"type": "ERROR", "object": {"code": 410}}]])
    assert kube.versions == ["10"] and controller._watching is False
