"""When to remind the trader to log in to the broker (Kite's session lapses at 06:00 IST).

The first reminder goes `LEAD` before the equity market opens on a trading
day (08:45 IST for a 09:15 open), then one every `EVERY` while the session is
still invalid, until the day's last session closes. No reminder on a weekend
or a holiday: nothing trades. A session in use since before today's 06:00 IST
counts as invalid: Kite lapsed it then, though hmt learns so only when Kite
next refuses it. Pure: the caller passes the time and what it last sent.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from hmt.core.calendar import IST, sessions

LEAD = timedelta(minutes=30)
EVERY = timedelta(hours=1)
EXCHANGE = "NSE"
LAPSE = time(6, 0)  # IST: Kite's access tokens end here every day


def window(at: datetime) -> tuple[datetime, datetime] | None:
    """(first reminder, last session's close) of `at`'s IST day, or None if it does not trade."""
    day = at.astimezone(IST).date()
    today = sessions(EXCHANGE, day)
    if not today:
        return None
    return today[0][0] - LEAD, today[-1][1]


def lapsed(at: datetime, since: datetime | None) -> bool:
    """Whether a session in use since `since` was lapsed by Kite by `at` (06:00 IST today)."""
    if since is None:
        return False
    return since < datetime.combine(at.astimezone(IST).date(), LAPSE, IST) <= at


def due(
    at: datetime,
    *,
    session_valid: bool,
    last_sent: datetime | None,
    session_since: datetime | None = None,
) -> bool:
    """Whether a `login_required` reminder is due at `at` (a zoned instant)."""
    if session_valid and not lapsed(at, session_since):
        return False
    span = window(at)
    if span is None or not span[0] <= at < span[1]:
        return False
    if last_sent is None or last_sent < span[0]:
        return True  # none yet today
    return at - last_sent >= EVERY
