"""SQLite's writers in one process take turns here, the engine's claims first.

SQLite has one write lock per database. A writer that meets it held waits in SQLite's
busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between tries and serves
nobody in order: under a stream of the API's creates a claim lost the race again and
again (claims waited up to 1.1 s at p99 beside 8 writers in a loop, issue 12). Here
the writers of this process (the engine's loop and the API's, each its own `Database`)
queue instead: the gate passes straight to the next one when a writer commits, and a
claim (`urgent`) goes before every other waiting writer, so it waits for one
transaction at most. Writers of other processes still meet SQLite's lock and its busy
handler, as before.

A writer waits at most `timeout` seconds, SQLite's own busy timeout: then
`TimeoutError`, which `Database` counts as transient, as it counts "database is locked".
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from hmt.waits import within


class _Waiter:
    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.granted = False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class WriteGate:
    """One database's writers in this process, one at a time, urgent ones first; shared by
    the event loops of the process (the engine's, the API's)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._held = False
        self._urgent: deque[_Waiter] = deque()
        self._others: deque[_Waiter] = deque()
        self.waited = 0  # turns that had to wait (a writer held the gate)

    def try_acquire(self) -> bool:
        """Take the gate if nobody holds it (never waits): the inline claim's way in."""
        with self._lock:
            if self._held:
                return False
            self._held = True
            return True

    async def acquire(self, *, urgent: bool) -> None:
        with self._lock:
            if not self._held:
                self._held = True
                return
            waiter = _Waiter(asyncio.get_running_loop())
            (self._urgent if urgent else self._others).append(waiter)
            self.waited += 1
        try:
            await within(asyncio.shield(waiter.future), self.timeout)
        except BaseException:
            with self._lock:
                if not waiter.granted:
                    (self._urgent if urgent else self._others).remove(waiter)
                    raise
            self.release()  # handed to us as we gave up: on to the next
            raise

    def release(self) -> None:
        with self._lock:
            while True:
                queue = self._urgent or self._others
                if not queue:
                    self._held = False
                    return
                waiter = queue.popleft()
                waiter.granted = True
                try:
                    waiter.loop.call_soon_threadsafe(_wake, waiter.future)
                except RuntimeError:  # its loop closed: the turn goes to the next one
                    continue
                return


_GATES: dict[str, WriteGate] = {}
_GATES_LOCK = threading.Lock()


def gate_for(path: str, timeout: float) -> WriteGate:
    """The process's gate for the database file at `path` (every `Database` on it)."""
    with _GATES_LOCK:
        gate = _GATES.get(path)
        if gate is None:
            gate = _GATES[path] = WriteGate(timeout)
        return gate
