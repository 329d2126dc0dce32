"""Errors of operations: what failed, on which host, in which step."""

from __future__ import annotations


class OpError(Exception):
    """An operation could not go on; the message says what happened, for the operator."""


class ValidationError(OpError):
    """Operator input rejected before anything was sent."""


class LockedError(OpError):
    """Another operator holds the lock on a load balancer."""
