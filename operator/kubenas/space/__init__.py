"""Search spaces: chain and cell architectures plus jointly searched hyperparameters.

Torch-free, so the operator and the controller pod can import it. Use
``SearchSpace.from_spec(experiment["spec"]["searchSpace"])``.
"""
from .base import Candidate, Decision, SearchSpace
from .cell import CellSpace
from .chain import ChainSpace
from .errors import CandidateError, SpaceError
from .hyperparameters import Hyperparameter

__all__ = [
    "Candidate",
    "CandidateError",
    "CellSpace",
    "ChainSpace",
    "Decision",
    "Hyperparameter",
    "SearchSpace",
    "SpaceError",
]
