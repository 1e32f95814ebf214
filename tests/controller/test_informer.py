"""The controller's informer: a watch the server ends is resumed from the last version
seen; only a failed watch makes the controller list every trial again."""
from kubernetes.client.exceptions import ApiException

from kubenas.controller.informer import TrialInformer


def trial(name, version, **status):
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": {"experiment": "exp", "index": 0},
            "status": status}


class ScriptedWatches:
    """Each call to watch_custom plays the next script (a list of events, or an exception)."""

    def __init__(self, scripts, listed=()):
        self.informer = None
        self.scripts = list(scripts)
        self.listed = list(listed)
        self.versions = []

    def list_custom_with_version(self, plural, namespace, selector):
        return list(self.listed), "10"

    def watch_custom(self, plural, namespace, selector, version, watcher=None):
        self.versions.append(version)
        if not self.scripts:
            self.informer.close()  # end the test: no more watches
            return
        script = self.scripts.pop(0)
        if isinstance(script, Exception):
            raise script
        yield from script


def run_watch(scripts):
    kube = ScriptedWatches(scripts)
    informer = kube.informer = TrialInformer(kube, "ns", "exp")
    informer.watch("10")
    return informer, kube


def test_ended_watch_resumes_from_the_last_version_seen():
    informer, kube = run_watch([
        [{"type": "ADDED", "object": trial("exp-0", "11")}, {"type": "BOOKMARK", "object": trial("", "15")}],
        [{"type": "MODIFIED", "object": trial("exp-0", "16")}],
    ])
    assert kube.versions == ["10", "15", "16"]
    assert informer.queued()["exp-0"]["metadata"]["resourceVersion"] == "16"


def test_failed_watch_lists_again():
    informer, kube = run_watch([ApiException(status=410, reason="Gone")])
    assert kube.versions == ["10"]
    assert informer.watching is False  # the next sync lists


def test_error_event_lists_again():
    informer, kube = run_watch([[{"type": "ERROR", "object": {"code": 410}}]])
    assert kube.versions == ["10"] and informer.watching is False


def test_sync_lists_then_reports_changes_with_what_was_known_before():
    kube = ScriptedWatches([], listed=[trial("exp-0", "5", phase="Running")])
    informer = kube.informer = TrialInformer(kube, "ns", "exp")
    (change,) = informer.sync()
    assert change.previous is None and change.record.phase == "Running" and informer.finished == 0
    informer.close()
