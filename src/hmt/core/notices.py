"""What hmt tells a trader who is not watching: the kinds of notice and their text.

A notice is addressed to one user (their trigger fired, placed, failed) or to
every user (`user_id` None: the login, the engine's health), and each user
chooses per channel which kinds they want (docs/notifications.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NoticeKind(StrEnum):
    FIRED = "fired"
    PLACED = "placed"
    FAILED = "failed"  # with the broker's message
    GAP_FIRED = "gap_fired"  # a missed touch fired its leg
    GAP_SKIPPED = "gap_skipped"  # a missed touch skipped it (on_gap=skip)
    LOGIN_REQUIRED = "login_required"
    ENGINE_DOWN = "engine_down"
    ENGINE_DEGRADED = "engine_degraded"


ALL_KINDS = tuple(NoticeKind)


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    title: str
    body: str
    user_id: str | None = None  # None: every user with a channel for this kind
    trigger_id: str | None = None


def parse_kinds(values: list[str]) -> tuple[NoticeKind, ...]:
    """Notice kinds by name, in `NoticeKind`'s order; ValueError naming an unknown one."""
    known = {kind.value: kind for kind in NoticeKind}
    unknown = [value for value in values if value not in known]
    if unknown:
        raise ValueError(f"unknown notice kinds {unknown}: known are {[*known]}")
    return tuple(kind for kind in NoticeKind if kind.value in values)
