"""Notices off the tick path: a bounded queue, a few workers, retries with backoff.

The engine's `notice` only appends to a deque and wakes a worker: it never
awaits, never reads the database, never touches the network. Workers look up
the channels that want the notice (the store) and send to each on a thread
pool of their own (apprise blocks), so a slow or dead service holds at most
one worker thread, and never the engine's loop or its default executor.

A delivery that fails is tried again after `backoff`, doubling up to `cap`,
`attempts` times in all; one the outbound rule refused is not tried again.
The queue holds at most `limit` items (notices waiting for their channels,
deliveries waiting for a worker or for their retry): when full, the oldest
waiting item is dropped and counted (`dropped`), since a recent notice (the
fill, the failure) matters more than an old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog

from hmt.core.notices import Notice, NoticeKind

log = structlog.get_logger("hmt.notify")
T = TypeVar("T")


class Target(Protocol):
    @property
    def channel_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def url(self) -> str: ...


class Targets(Protocol):
    """The channels that want a notice (the store)."""

    async def targets(self, user_id: str | None, kind: NoticeKind) -> Sequence[Target]: ...


# Blocking: sends one notice to one URL, or raises (an exception whose `refused` is true
# when the outbound rule stopped it; its message never holds the URL).
Send = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class NotifyPolicy:
    limit: int = 1000  # queued items at most (HMT_NOTIFY_QUEUE)
    attempts: int = 4  # tries per delivery
    backoff: float = 2.0  # seconds before the second try, doubled after each
    cap: float = 60.0
    workers: int = 4  # threads sending at once: a slow service holds one


@dataclass(slots=True)
class NotifyStats:
    sent: int = 0
    failed: int = 0  # gave up after its attempts, or refused
    refused: int = 0  # of which the outbound rule refused
    retried: int = 0
    dropped: int = 0  # the queue was full: the oldest waiting item
    queued: int = 0  # waiting now (a gauge)


@dataclass(slots=True)
class _Delivery:
    notice: Notice
    target: Target | None = None  # None: its channels are not looked up yet
    attempt: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Notifier:
    def __init__(
        self,
        targets: Targets,
        send: Send,
        policy: NotifyPolicy | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._targets = targets
        self._send = send
        self.policy = policy or NotifyPolicy()
        self._rng = rng or random.Random()
        self._ready: deque[_Delivery] = deque()
        self._waiting: deque[_Delivery] = deque()  # retries not due yet, oldest first
        self._wake = asyncio.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._workers: list[asyncio.Task[None]] = []
        self.stats = NotifyStats()

    # --- the engine's side: never blocks ------------------------------------------------

    def notice(self, notice: Notice) -> None:
        """Queue `notice` for every channel that wants it; returns at once."""
        self._put(_Delivery(notice))

    def _put(self, item: _Delivery) -> None:
        if len(self._ready) + len(self._waiting) >= self.policy.limit:
            self._drop_oldest()
        self._ready.append(item)
        self._count()
        self._wake.set()

    def _drop_oldest(self) -> None:
        self.stats.dropped += 1
        if self._waiting:  # a retry is older than anything still ready
            old = self._waiting.popleft()
            if old.timer is not None:
                old.timer.cancel()
        elif self._ready:
            self._ready.popleft()

    def _count(self) -> None:
        self.stats.queued = len(self._ready) + len(self._waiting)

    # --- the workers ----------------------------------------------------------------------

    def start(self) -> None:
        if self._workers:
            return
        self._pool = ThreadPoolExecutor(self.policy.workers, thread_name_prefix="hmt-notify")
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(self.policy.workers)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        for item in self._waiting:
            if item.timer is not None:
                item.timer.cancel()
        if self._pool is not None:
            # A send stuck in a slow service is left to its own timeout, not waited for.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def _work(self) -> None:
        while True:
            while not self._ready:
                self._wake.clear()
                await self._wake.wait()
            item = self._ready.popleft()
            self._count()
            try:
                if item.target is None:
                    await self._fan_out(item.notice)
                else:
                    await self._deliver(item, item.target)
            except Exception:  # one bad round must not end a worker
                log.exception("notice_failed", kind=item.notice.kind.value)

    async def _fan_out(self, notice: Notice) -> None:
        try:
            targets = await self._targets.targets(notice.user_id, notice.kind)
        except Exception as error:
            self.stats.failed += 1
            log.warning("notice_channels_unreadable", kind=notice.kind.value, error=str(error))
            return
        for target in targets:
            self._put(_Delivery(notice, target))

    async def send_now(self, target: Target, notice: Notice) -> str | None:
        """Send at once, no retry (a channel's test): None if delivered, else why not."""
        try:
            await self._run(target.url, notice)
        except Exception as error:
            return str(error)
        return None

    async def _run(self, url: str, notice: Notice) -> None:
        await self.blocking(self._send, url, notice.title, notice.body)

    async def blocking(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work` on the notifier's own threads (a name lookup, a send): never on the
        loop's default executor, which the engine's own lookups use."""
        if self._pool is None:
            self.start()
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    async def _deliver(self, item: _Delivery, target: Target) -> None:
        item.attempt += 1
        try:
            await self._run(target.url, item.notice)
        except Exception as error:
            refused = bool(getattr(error, "refused", False))
            fields = {
                "kind": item.notice.kind.value,
                "channel_id": target.channel_id,
                "attempt": item.attempt,
                "error": str(error),
            }
            if refused or item.attempt >= self.policy.attempts:
                self.stats.failed += 1
                self.stats.refused += refused
                log.warning("notice_not_delivered", **fields)
                return
            self.stats.retried += 1
            log.info("notice_retry", **fields)
            self._retry_later(item)
            return
        self.stats.sent += 1
        log.debug("notice_sent", kind=item.notice.kind.value, channel_id=target.channel_id)

    def _retry_later(self, item: _Delivery) -> None:
        delay = min(self.policy.cap, self.policy.backoff * 2.0 ** (item.attempt - 1))
        delay *= 0.5 + self._rng.random()
        if len(self._ready) + len(self._waiting) >= self.policy.limit:
            self._drop_oldest()
        self._waiting.append(item)
        self._count()
        item.timer = asyncio.get_running_loop().call_later(delay, self._due, item)

    def _due(self, item: _Delivery) -> None:
        with contextlib.suppress(ValueError):  # dropped meanwhile
            self._waiting.remove(item)
            item.timer = None
            self._ready.append(item)
            self._count()
            self._wake.set()
