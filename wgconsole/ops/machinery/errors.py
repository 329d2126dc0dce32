"""Errors of operations: what failed, on which host, in which step."""

from __future__ import annotations

from typing import Literal

# Why a plan was refused, for a caller that acts on it (the guard), never matched by its text.
RefusalKind = Literal["already-out-of-service", "does-not-answer"]


class OpError(Exception):
    """An operation could not go on; the message says what happened, for the operator."""


class ValidationError(OpError):
    """Operator input rejected before anything was sent."""

    def __init__(self, message: str, *, kind: RefusalKind | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class LockedError(OpError):
    """Another operator holds the lock on a load balancer."""
