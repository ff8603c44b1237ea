"""The notifier's queue, retries and drops; the health notices; every kind through real
receivers on loopback (the engine-wide kinds the system tests do not provoke)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from hmt.core.calendar import IST
from hmt.core.notices import Notice, NoticeKind
from hmt.core.outbound import parse_nets
from hmt.engine.health import Health, Verdict
from hmt.engine.notices import Notifier, NotifyPolicy
from hmt.engine.reminders import HealthNotices, LoginReminder
from hmt.engine.session import BrokerSession
from hmt.notify.deliver import DeliveryFailed, deliver
from tests.support.eventually import eventually
from tests.support.receivers import http_receiver, mail_url, smtp_receiver


@dataclass(frozen=True)
class Target:
    channel_id: str
    user_id: str
    url: str


class Targets:
    def __init__(self, *urls: str) -> None:
        self.urls = urls
        self.asked: list[tuple[str | None, NoticeKind]] = []

    async def targets(self, user_id: str | None, kind: NoticeKind) -> list[Target]:
        self.asked.append((user_id, kind))
        return [Target(f"c{i}", user_id or "ops", url) for i, url in enumerate(self.urls)]


def notice(kind: NoticeKind = NoticeKind.PLACED, n: int = 0) -> Notice:
    return Notice(kind, f"title {n}", f"body {n}", user_id="alice")


async def test_every_kind_reaches_a_webhook_and_a_mailbox() -> None:
    allowed = parse_nets("127.0.0.1/32")
    with smtp_receiver() as (port, box):
        async with http_receiver() as hook:
            targets = Targets(f"json://{hook.url}/hook", mail_url(port))
            notifier = Notifier(targets, lambda url, t, b: deliver(url, t, b, allowed, timeout=5))
            notifier.start()
            try:
                for kind in NoticeKind:
                    notifier.notice(Notice(kind, f"hmt: {kind.value}", f"about {kind.value}"))
                await eventually(lambda: notifier.stats.sent == 2 * len(NoticeKind), within=20)
            finally:
                await notifier.stop()
    got = {json.loads(r["body"])["title"] for r in hook.requests}
    assert got == {f"hmt: {kind.value}" for kind in NoticeKind}
    assert {m["Subject"] for m in box.messages} == got
    assert notifier.stats.failed == notifier.stats.dropped == 0


async def test_a_failing_channel_is_retried_with_backoff_then_given_up() -> None:
    calls: list[str] = []

    def send(url: str, title: str, body: str) -> None:
        calls.append(title)
        raise DeliveryFailed("connection refused")

    notifier = Notifier(Targets("json://x"), send, NotifyPolicy(attempts=3, backoff=0.01, cap=0.02))
    notifier.start()
    try:
        notifier.notice(notice())
        await eventually(lambda: notifier.stats.failed == 1)
    finally:
        await notifier.stop()
    assert len(calls) == 3
    assert notifier.stats.retried == 2
    assert notifier.stats.sent == 0


async def test_a_refused_address_is_not_retried() -> None:
    calls = 0

    def send(url: str, title: str, body: str) -> None:
        nonlocal calls
        calls += 1
        raise DeliveryFailed("refused: 10.0.0.1 is private", refused=True)

    notifier = Notifier(Targets("json://x"), send, NotifyPolicy(attempts=5, backoff=0.01))
    notifier.start()
    try:
        notifier.notice(notice())
        await eventually(lambda: notifier.stats.failed == 1)
    finally:
        await notifier.stop()
    assert calls == 1
    assert notifier.stats.refused == 1


async def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    """Without workers nothing drains: the engine's side stays bounded and never blocks."""
    notifier = Notifier(Targets(), lambda *_: None, NotifyPolicy(limit=10))
    for n in range(25):
        notifier.notice(notice(n=n))
    assert notifier.stats.queued == 10
    assert notifier.stats.dropped == 15
    sent: list[str] = []
    notifier = Notifier(Targets("json://x"), lambda u, t, b: sent.append(t), NotifyPolicy(limit=10))
    for n in range(25):
        notifier.notice(notice(n=n))
    notifier.start()
    try:
        await eventually(lambda: len(sent) == 10)
    finally:
        await notifier.stop()
    assert sent == [f"title {n}" for n in range(15, 25)]  # the newest were kept


def test_health_notices_only_after_the_engine_was_seen_ok() -> None:
    sent: list[Notice] = []
    watch = HealthNotices(sent.append)
    watch(Health(Verdict.DOWN, ("ticker disconnected",)))  # start-up: no notice
    assert sent == []
    watch(Health(Verdict.OK, ()))
    watch(Health(Verdict.DEGRADED, ("no recent ticks",)))
    watch(Health(Verdict.DEGRADED, ("no recent ticks",)))  # the same verdict is not news
    watch(Health(Verdict.DOWN, ("database unreachable",)))
    watch(Health(Verdict.DISABLED, ("the engine is stopped",)))
    assert [n.kind for n in sent] == [NoticeKind.ENGINE_DEGRADED, NoticeKind.ENGINE_DOWN]
    assert sent[1].body == "database unreachable"
    assert all(n.user_id is None for n in sent)  # to every user who chose the kind


def test_the_login_reminder_at_0845_ist_then_hourly_and_at_once_on_expiry() -> None:
    now = [datetime(2026, 12, 7, 8, 0, tzinfo=IST)]
    sent: list[Notice] = []
    session = BrokerSession(awaiting_login=True, clock=lambda: now[0])
    reminder = LoginReminder(session, sent.append, lambda: now[0], "https://hmt.example/kite/login")
    assert not reminder.check()
    now[0] = now[0].replace(minute=45)
    assert reminder.check()
    assert not reminder.check()
    assert sent[0].kind is NoticeKind.LOGIN_REQUIRED
    assert "https://hmt.example/kite/login" in sent[0].body
    now[0] = now[0].replace(hour=9, minute=45)
    assert reminder.check()
    session.renew("fresh-access-token")
    now[0] = now[0].replace(hour=11)
    assert not reminder.check()
    session.on_expired.append(reminder.expired)
    session.expired("TokenException: expired")
    assert len(sent) == 3
    assert "TokenException: expired" in sent[2].body


def test_a_token_from_yesterday_is_reminded_although_kite_has_not_refused_it_yet() -> None:
    now = [datetime(2026, 12, 4, 15, 0, tzinfo=IST)]  # Friday afternoon: a login
    sent: list[Notice] = []
    session = BrokerSession(clock=lambda: now[0])
    reminder = LoginReminder(session, sent.append, lambda: now[0], "http://hmt/kite/login")
    assert not reminder.check()
    now[0] = datetime(2026, 12, 7, 8, 45, tzinfo=IST)  # Monday: the token lapsed at 06:00
    assert reminder.check()
    assert "before 06:00 IST" in sent[0].body
    session.renew("monday-access-token")
    now[0] = now[0].replace(hour=9, minute=50)
    assert not reminder.check()
