"""Errors raised by search spaces (torch-free, like the whole ``kubenas.space`` package)."""
from __future__ import annotations


class SpaceError(ValueError):
    """A search space or strategy spec that makes no sense.

    ``path`` names the offending field the way a user wrote it, for example
    ``searchSpace.chain.operations[2]`` or ``strategy.evolution.sampleSize``, so that the
    operator can put it verbatim into a condition message.
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class CandidateError(SpaceError):
    """A candidate that is not a member of the search space.

    ``path`` names the first decision at fault (``architecture.layers[1].kernel``,
    ``hyperparameters.learningRate``). A subclass of SpaceError so that callers that only
    care about "this does not fit the space" can catch one exception.
    """
