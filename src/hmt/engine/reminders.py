"""Notices hmt raises about itself: the broker login, and its health verdict.

`LoginReminder`: at once when the broker refuses the session, then on the
schedule of `hmt.core.login_reminder` (08:45 IST on a trading day, hourly until
a login). `HealthNotices`: a verdict that turns down or degraded after the
engine had been seen ok, so a start-up (down until the ticker connects and the
order book is read) raises none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import structlog

from hmt.core.login_reminder import due
from hmt.core.notices import Notice, NoticeKind
from hmt.engine.health import Health, Verdict
from hmt.engine.session import BrokerSession

log = structlog.get_logger("hmt.notify")

CHECK_EVERY_S = 60.0


class LoginReminder:
    def __init__(
        self,
        session: BrokerSession,
        notify: Callable[[Notice], None],
        clock: Callable[[], datetime],
        link: str,
    ) -> None:
        self._session = session
        self._notify = notify
        self._clock = clock
        self._link = link
        self.last_sent: datetime | None = None

    def _send(self, why: str) -> None:
        body = (
            f"The Kite session is not valid ({why}): nothing fires until you log in at {self._link}"
        )
        self._notify(Notice(NoticeKind.LOGIN_REQUIRED, "hmt: Kite login required", body))
        self.last_sent = self._clock()
        log.info("login_reminder_sent", reason=why)

    def expired(self, reason: str) -> None:
        """The broker refused the session just now."""
        self._send(reason or "the broker refused it")

    def check(self) -> bool:
        """Send the day's reminder if one is due; sent?"""
        now, session = self._clock(), self._session
        if not due(
            now, session_valid=session.valid, last_sent=self.last_sent, session_since=session.since
        ):
            return False
        if session.valid:
            why = "the access token in use is from before 06:00 IST, when Kite ends them"
        else:
            why = session.reason or "no login yet today"
        self._send(why)
        return True

    async def run(self, every: float = CHECK_EVERY_S) -> None:
        while True:
            try:
                self.check()
            except Exception:  # one bad round must not end the reminders
                log.exception("login_reminder_failed")
            await asyncio.sleep(every)


class HealthNotices:
    def __init__(self, notify: Callable[[Notice], None]) -> None:
        self._notify = notify
        self._seen_ok = False
        self._last: Verdict | None = None

    def __call__(self, health: Health) -> None:
        verdict, last = health.verdict, self._last
        self._last = verdict
        if verdict is Verdict.OK:
            self._seen_ok = True
            return
        if not self._seen_ok or verdict is last:
            return
        reasons = "; ".join(health.reasons)
        if verdict is Verdict.DOWN:
            kind, title = NoticeKind.ENGINE_DOWN, "hmt: engine down, nothing can fire"
        elif verdict is Verdict.DEGRADED:
            kind, title = NoticeKind.ENGINE_DEGRADED, "hmt: engine degraded"
        else:
            return  # disabled or stopped: the operator's own doing
        self._notify(Notice(kind, title, reasons))
