"""Search spaces: chain and cell architectures, general parameters, plus jointly searched hyperparameters.
Owns decisions, encoding and variation of candidates; imports kubenas.contract only (torch-free).

Use ``SearchSpace.from_spec(experiment["spec"]["searchSpace"])``. (A space's
``Decision`` is one categorical choice of the policy, not the operator's
``TrialAction``.)
"""
from .base import Candidate, Decision, SearchSpace
from .cell import CellSpace
from .constraints import NO_CONSTRAINTS, Constraints, cheapest_violation, constraints_from_spec, max_latency_ms
from .chain import ChainSpace
from .errors import CandidateError, SpaceError
from .hyperparameters import Hyperparameter
from .parameters import ParametersSpace

__all__ = [
    "Candidate",
    "CandidateError",
    "CellSpace",
    "Constraints",
    "NO_CONSTRAINTS",
    "cheapest_violation",
    "constraints_from_spec",
    "max_latency_ms",
    "ChainSpace",
    "Decision",
    "Hyperparameter",
    "ParametersSpace",
    "SearchSpace",
    "SpaceError",
]
