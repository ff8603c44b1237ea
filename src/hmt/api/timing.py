"""Advice on a time leg's time: the exchanges' calendar says whether its orders can trade then.

A warning, never a refusal (docs/api.md): a time on a closed day or outside
the session is the trader's call (an AMO, a mistake, or a deliberate stop),
but one they should see before they rely on it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hmt.core import calendar
from hmt.core.model import Trigger

IST = timezone(timedelta(hours=5, minutes=30))


def time_warnings(trigger: Trigger, now: datetime) -> list[str]:
    """One warning per time leg and exchange of its orders that is not trading at its time."""
    out = []
    for leg in trigger.legs:
        at = trigger.fire_at(leg)
        if at is None or at.tzinfo is None or at <= now:
            continue  # validation names these
        try:
            local = at.astimezone(IST)
        except OverflowError:  # the last day of year 9999 east of UTC: no calendar says
            continue
        shown = local.strftime("%Y-%m-%d %H:%M IST")
        exchanges = dict.fromkeys(o.exchange for o in trigger.orders(leg))
        for exchange in exchanges:
            field = f"legs[{leg - 1}].condition.at"
            if not calendar.covers(local.date()):
                out.append(f"{field}: {shown}: no {exchange} holiday calendar for that year here")
                continue
            try:
                closed = calendar.closed_at(exchange, at)
            except ValueError:  # an exchange without a calendar: nothing to say
                continue
            if closed is not None:
                out.append(
                    f"{field}: {shown}: {exchange} is closed then ({closed}); "
                    "its orders may be refused"
                )
    return out
