"""The one-shot plan's phases as pure decisions (kubenas.experiment.oneshot): what to
start next given the records and the free slots, and the same answer from the records
alone after a restart."""
import pytest

from kubenas.contract import FAILED, RUNNING, SUCCEEDED
from kubenas.experiment import oneshot
from kubenas.experiment.oneshot import RETRAIN, SCORE, SUPERNET, OneShotError, OneShotTrial, Start

S = oneshot.settings({"candidates": 10, "candidatesPerTrial": 4, "topK": 2})


def supernet(phase=SUCCEEDED):
    return OneShotTrial(0, phase, SUPERNET)


def score(index, batch, phase=SUCCEEDED, scores=None):
    return OneShotTrial(index, phase, SCORE, tuple(batch),
                        tuple(scores if scores is not None else [c / 100 for c in batch]) if phase == SUCCEEDED else ())


def test_the_supernet_comes_first_and_alone():
    assert oneshot.next_trials(S, [], 3) == [Start(0, SUPERNET)]
    assert oneshot.next_trials(S, [supernet(RUNNING)], 3) == []  # nothing is scored before it is trained
    assert oneshot.outcome(S, [supernet(RUNNING)]) is None


def test_candidates_are_scored_in_batches_one_trial_each_as_slots_allow():
    starts = oneshot.next_trials(S, [supernet()], 2)
    assert starts == [Start(1, SCORE, (0, 1, 2, 3)), Start(2, SCORE, (4, 5, 6, 7))]
    records = [supernet(), score(1, (0, 1, 2, 3), RUNNING), score(2, (4, 5, 6, 7), RUNNING)]
    assert oneshot.next_trials(S, records, 5) == [Start(3, SCORE, (8, 9))]
    assert oneshot.next_trials(S, records, 0) == []


def test_top_k_by_inherited_score_are_retrained_and_the_best_retrained_trial_wins():
    records = [supernet(), score(1, (0, 1, 2, 3)), score(2, (4, 5, 6, 7), scores=[0.5, 0.9, 0.1, 0.9]),
               score(3, (8, 9))]
    assert oneshot.observations(records)[5] == 0.9
    # 5 and 7 tie at 0.9: the lower index first
    assert oneshot.next_trials(S, records, 4) == [Start(4, RETRAIN, (5,)), Start(5, RETRAIN, (7,))]
    records += [OneShotTrial(4, SUCCEEDED, RETRAIN, (5,), reward=0.93),
                OneShotTrial(5, RUNNING, RETRAIN, (7,))]
    assert oneshot.next_trials(S, records, 4) == [] and oneshot.outcome(S, records) is None
    records[-1] = OneShotTrial(5, SUCCEEDED, RETRAIN, (7,), reward=0.95)
    phase, _, best = oneshot.outcome(S, records)
    assert phase == SUCCEEDED and best.kind == RETRAIN and best.candidates == (7,)


def test_a_failed_score_trial_is_retried_then_its_batch_given_up():
    records = [supernet(), score(1, (0, 1, 2, 3), FAILED), score(2, (4, 5, 6, 7)), score(3, (8, 9))]
    assert oneshot.next_trials(S, records, 3) == [Start(4, SCORE, (0, 1, 2, 3))]
    records.append(score(4, (0, 1, 2, 3), FAILED))  # retries: 1 -> given up; the rest go on
    assert oneshot.next_trials(S, records, 3) == [Start(5, RETRAIN, (9,)), Start(6, RETRAIN, (8,))]


def test_a_failed_supernet_fails_the_experiment():
    phase, message, best = oneshot.outcome(S, [supernet(FAILED)])
    assert phase == FAILED and "supernet" in message and best is None


def test_the_decisions_are_a_function_of_the_records_alone():
    """A restarted controller replays the same records in any order and decides the same."""
    records = [supernet(), score(2, (4, 5, 6, 7), scores=[0.5, 0.9, 0.1, 0.2]), score(1, (0, 1, 2, 3)),
               score(3, (8, 9), RUNNING)]
    first = oneshot.next_trials(S, records, 3)
    assert first == oneshot.next_trials(S, list(reversed(records)), 3) == []
    assert oneshot.observations(records) == oneshot.observations(list(reversed(records)))


@pytest.mark.parametrize("raw, field", [
    ({"candidatesPerTrial": 0}, "spec.oneShot.candidatesPerTrial"),
    ({"candidates": 5, "candidatesPerTrial": 6}, "spec.oneShot.candidatesPerTrial"),
    ({"topK": "3"}, "spec.oneShot.topK"),
    ({"sampling": "reinforce"}, "spec.oneShot.sampling"),
    ({"supernetEpoch": 3}, "spec.oneShot.supernetEpoch"),
])
def test_bad_settings_name_the_field(raw, field):
    with pytest.raises(OneShotError, match=field.replace(".", r"\.")):
        oneshot.settings(raw)
