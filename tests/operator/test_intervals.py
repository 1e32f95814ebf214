"""Each control-plane interval is defined once (kubenas.cluster.intervals): the operator's
default, the controller's default and what the operator passes to the controller agree."""
from __future__ import annotations

import inspect

from kubenas.cluster import intervals
from kubenas.controller.main import Controller
from kubenas.operator.handlers import Options
from kubenas.operator.main import options_from_env
from kubenas.operator.manifests import Settings, controller_deployment


def test_the_controller_poll_interval_is_one_setting(monkeypatch):
    monkeypatch.delenv(intervals.CONTROLLER_POLL_ENV, raising=False)
    assert Settings().controller_poll_seconds == Settings.from_env().controller_poll_seconds \
        == inspect.signature(Controller).parameters["poll_seconds"].default == intervals.CONTROLLER_POLL_SECONDS
    exp = {"metadata": {"name": "e", "namespace": "ns", "uid": "u"}, "spec": {}}
    env = {e["name"]: e.get("value") for e in
           controller_deployment(exp, {"strategy": {"type": "random"}}, Settings(controller_poll_seconds=7.0))
           ["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[intervals.CONTROLLER_POLL_ENV] == "7.0"  # the variable the controller reads


def test_the_operator_resync_interval_is_one_setting(monkeypatch):
    monkeypatch.delenv(intervals.OPERATOR_RESYNC_ENV, raising=False)
    assert Options().resync_seconds == options_from_env().resync_seconds == intervals.OPERATOR_RESYNC_SECONDS
    monkeypatch.setenv(intervals.OPERATOR_RESYNC_ENV, "12")
    assert options_from_env().resync_seconds == 12.0
