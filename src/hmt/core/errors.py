"""Errors the core raises; each names what was wrong in words a trader can act on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class HmtError(Exception):
    """Base of every error hmt raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One broken rule: the field, a short rule name, and a sentence for people."""

    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.rule}]"


class InvalidTrigger(HmtError, ValueError):
    """A trigger that breaks one or more rules of DESIGN section 1."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


class IllegalTransition(HmtError):
    """A status change that the lifecycle table does not allow."""

    def __init__(self, status: str, event: str) -> None:
        self.status = status
        self.event = event
        super().__init__(f"event {event!r} is not allowed in status {status!r}")


class DuplicateTrigger(HmtError):
    """A trigger id that is already in the book."""


class ClaimLost(HmtError):
    """A claim this engine no longer holds: its lease expired and another engine took it.

    The engine that now holds the claim settles the order (by its tag first); the
    one that lost it must write nothing more about it.
    """

    def __init__(self, trigger_id: str) -> None:
        self.trigger_id = trigger_id
        super().__init__(f"the claim on trigger {trigger_id} is no longer this engine's")
