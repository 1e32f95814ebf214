"""What an experiment is, whatever runs it: the trial record, the ending rule, ranking and counts.
Owns the decisions local mode, the operator and the controller share; imports kubenas.contract only (no API calls, no torch)."""
from .outcome import Outcome, experiment_outcome, is_better, target_reached
from .ranking import best, best_reward, counts_by_phase, finished_counts, pareto_front, ranked
from .record import (TrialRecord, acknowledged, candidate, failure_line, from_row, from_trial_object,
                     row_from_trial_object, strategy_reward)
from .times import elapsed_seconds, now_iso, parse_time, seconds_between
from .twins import answered_by, can_answer, find_twin, twin_key

__all__ = [
    "Outcome",
    "TrialRecord",
    "acknowledged",
    "answered_by",
    "best",
    "can_answer",
    "best_reward",
    "candidate",
    "counts_by_phase",
    "elapsed_seconds",
    "experiment_outcome",
    "failure_line",
    "find_twin",
    "finished_counts",
    "from_row",
    "from_trial_object",
    "is_better",
    "now_iso",
    "pareto_front",
    "parse_time",
    "ranked",
    "row_from_trial_object",
    "seconds_between",
    "strategy_reward",
    "target_reached",
    "twin_key",
]
