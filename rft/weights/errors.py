"""Errors of weight sync that cross actors, matched by type rather than by message text.

A learner rank raises `NonFiniteWeights`; Ray carries it to the controller inside a
`RayTaskError` whose `cause` is the original exception. `remote_cause` unwraps it, so the
controller catches `NonFiniteWeights` itself.
"""

from __future__ import annotations


class NonFiniteWeights(RuntimeError):
    """An update left NaN or inf in the weights; they were not written or streamed to the engines."""


def remote_cause(err: BaseException) -> BaseException:
    """The exception an actor raised, for a `ray.exceptions.RayTaskError` (else `err` itself)."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err
