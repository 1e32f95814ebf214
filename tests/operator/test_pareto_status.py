"""status.paretoFront from NASTrial objects through the operator's records and fold (pure)."""
from __future__ import annotations

from kubenas.experiment import from_trial_object
from kubenas.operator.status import PARETO_FRONT, fold


def trial(index, phase="Succeeded", reward=0.9, latency=1.0, params=1000):
    metrics = {"latencyMs": latency, "parameters": params} if latency is not None else {"parameters": params}
    return {"metadata": {"name": f"e-{index}"},
            "spec": {"index": index, "objective": {"metric": "accuracy"},
                     "architecture": {"type": "cell", "nodes": 1, "edges": [["conv_3x3"]]}},
            "status": {"phase": phase, "reward": reward, "metrics": metrics}}


def test_the_front_lists_the_non_dominated_trials_best_reward_first_with_their_costs():
    trials = [trial(0, reward=0.90, latency=2.0), trial(1, reward=0.95, latency=3.0),
              trial(2, reward=0.80, latency=1.0), trial(3, reward=0.85, latency=2.5),  # dominated by 0
              trial(4, "Failed", reward=None), trial(5, reward=0.99, latency=None)]    # no latency: unplaced
    status = fold([from_trial_object(t) for t in trials], "maximize", pareto=["latencyMs"])
    assert [(t["name"], t["reward"], t["metrics"]) for t in status["paretoFront"]] == [
        ("e-1", 0.95, {"latencyMs": 3.0}), ("e-0", 0.90, {"latencyMs": 2.0}), ("e-2", 0.80, {"latencyMs": 1.0})]
    assert status["bestTrial"]["name"] == "e-5"  # the best reward is still the best trial
    assert "paretoFront" not in fold([from_trial_object(t) for t in trials], "maximize")


def test_three_objectives_and_a_long_front_stay_bounded_with_both_ends():
    # 40 trials trading reward against latency exactly: all on the front.
    trials = [trial(i, reward=0.5 + i / 100, latency=1.0 + i, params=1000) for i in range(40)]
    front = fold([from_trial_object(t) for t in trials], "maximize", pareto=["latencyMs", "parameters"])["paretoFront"]
    assert len(front) == PARETO_FRONT
    assert front[0]["name"] == "e-39" and front[-1]["name"] == "e-0"
    assert front[0]["metrics"] == {"latencyMs": 40.0, "parameters": 1000}


def test_a_loss_goal_puts_the_lowest_loss_first():
    trials = [trial(0, reward=0.3, latency=2.0), trial(1, reward=0.2, latency=3.0), trial(2, reward=0.4, latency=2.5)]
    front = fold([from_trial_object(t) for t in trials], "minimize", pareto=["latencyMs"])["paretoFront"]
    assert [t["name"] for t in front] == ["e-1", "e-0"]
