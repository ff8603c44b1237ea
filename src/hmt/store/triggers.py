"""The trigger repository: user-scoped edits, the engine's load, and the durable claim.

Every status change goes through `hmt.core.lifecycle.transition` and is written
with its event in one transaction, conditional on the status it was computed
from, so a concurrent change makes it fail instead of overwriting.
"""

from __future__ import annotations

import builtins
import dataclasses
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    ColumnElement,
    Dialect,
    Row,
    Select,
    Text,
    Update,
    and_,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hmt.core.errors import DuplicateTrigger, FieldError, HmtError, InvalidTrigger
from hmt.core.events import EventKind, TriggerEvent
from hmt.core.fields import EDITABLE
from hmt.core.instruments import Instrument
from hmt.core.lifecycle import Status, transition
from hmt.core.model import Fired, Trigger
from hmt.core.partitions import DEFAULT_PARTITIONS, check_partitions, partition_of
from hmt.core.types import Cause, OnGap, TriggerId
from hmt.core.validation import validate
from hmt.failpoints import failpoint
from hmt.store import day_ranges, events, legs, storable
from hmt.store.db import Database
from hmt.store.fences import Fence, admit, fence_cte
from hmt.store.loading import PriceSource, RowPath, active_triggers
from hmt.store.orders import with_orders
from hmt.store.precompiled import Precompiled, precompile
from hmt.store.records import (
    PRICE_FIELDS,
    USER_FIELDS,
    DivisorOf,
    TriggerRecord,
    has_basket,
    instrument_columns,
    record_from_row,
    rupees,
    user_columns,
    watch_columns,
)
from hmt.store.rls import scope
from hmt.store.tables import gtt_orders as t
from hmt.store.tables import trigger_events

log = structlog.get_logger("hmt.store.triggers")

Clock = Callable[[], datetime]
# Trigger fields an edit may change (the trader's, and the divisor that goes with the
# instrument); id, user_id and status are never writable.
EDITABLE_FIELDS = EDITABLE

# Compared in SQL by the claim; prices, times and the legs' JSON are compared on the
# returned row (exactly, as the core holds them, whatever text another tool stored).
_ON_THE_ROW = ("expires_at", "legs", "not_before", "on_gap")
_PLAIN_FIELDS = tuple(f for f in USER_FIELDS if f not in PRICE_FIELDS and f not in _ON_THE_ROW)


# Table column -> Trigger attribute where they differ.
_ATTRIBUTE = {"transaction_type": "side"}
_V2_ONLY = frozenset({"watch_token", "legs", "not_before", "on_gap"})


class _Stale(Exception):
    """The claimed row no longer holds the trigger that fired: roll the claim back."""


LIVE = (Status.ACTIVE.value, Status.PAUSED.value)  # what a user's cap counts
CLAIM_PATHS = ("inline", "raw", "cached", "built")  # HMT_CLAIM_STATEMENTS (docs/engine.md)


class OverCap(HmtError):
    """The new triggers would take their user past the cap on live (active or paused) ones."""

    def __init__(self, live: int, cap: int, adding: int) -> None:
        super().__init__(f"{live} live triggers + {adding} > {cap}")
        self.live, self.cap, self.adding = live, cap, adding


class TriggerNotFound(HmtError, LookupError):
    """No such trigger for this user (another user's id looks exactly like a missing one)."""

    def __init__(self, trigger_id: str) -> None:
        self.trigger_id = trigger_id
        super().__init__(f"trigger {trigger_id} not found")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TriggerStore:
    """Triggers in `hmt_gtt_orders`, their history in `hmt_trigger_events`.

    `divisor_of` is the broker's rule for the price divisor of a row stored
    without one (another tool's insert); without it such rows are refused,
    naming `price_divisor` (docs/store.md).
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = _utc_now,
        divisor_of: DivisorOf | None = None,
        claims: str = "inline",
        load_prices: PriceSource = PriceSource.STORED,
        load_rows: RowPath = RowPath.DIRECT,
        partitions: int = DEFAULT_PARTITIONS,
    ) -> None:
        """`claims`, how the claim's statements run (HMT_CLAIM_STATEMENTS): `inline`,
        compiled once and on SQLite run on the event loop's thread on a connection of its
        own (`Database.on_loop_thread`), on PostgreSQL as `raw`; `raw`, compiled once and
        run on the driver's own connection (on SQLite one call on aiosqlite's thread);
        `cached`, built once and run through SQLAlchemy; `built`, built afresh for each
        claim, as before issue 12. The older ones are kept for the benchmark's side by
        side comparison. `load_prices`: where the start-up load on PostgreSQL takes the
        wire units from (HMT_LOAD_PRICES; the older ways for the benchmark's comparison
        only); `load_rows`, how its rows become triggers (HMT_LOAD_ROWS; `fields` for the
        comparison only). `partitions`: the cluster's partition count
        (HMT_CLUSTER_PARTITIONS), with which each row's `partition` is written."""
        if claims not in CLAIM_PATHS:
            raise ValueError(f"claims must be one of {CLAIM_PATHS}, not {claims!r}")
        self.db = db
        self.clock = clock
        self.divisor_of = divisor_of
        self.cached_claims = claims != "built"
        self.raw_claims = claims in {"raw", "inline"}
        self.loop_claims = claims == "inline"
        self.load_prices = load_prices
        self.load_rows = load_rows
        self.partitions = check_partitions(partitions)

    # -- the trader's side: every method takes the user and sees only their rows --

    async def create(
        self,
        trigger: Trigger,
        *,
        instrument: Instrument | None = None,
        watch: Instrument | None = None,
        cap: int | None = None,
    ) -> TriggerRecord:
        """Validate and store a new trigger, with its `created` event.

        `instrument` is the master's entry for its instrument: the trigger is
        checked against it and its units (tick and lot size) are stored on the row.
        `watch` is the master's entry for the instrument it watches, required when
        that is another one (`Trigger.watch_token`): its name and divisor (the
        thresholds' unit) are stored with it.
        `cap`: `OverCap` unless the user has fewer live triggers than that; the
        count is part of the INSERT itself (no round trip of its own). A soft cap:
        two creates racing at the limit may both pass, which is harmless.
        """
        now = self.clock()
        _check_new(trigger, instrument, watch, now)

        async def work(conn: AsyncConnection) -> TriggerRecord:
            await scope(conn, trigger.user_id)
            return await _insert(
                conn, trigger, now, instrument, watch, self.divisor_of, self.partitions, cap=cap
            )

        return await self.db.transaction(work)

    async def create_many(
        self,
        triggers: Sequence[Trigger],
        *,
        instruments: Sequence[Instrument | None] | None = None,
        watches: Sequence[Instrument | None] | None = None,
        cap: int | None = None,
    ) -> builtins.list[TriggerRecord]:
        """Store one user's new triggers, each with its `created` event, all or none.

        Every trigger is validated before anything is written (against its
        entry in `instruments`, the master's, when given, and in `watches` the
        watched instrument's, as `create` takes them); the rows go in one
        transaction, so a failure part-way leaves none of them. `cap`: `OverCap`
        unless the live ones among them fit under it, counted in that transaction.
        """
        if not triggers:
            return []
        users = {trigger.user_id for trigger in triggers}
        if len(users) != 1:
            raise ValueError("create_many takes the triggers of one user")
        now = self.clock()
        listed = instruments if instruments is not None else [None] * len(triggers)
        watched = watches if watches is not None else [None] * len(triggers)
        for trigger, instrument, watch in zip(triggers, listed, watched, strict=True):
            _check_new(trigger, instrument, watch, now)
        user_id = users.pop()
        adding = sum(trigger.status.value in LIVE for trigger in triggers)

        async def work(conn: AsyncConnection) -> builtins.list[TriggerRecord]:
            await scope(conn, user_id)
            if cap is not None:
                live = await _live(conn, user_id)
                if live + adding > cap:
                    raise OverCap(live, cap, adding)
            return [
                await _insert(
                    conn, trigger, now, instrument, watch, self.divisor_of, self.partitions
                )
                for trigger, instrument, watch in zip(triggers, listed, watched, strict=True)
            ]

        return await self.db.transaction(work)

    async def get(self, user_id: str, trigger_id: str) -> TriggerRecord:
        """One of `user_id`'s triggers; `TriggerNotFound` for a missing or foreign id."""

        async def work(conn: AsyncConnection) -> TriggerRecord:
            await scope(conn, user_id)
            row = await _fetch(conn, trigger_id, user_id)
            return await _read(conn, row, self.divisor_of)

        return await self.db.transaction(work, write=False)

    async def history(self, user_id: str, trigger_id: str) -> list[TriggerEvent]:
        """The events of one of `user_id`'s triggers, oldest first."""

        async def work(conn: AsyncConnection) -> list[TriggerEvent]:
            await scope(conn, user_id)
            await _fetch(conn, trigger_id, user_id)
            return await events.history(conn, trigger_id)

        return await self.db.transaction(work, write=False)

    async def list(
        self,
        user_id: str,
        *,
        status: Status | None = None,
        instrument_token: int | None = None,
        limit: int = 100,
        offset: int = 0,
        after: tuple[datetime, str] | None = None,
    ) -> builtins.list[TriggerRecord]:
        """`user_id`'s triggers, newest first (ties by id), optionally filtered.

        `after` is the (created_at, id) of the last row of the previous page: the
        page starts just past it, so rows inserted meanwhile shift nothing.
        """
        query = select(t).where(*_matching(user_id, status, instrument_token))
        if after is not None:
            created_at, trigger_id = after
            query = query.where(
                or_(
                    t.c.created_at < created_at,
                    and_(t.c.created_at == created_at, t.c.id > trigger_id),
                )
            )
        query = query.order_by(t.c.created_at.desc(), t.c.id).limit(limit).offset(offset)

        async def work(conn: AsyncConnection) -> builtins.list[TriggerRecord]:
            await scope(conn, user_id)
            rows = await conn.execute(query)
            records = [record_from_row(row._mapping, self.divisor_of) for row in rows]
            return await with_orders(conn, records)

        return await self.db.transaction(work, write=False)

    async def count(
        self, user_id: str, *, status: Status | None = None, instrument_token: int | None = None
    ) -> int:
        """How many of `user_id`'s triggers `list` would page through with these filters."""
        query = select(func.count()).select_from(t)
        query = query.where(*_matching(user_id, status, instrument_token))

        async def work(conn: AsyncConnection) -> int:
            await scope(conn, user_id)
            return int((await conn.execute(query)).scalar_one())

        return await self.db.transaction(work, write=False)

    async def update(
        self,
        user_id: str,
        trigger_id: str,
        changes: Mapping[str, Any],
        *,
        instrument: Instrument | None = None,
        watch: Instrument | None = None,
    ) -> TriggerRecord:
        """Change trader-owned fields of an active or paused trigger, validated as a whole.

        `instrument` is the master's entry for the edited trigger's instrument:
        the edit is checked against it and its units are stored. Without one the
        stored units are kept, unless the edit moves the trigger to another
        instrument: then they are cleared (the old instrument's no longer apply).
        `watch` is the watched instrument's entry, as `create` takes it; without
        one the stored watch columns are kept while the edit watches the same
        instrument (and an edit to watch another needs it).
        """
        wrong = sorted(set(changes) - EDITABLE_FIELDS)
        if wrong:
            raise InvalidTrigger(
                FieldError(name, "read_only", "is not a field a trader can change")
                for name in wrong
            )
        now = self.clock()

        units: dict[str, Any] = {}  # filled by apply(), read by apply_event after it

        def apply(current: TriggerRecord) -> Trigger:
            trigger = current.trigger
            changed = dataclasses.replace(trigger, **changes)
            _check(changed, instrument, watch, now, kept=current)
            units.update(_watch_units(changed, watch, current))
            units["partition"] = partition_of(changed.watched, self.partitions)
            if instrument is not None:
                units.update(instrument_columns(instrument))
            elif changed.instrument_token != trigger.instrument_token:
                units.update(instrument_columns(None))
            return changed

        return await self._advance(
            trigger_id, EventKind.UPDATED, user_id=user_id, edit=apply, values=units
        )

    async def pause(self, user_id: str, trigger_id: str) -> TriggerRecord:
        return await self._advance(trigger_id, EventKind.PAUSED, user_id=user_id)

    async def resume(self, user_id: str, trigger_id: str) -> TriggerRecord:
        return await self._advance(trigger_id, EventKind.RESUMED, user_id=user_id)

    async def cancel(self, user_id: str, trigger_id: str) -> TriggerRecord:
        return await self._advance(trigger_id, EventKind.CANCELLED, user_id=user_id)

    # -- the engine's side: every user's triggers --

    def stream_active(
        self,
        *,
        batch_size: int = 5000,
        on_invalid: Callable[[str, Exception], None] | None = None,
        partitions: Collection[int] | None = None,
    ) -> AsyncIterator[builtins.list[Trigger]]:
        """Every active trigger, in batches, without holding them all in one list.

        `partitions`: only those of these cluster partitions (`loading.active_triggers`:
        rows with no stored partition come too; the caller keeps its own)."""
        return active_triggers(
            self.db,
            batch_size=batch_size,
            on_invalid=on_invalid,
            divisor_of=self.divisor_of,
            prices=self.load_prices,
            partitions=partitions,
            rows=self.load_rows,
        )

    async def repartition(self, *, batch: int = 10_000) -> int:
        """Write the right `partition` into every live row whose stored one is missing (a
        row another tool inserted) or was computed for another partition count; how many.

        A cluster node runs it at start, before it takes any lease: a row in the wrong
        partition would be loaded by the wrong node (docs/cluster.md)."""
        live = [Status.ACTIVE.value, Status.PAUSED.value, Status.TRIGGERED.value]
        read = select(t.c.id, t.c.instrument_token, t.c.watch_token, t.c.partition).where(
            t.c.status.in_(live)
        )
        write = (
            update(t)
            .where(
                t.c.id == bindparam("r_id", type_=t.c.id.type),
                # Only if the watched instrument is still the one computed from.
                func.coalesce(t.c.watch_token, t.c.instrument_token)
                == bindparam("r_watched", type_=t.c.instrument_token.type),
            )
            .values(partition=bindparam("r_partition", type_=t.c.partition.type))
        )

        async def wrong(conn: AsyncConnection) -> builtins.list[dict[str, Any]]:
            found = []
            for row in await conn.execute(read):
                watched = row.watch_token if row.watch_token is not None else row.instrument_token
                right = partition_of(int(watched), self.partitions)
                if row.partition != right:
                    found.append({"r_id": row.id, "r_partition": right, "r_watched": watched})
            return found

        fixes = await self.db.transaction(wrong, write=False)
        for start in range(0, len(fixes), batch):
            chunk = fixes[start : start + batch]

            async def work(conn: AsyncConnection, chunk: Any = chunk) -> None:
                await conn.execute(write, chunk)

            await self.db.transaction(work)
        return len(fixes)

    async def load(self, trigger_id: str) -> TriggerRecord | None:
        """Any trigger by id, whoever owns it (for the change feed and reconciliation)."""

        async def work(conn: AsyncConnection) -> TriggerRecord | None:
            query = select(t).where(t.c.id == _valid_id(trigger_id))
            row = (await conn.execute(query)).first()
            return None if row is None else await _read(conn, row, self.divisor_of)

        return await self.db.transaction(work, write=False)

    async def in_status(self, status: Status) -> builtins.list[TriggerRecord]:
        """Every trigger in `status`: start-up reconciliation reads the `triggered` ones."""

        async def work(conn: AsyncConnection) -> builtins.list[TriggerRecord]:
            rows = await conn.execute(select(t).where(t.c.status == status.value))
            records = [record_from_row(row._mapping, self.divisor_of) for row in rows]
            return await with_orders(conn, records)

        return await self.db.transaction(work, write=False)

    async def claim(
        self,
        fired: Fired,
        tag: str,
        *,
        owner: str,
        lease: timedelta,
        sending: bool = False,
        durable: bool = False,
        fence: Fence | None = None,
    ) -> bool:
        """The claim: True only for the one caller that moved the row to `triggered`.

        The update is conditional on the row still being active, unexpired and
        holding exactly the trigger that fired: a cancel, a pause, an edit or
        another engine that got there first makes it fail, and then no order
        may be sent. Prices and expiry are compared after the update, on the
        returned row and inside the same transaction (rolled back on a
        mismatch): decimal values compare exactly there whatever text another
        tool stored in SQLite, where SQL would compare "1600.50" and "1600.5"
        as different strings.

        The claim records its engine (`owner`, at most 64 characters) and a
        lease of `lease` from now, and the broker's `tag` (the adapter's rule).
        Its transaction appends `fired` and `claimed`, and with `sending` (the
        first request leaves right after the commit) that request's
        `order_sent`, counting it in `attempts`: no second write sits between
        the claim and the order.

        The claim is isolated like any write; with `durable` False its commit
        does not wait for the disk (`Database.transaction`): reconciliation
        against the broker's order book covers a claim lost with the server.

        `fence` (a cluster node's claim, docs/cluster.md): the claim also raises its
        partition's fence to the node's lease token in the same statement or
        transaction, and succeeds only if that token is still the greatest admitted
        there (`store.fences.admit`); a node whose lease was taken over claims nothing.
        """
        trigger, now = fired.trigger, self.clock()
        claimed = transition(Status.ACTIVE, EventKind.CLAIMED)
        # The watched instrument's price (v2: a time leg has none); a watched
        # instrument in other units than the traded one is corrected below.
        ltp = None if fired.cause is Cause.TIME else fired.ltp
        price = rupees(ltp, trigger.price_divisor)
        plain = _plain_columns(trigger)
        divisor = trigger.price_divisor
        values = {
            "price_divisor": divisor,
            "status": claimed.value,
            "triggered_leg": int(fired.leg),
            "triggered_price": price,
            "triggered_at": now,
            "broker_tag": tag,
            "claimed_by": owner,
            "claim_expires_at": now + lease,
            "updated_at": now,
        }
        trigger_id = _valid_id(trigger.id)
        if self._at_once(trigger):
            params = _claim_params(trigger_id, plain, divisor, values)
            return await self._claim_at_once(
                fired, tag, owner, now, price, params, sending=sending, durable=durable, fence=fence
            )
        divisor_of, cached = self.divisor_of, self.cached_claims
        if self.raw_claims and self.db.dialect == "sqlite" and fence is None:
            params = _claim_params(trigger_id, plain, divisor, values)
            nulls = frozenset(name for name, value in plain.items() if value is None)
            return await self._claim_on_thread(
                fired, tag, owner, now, nulls, params, sending=sending, durable=durable
            )
        statement, bound = self._claim_update(trigger_id, plain, divisor, values, sending)

        async def work(conn: AsyncConnection) -> bool:
            if fence is not None and not await admit(conn, *fence):
                log.info("claim_fenced", trigger_id=trigger.id, partition=fence.partition)
                return False  # nothing written: a newer holder fenced the partition
            row = (await conn.execute(statement, bound)).first()
            if row is None:
                return False
            user, attempts, watched = _claimed_holds(fired, now, tuple(row), divisor_of)
            claimed_price = price
            if (
                watched is not None
                and trigger.watch_token is not None
                and watched != divisor
                and ltp is not None
            ):
                claimed_price = rupees(ltp, watched)
                await conn.execute(
                    update(t)
                    .where(t.c.id == _valid_id(trigger.id))
                    .values(triggered_price=claimed_price)
                )
            entries = _claim_events(fired, claimed_price, watched, tag, owner, attempts, sending)
            await events.append_many(conn, trigger.id, user, now, entries, cached=cached)
            return True

        try:
            return await self.db.transaction(work, durable=durable)
        except _Stale:
            return False

    async def _claim_on_thread(
        self,
        fired: Fired,
        tag: str,
        owner: str,
        now: datetime,
        nulls: frozenset[str],
        params: dict[str, Any],
        *,
        sending: bool,
        durable: bool,
    ) -> bool:
        """SQLite's claim as one call on the driver's thread (`Database.on_driver_thread`),
        or on the loop's own (`Database.on_loop_thread`, claims `inline`): the cached
        path's statements, precompiled, and its checks on the returned row, all inside
        the one transaction; nothing comes back to the event loop in between."""
        trigger, dialect = fired.trigger, self.db.engine.dialect
        claim_sql = _precompiled_claim(dialect, nulls, sending)
        price_sql, event_sql = _precompiled_price(dialect), _precompiled_event(dialect)
        claim_params = claim_sql.params(params)
        divisor, divisor_of = trigger.price_divisor, self.divisor_of
        ltp = None if fired.cause is Cause.TIME else fired.ltp
        price = rupees(ltp, divisor)

        def work(connection: sqlite3.Connection) -> bool:
            cursor = connection.execute(claim_sql.sql, claim_params)
            raw = cursor.fetchone()
            cursor.close()
            if raw is None:
                return False
            row = claim_sql.row(raw)
            user, attempts, watched = _claimed_holds(fired, now, row, divisor_of)
            claimed_price = price
            if (
                watched is not None
                and trigger.watch_token is not None
                and watched != divisor
                and ltp is not None
            ):
                claimed_price = rupees(ltp, watched)
                bound = {"u_id": params["w_id"], "u_price": claimed_price}
                connection.execute(price_sql.sql, price_sql.params(bound)).close()
            entries = _claim_events(fired, claimed_price, watched, tag, owner, attempts, sending)
            failpoint("mid_event_write")  # as `events.append_many`: the claim is written
            rows = [
                event_sql.params(
                    {
                        "trigger_id": trigger.id,
                        "user_id": user,
                        "kind": kind.value,
                        "at": now,
                        "payload": events.jsonable(payload),
                    }
                )
                for kind, payload in entries
            ]
            connection.executemany(event_sql.sql, rows).close()
            return True

        run = self.db.on_loop_thread if self.loop_claims else self.db.on_driver_thread
        try:
            return await run(work, durable=durable)
        except _Stale:
            return False

    def _at_once(self, trigger: Trigger) -> bool:
        """Whether the claim runs as one statement (`_claim_at_once`): PostgreSQL, a v1
        trigger on its traded instrument, and the cached statements."""
        return (
            self.cached_claims
            and self.db.dialect == "postgresql"
            and trigger.is_v1
            and trigger.watch_token is None
        )

    def _claim_update(
        self,
        trigger_id: str,
        plain: Mapping[str, Any],
        divisor: int,
        values: Mapping[str, Any],
        sending: bool,
    ) -> tuple[Update, dict[str, Any] | None]:
        """The claim's conditional UPDATE and its bound values: cached, or built inline."""
        if not self.cached_claims:
            return _built_claim(trigger_id, plain, divisor, values, sending), None
        nulls = frozenset(name for name, value in plain.items() if value is None)
        return _claim_statement(nulls, sending), _claim_params(trigger_id, plain, divisor, values)

    async def _claim_at_once(
        self,
        fired: Fired,
        tag: str,
        owner: str,
        now: datetime,
        price: Any,
        params: dict[str, Any],
        *,
        sending: bool,
        durable: bool,
        fence: Fence | None = None,
    ) -> bool:
        """A v1 trigger's claim on PostgreSQL as one statement, committed on its own.

        The conditional UPDATE and the INSERT of its events in one statement (a
        data-modifying CTE), so one round trip where the transaction took four
        (BEGIN, UPDATE, INSERT, COMMIT): issue 12 measured each round trip at a
        millisecond and more on a loaded machine. What the transaction compared on
        the returned row is compared in the UPDATE's condition instead: the prices
        (NUMERIC compares exactly: 1600.50 = 1600.5), the expiry, and the v1 shape
        (no legs, no not_before, on_gap fire). The statement is atomic and takes the
        same row lock, so an edit, a cancel or another engine still wins.

        With `fence`, the partition's fencing upsert is one more CTE of the same
        statement and the UPDATE's condition requires its row (docs/cluster.md): still
        one round trip.
        """
        trigger, leg = fired.trigger, int(fired.leg)
        prices = user_columns(trigger)
        nulls = frozenset(name for name in PRICE_FIELDS if prices[name] is None)
        statement = _claim_at_once_statement(
            frozenset(name for name, value in _plain_columns(trigger).items() if value is None),
            nulls,
            sending,
            fenced=fence is not None,
        )
        payloads = [
            _fired_payload(fired, price, trigger.price_divisor),
            {"leg": leg, "ltp": price, "tag": tag, "engine": owner},
        ]
        failpoint("mid_event_write")  # the same place as in the transaction's path
        bound = params | {
            **{f"p_{name}": prices[name] for name in PRICE_FIELDS if name not in nulls},
            "w_now": now,
            "e_id": params["w_id"],
            "e_at": now,
            "e_engine": owner,
            **{f"e_{n}": events.jsonable(payload) for n, payload in enumerate(payloads)},
            **(
                {}
                if fence is None
                else {"f_partition": fence.partition, "f_token": fence.token, "f_node": fence.node}
            ),
        }

        if self.raw_claims and self.db.runs_alone(durable=durable):
            raw = _precompiled(self.db.engine.dialect, statement, (t.c.attempts.type,))
            args = raw.params(bound)

            async def on_driver(connection: Any) -> bool:
                return await connection.fetchrow(raw.sql, *args) is not None

            return await self.db.on_driver(on_driver, durable=durable)

        async def work(conn: AsyncConnection) -> bool:
            return (await conn.execute(statement, bound)).first() is not None

        return await self.db.statement(work, durable=durable)

    async def day_ranges(self, broker: str, day: date) -> dict[int, tuple[int, int]]:
        """The last-seen (high, low) of each watched instrument on `day` (`store.day_ranges`)."""
        return await day_ranges.read(self.db, broker, day)

    async def save_day_ranges(
        self, broker: str, day: date, ranges: Mapping[int, tuple[int, int]]
    ) -> None:
        """Widen the stored ranges of `day`: a high only grows, a low only falls."""
        await day_ranges.save(self.db, broker, day, ranges, self.clock())

    async def forget_day_ranges(self, broker: str, before: date) -> int:
        """Drop the ranges of days before `before` (they say nothing about today)."""
        return await day_ranges.forget(self.db, broker, before)

    async def expire_due(self) -> builtins.list[TriggerId]:
        """Move every active or paused trigger past its `expires_at` to `expired`."""
        now = self.clock()
        due = select(t.c.id).where(
            t.c.status.in_([Status.ACTIVE.value, Status.PAUSED.value]),
            t.c.expires_at.is_not(None),
            t.c.expires_at <= now,
        )

        async def work(conn: AsyncConnection) -> builtins.list[TriggerId]:
            expired = []
            for (trigger_id,) in (await conn.execute(due)).all():
                expired_now = await apply_event(
                    conn, str(trigger_id), EventKind.EXPIRED, now, divisor_of=self.divisor_of
                )
                if expired_now is not None:
                    expired.append(TriggerId(str(trigger_id)))
            return expired

        return await self.db.transaction(work)

    async def _advance(
        self,
        trigger_id: str,
        kind: EventKind,
        *,
        user_id: str | None = None,
        edit: Callable[[TriggerRecord], Trigger] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> TriggerRecord:
        """`values`: columns written with the event (an edit's instrument units)."""
        now = self.clock()

        async def work(conn: AsyncConnection) -> TriggerRecord:
            if user_id is not None:
                await scope(conn, user_id)
            record = await apply_event(
                conn,
                trigger_id,
                kind,
                now,
                user_id=user_id,
                edit=edit,
                values=values,
                divisor_of=self.divisor_of,
            )
            if record is None:
                raise TriggerNotFound(trigger_id)
            return record

        return await self.db.transaction(work)


def _fired_payload(fired: Fired, price: object, divisor: int) -> dict[str, Any]:
    """The `fired` event: leg and price, as v1 wrote it. A v2 trigger's also says why
    it fired (price, time, gap) and, fired by a price that jumped past its threshold,
    the threshold and the jump (a v1 record has its threshold in its own fields)."""
    payload: dict[str, Any] = {"leg": int(fired.leg), "ltp": price}
    trigger = fired.trigger
    if trigger.is_v1:  # fired by a tick as v1 always was: {leg, ltp} exactly
        return payload if fired.cause is Cause.PRICE else payload | {"cause": fired.cause.value}
    payload["cause"] = fired.cause.value
    if fired.cause is Cause.PRICE and trigger.fire_at(fired.leg) is None:
        threshold = trigger.threshold(fired.leg)
        if fired.ltp != threshold:
            # In the watched instrument's units (`divisor`), like the ltp.
            payload["threshold"] = str(rupees(threshold, divisor))
            payload["jump"] = str(rupees(fired.ltp - threshold, divisor))
    return payload


async def _fetch(
    conn: AsyncConnection, trigger_id: str, user_id: str | None = None, *, lock: bool = False
) -> Row[Any]:
    query = select(t).where(t.c.id == _valid_id(trigger_id))
    if user_id is not None:
        query = query.where(t.c.user_id == user_id)
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise TriggerNotFound(trigger_id)
    return row


async def apply_event(
    conn: AsyncConnection,
    trigger_id: str,
    kind: EventKind,
    now: datetime,
    *,
    user_id: str | None = None,
    edit: Callable[[TriggerRecord], Trigger] | None = None,
    values: Mapping[str, Any] | None = None,
    payload: Mapping[str, Any] | None = None,
    divisor_of: DivisorOf | None = None,
) -> TriggerRecord | None:
    """Apply one lifecycle event to a locked row, write it and its event; None if gone.

    `edit` makes the edited trigger from the current record; it may fill `values`
    (an edit's instrument units and watch columns, whose divisor its thresholds use).
    `divisor_of` reads a row stored without a price divisor (`TriggerStore`).
    """
    try:
        row = await _fetch(conn, trigger_id, user_id, lock=True)
    except TriggerNotFound:
        return None
    current = record_from_row(row._mapping, divisor_of)
    status = transition(current.status, kind)
    new_values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if edit is not None:
        edited = edit(current)
        watched = (values or {}).get("watch_price_divisor", current.watch_price_divisor)
        new_values.update(user_columns(edited, watched))
        payload = _payload(edited, watched)
    new_values.update(values or {})  # after edit(): an edit may fill `values` (the grid)
    written = (
        await conn.execute(
            update(t)
            .where(t.c.id == trigger_id, t.c.status == current.status.value)
            .values(new_values)
            .returning(*t.c)
        )
    ).first()
    if written is None:  # changed under us (only possible without the row lock)
        return None
    await events.append(conn, trigger_id, current.trigger.user_id, kind, now, payload)
    return await _read(conn, written, divisor_of)


async def _read(
    conn: AsyncConnection, row: Row[Any], divisor_of: DivisorOf | None
) -> TriggerRecord:
    """One row's record, with its basket's order rows if it has a basket."""
    record = record_from_row(row._mapping, divisor_of)
    if not has_basket(record.trigger):
        return record
    [read] = await with_orders(conn, [record])
    return read


def _check_new(
    trigger: Trigger, instrument: Instrument | None, watch: Instrument | None, now: datetime
) -> None:
    """A new trigger's id and fields (against its instruments), checked before any write."""
    try:
        uuid.UUID(trigger.id)
    except ValueError:
        raise InvalidTrigger([FieldError("id", "uuid", "must be a UUID")]) from None
    _check(trigger, instrument, watch, now)


def _check(
    trigger: Trigger,
    instrument: Instrument | None,
    watch: Instrument | None,
    now: datetime,
    *,
    kept: TriggerRecord | None = None,
) -> None:
    """A v1 trigger: DESIGN's rules, as ever. A v2 one: what the table must hold to read it
    back as it was; its rules against every instrument are the API's (docs/store.md).

    `kept`: the record an edit starts from, whose watch columns it may keep.
    """
    if trigger.is_v1 and watch is None:
        validate(trigger, instrument=instrument, now=now)
        return
    keeps = kept is not None and kept.trigger.watch_token == trigger.watch_token
    errors = storable.errors(trigger, watch, keeps_watch=keeps)
    if errors:
        raise InvalidTrigger(errors)


def _watch_units(
    trigger: Trigger, watch: Instrument | None, kept: TriggerRecord | None
) -> dict[str, Any]:
    """The watch columns a row of `trigger` gets: the entry given, else (an edit watching
    the same instrument) the stored ones; NULL when it watches what it trades."""
    if trigger.watch_token is None or watch is not None:
        return watch_columns(watch)
    if kept is None:
        raise ValueError(f"trigger {trigger.id} watches {trigger.watch_token}: no entry")
    return {
        "watch_exchange": None if kept.watch_exchange is None else kept.watch_exchange.value,
        "watch_tradingsymbol": kept.watch_tradingsymbol,
        "watch_price_divisor": kept.watch_price_divisor,
    }


_CLAIM_RETURNS = (
    "user_id",
    "expires_at",
    "attempts",
    "watch_price_divisor",
    "legs",
    "not_before",
    "on_gap",
    *PRICE_FIELDS,
)
_CLAIM_VALUES = (
    "price_divisor",
    "status",
    "triggered_leg",
    "triggered_price",
    "triggered_at",
    "broker_tag",
    "claimed_by",
    "claim_expires_at",
    "updated_at",
)
_CLAIM_STATEMENTS: dict[tuple[frozenset[str], bool], Update] = {}


def _claim_statement(nulls: frozenset[str], sending: bool) -> Update:
    """The claim's conditional UPDATE, built once per shape and then reused.

    Issue 12 measured the claim at some 2 ms of CPU per call before anything reached
    the database, most of it SQLAlchemy building the statement and its cache key
    afresh each time. With bound parameters the statement object is the same for
    every claim of a shape (which compared columns are NULL, whether `attempts` counts
    the order sent), so SQLAlchemy's compiled cache answers at once. The conditions
    are exactly those of `_built_claim`.
    """
    key = (nulls, sending)
    statement = _CLAIM_STATEMENTS.get(key)
    if statement is None:
        statement = _CLAIM_STATEMENTS[key] = _claim_update(nulls, sending).returning(
            *(t.c[name] for name in _CLAIM_RETURNS)
        )
    return statement


def _claim_update(nulls: frozenset[str], sending: bool) -> Update:
    """The claim's conditional UPDATE with bound parameters, returning nothing yet."""
    same = [
        t.c[name].is_(None)
        if name in nulls
        else t.c[name] == bindparam(f"w_{name}", type_=t.c[name].type)
        for name in _PLAIN_FIELDS
    ]
    # The prices were read with this divisor: a row stored without one (another
    # tool's) gets it pinned by the claim, so its outcome reads back the same.
    divisor = bindparam("w_divisor", type_=t.c.price_divisor.type)
    same.append(or_(t.c.price_divisor.is_(None), t.c.price_divisor == divisor))
    return (
        update(t)
        .where(
            t.c.id == bindparam("w_id", type_=t.c.id.type),
            t.c.status == Status.ACTIVE.value,
            *same,
        )
        .values(
            {name: bindparam(f"v_{name}", type_=t.c[name].type) for name in _CLAIM_VALUES}
            | {"attempts": t.c.attempts + 1 if sending else t.c.attempts}
        )
    )


_AT_ONCE: dict[tuple[frozenset[str], frozenset[str], bool, bool], Select[Any]] = {}
_EVENT_COLUMNS = ("trigger_id", "user_id", "kind", "at", "payload")


def _claim_at_once_statement(
    nulls: frozenset[str], price_nulls: frozenset[str], sending: bool, *, fenced: bool = False
) -> Select[Any]:
    """`_claim_statement`'s UPDATE, its row checks in its condition, and its events'
    INSERT in a CTE of the same statement (PostgreSQL; v1 triggers), built once per shape.

    Rows of `INSERT ... SELECT ... UNION ALL` take their ids in the order of the
    branches, so history reads fired, claimed, order_sent in that order.

    `fenced`: `WITH fence AS (INSERT INTO hmt_partition_fences .. ON CONFLICT DO UPDATE
    .. WHERE token <= new token RETURNING token)` and the UPDATE only `WHERE EXISTS
    (SELECT FROM fence)`: the fence row is locked by the upsert whether it admits or
    not, so a new holder's fencing write and this claim serialize (`store.fences`).
    """
    key = (nulls, price_nulls, sending, fenced)
    statement = _AT_ONCE.get(key)
    if statement is not None:
        return statement
    update_ = _claim_update(nulls, sending)
    checks = [
        t.c[name].is_(None)
        if name in price_nulls
        else t.c[name] == bindparam(f"p_{name}", type_=t.c[name].type)
        for name in PRICE_FIELDS
    ]
    now = bindparam("w_now", type_=t.c.expires_at.type)
    if fenced:
        checks.append(exists(select(fence_cte().c.token)))
    claimed = (
        update_.where(
            *checks,
            or_(t.c.expires_at.is_(None), t.c.expires_at > now),
            or_(t.c.legs.is_(None), cast(t.c.legs, Text) == "null"),
            t.c.not_before.is_(None),
            or_(t.c.on_gap.is_(None), t.c.on_gap == OnGap.FIRE.value),
        )
        .returning(t.c.user_id, t.c.attempts)
        .cte("claimed")
    )
    e = trigger_events.c
    kinds = [EventKind.FIRED, EventKind.CLAIMED] + ([EventKind.ORDER_SENT] if sending else [])
    rows = []
    for n, kind in enumerate(kinds):
        payload: Any = (
            func.jsonb_build_object(
                "attempt", claimed.c.attempts, "engine", cast(bindparam("e_engine"), Text)
            )
            if kind is EventKind.ORDER_SENT
            else bindparam(f"e_{n}", type_=e.payload.type)
        )
        rows.append(
            select(
                bindparam("e_id", type_=e.trigger_id.type),
                claimed.c.user_id,
                literal(kind.value, e.kind.type),
                bindparam("e_at", type_=e.at.type),
                payload,
            ).select_from(claimed)
        )
    written = (
        insert(trigger_events).from_select(list(_EVENT_COLUMNS), union_all(*rows)).cte("written")
    )
    statement = _AT_ONCE[key] = select(claimed.c.attempts).add_cte(written)
    return statement


def _claimed_holds(
    fired: Fired, now: datetime, row: tuple[Any, ...], divisor_of: DivisorOf | None
) -> tuple[str, int, int | None]:
    """The claimed row's user, attempts and watched divisor; `_Stale` (roll the claim
    back) unless it still holds exactly the trigger that fired, unexpired.

    Prices and times are compared here, as the core holds them, not in SQL: SQLite
    would compare "1600.50" and "1600.5" as different strings.
    """
    trigger = fired.trigger
    user, expires_at, attempts, watched, specs, not_before, on_gap, *prices = row
    if expires_at is not None and expires_at <= now:
        raise _Stale
    if trigger.watch_token is not None:
        if watched is None and divisor_of is not None:
            watched = divisor_of(trigger.watch_token)
        if watched is None:
            raise _Stale  # unreadable units: the loader never armed such a row
    expected = user_columns(trigger, watched)
    if prices != [expected[name] for name in PRICE_FIELDS] or not _same_v2(
        trigger, specs, not_before, on_gap
    ):
        raise _Stale
    return user, attempts, watched


def _claim_events(
    fired: Fired,
    price: Any,
    watched: int | None,
    tag: str,
    owner: str,
    attempts: int,
    sending: bool,
) -> list[tuple[EventKind, Mapping[str, Any]]]:
    """The claim's events: fired, claimed, and with `sending` the first order_sent."""
    leg = int(fired.leg)
    # v2: a leg fired by its time or by a missed touch says so; a price's is as v1.
    entries: list[tuple[EventKind, Mapping[str, Any]]] = [
        (EventKind.FIRED, _fired_payload(fired, price, watched or fired.trigger.price_divisor)),
        (EventKind.CLAIMED, {"leg": leg, "ltp": price, "tag": tag, "engine": owner}),
    ]
    if sending:
        entries.append((EventKind.ORDER_SENT, {"attempt": attempts, "engine": owner}))
    return entries


_PRECOMPILED: dict[tuple[str, Any], Precompiled] = {}


def _precompiled(
    dialect: Dialect, statement: Any, returns: tuple[Any, ...] = (), **kw: Any
) -> Precompiled:
    """`statement` (one of the cached statements: the same object for every claim of a
    shape) precompiled for `dialect`, once."""
    key = (dialect.name, statement)
    found = _PRECOMPILED.get(key)
    if found is None:
        found = _PRECOMPILED[key] = precompile(statement, dialect, returns=returns, **kw)
    return found


def _precompiled_claim(dialect: Dialect, nulls: frozenset[str], sending: bool) -> Precompiled:
    returns = tuple(t.c[name].type for name in _CLAIM_RETURNS)
    return _precompiled(dialect, _claim_statement(nulls, sending), returns)


_SET_PRICE = (
    update(t)
    .where(t.c.id == bindparam("u_id", type_=t.c.id.type))
    .values(triggered_price=bindparam("u_price", type_=t.c.triggered_price.type))
)


def _precompiled_price(dialect: Dialect) -> Precompiled:
    return _precompiled(dialect, _SET_PRICE)


def _precompiled_event(dialect: Dialect) -> Precompiled:
    return _precompiled(dialect, events.EVENT, column_keys=_EVENT_COLUMNS)


def _claim_params(
    trigger_id: str, plain: Mapping[str, Any], divisor: int, values: Mapping[str, Any]
) -> dict[str, Any]:
    """The bound values of `_claim_statement`."""
    return {
        "w_id": trigger_id,
        "w_divisor": divisor,
        **{f"w_{name}": value for name, value in plain.items() if value is not None},
        **{f"v_{name}": value for name, value in values.items()},
    }


def _built_claim(
    trigger_id: str,
    plain: Mapping[str, Any],
    divisor: int,
    values: Mapping[str, Any],
    sending: bool,
) -> Update:
    """The claim's conditional UPDATE with its values inline, built for this one claim
    (before issue 12; HMT_CLAIM_STATEMENTS=built)."""
    same = [t.c[name] == plain[name] for name in _PLAIN_FIELDS]
    # The prices were read with this divisor: a row stored without one (another
    # tool's) gets it pinned by the claim, so its outcome reads back the same.
    same.append(or_(t.c.price_divisor.is_(None), t.c.price_divisor == divisor))
    return (
        update(t)
        .where(t.c.id == trigger_id, t.c.status == Status.ACTIVE.value, *same)
        .values(**values, attempts=t.c.attempts + 1 if sending else t.c.attempts)
        .returning(*(t.c[name] for name in _CLAIM_RETURNS))
    )


def _plain_columns(trigger: Trigger) -> dict[str, Any]:
    """The trader's columns the claim compares in SQL (no prices: no divisor needed)."""
    return {
        name: value.value if hasattr(value, "value") else value
        for name, value in ((n, getattr(trigger, _ATTRIBUTE.get(n, n))) for n in _PLAIN_FIELDS)
    }


def _same_v2(trigger: Trigger, specs: Any, not_before: Any, on_gap: Any) -> bool:
    """Whether the claimed row's v2 columns still hold what the engine fired on."""
    if trigger.is_v1:
        return specs is None and not_before is None and on_gap in (None, OnGap.FIRE.value)
    try:
        return (
            legs.from_json(specs) == trigger.leg_specs
            and not_before == trigger.not_before
            and (OnGap.FIRE.value if on_gap is None else on_gap) == trigger.on_gap.value
        )
    except InvalidTrigger:
        return False


async def _insert(
    conn: AsyncConnection,
    trigger: Trigger,
    now: datetime,
    instrument: Instrument | None,
    watch: Instrument | None,
    divisor_of: DivisorOf | None,
    partitions: int = DEFAULT_PARTITIONS,
    *,
    cap: int | None = None,
) -> TriggerRecord:
    """Write one new trigger, its instrument's units and its `created` event on `conn`
    (already scoped); with `cap`, only while its user has fewer live triggers than that."""
    watched = watch_columns(watch)
    values = {
        "id": trigger.id,
        "user_id": trigger.user_id,
        "status": trigger.status.value,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        **user_columns(trigger, watched["watch_price_divisor"]),
        **instrument_columns(instrument),
        **watched,
        "partition": partition_of(trigger.watched, partitions),
    }
    statement = _insert_statement(tuple(values), capped=cap is not None)
    if cap is not None:
        values = {**values, _CAP: cap, _CAP_USER: trigger.user_id}
    try:
        row = (await conn.execute(statement, values)).first()
    except IntegrityError as error:
        raise DuplicateTrigger(f"trigger {trigger.id} already exists") from error
    if row is None:  # the cap held it back: say how many there are
        raise OverCap(await _live(conn, trigger.user_id), cap or 0, 1)
    await events.append(
        conn,
        trigger.id,
        trigger.user_id,
        EventKind.CREATED,
        now,
        _payload(trigger, watched["watch_price_divisor"]),
    )
    return record_from_row(row._mapping, divisor_of)


_CAP, _CAP_USER = "hmt_cap", "hmt_cap_user"  # the capped INSERT's own parameters
_INSERTS: dict[tuple[tuple[str, ...], bool], Any] = {}


def _insert_statement(names: tuple[str, ...], *, capped: bool) -> Any:
    """A create's INSERT ... RETURNING for these columns, built once and then reused with
    each create's values as parameters: building and compiling it per request was most
    of SQLAlchemy's share of a create's CPU (issue 12). Capped, INSERT ... SELECT <the
    values> WHERE <live count> < cap: the count is part of the statement."""
    key = (names, capped)
    statement = _INSERTS.get(key)
    if statement is None:
        if capped:
            row_values = select(*[bindparam(n, type_=t.c[n].type) for n in names])
            live = _live_count(bindparam(_CAP_USER, type_=t.c.user_id.type))
            statement = t.insert().from_select(
                list(names), row_values.where(live < bindparam(_CAP))
            )
        else:
            statement = t.insert().values({n: bindparam(n, type_=t.c[n].type) for n in names})
        statement = _INSERTS[key] = statement.returning(*t.c)
    return statement


def _live_count(user_id: Any) -> Any:
    return (
        select(func.count())
        .select_from(t)
        # Not `in_`: its expanding parameter is rendered again at every execution.
        .where(t.c.user_id == user_id, or_(*(t.c.status == status for status in LIVE)))
        .scalar_subquery()
    )


async def _live(conn: AsyncConnection, user_id: str) -> int:
    return int((await conn.execute(select(_live_count(user_id)))).scalar_one())


def _matching(
    user_id: str, status: Status | None, instrument_token: int | None
) -> builtins.list[ColumnElement[bool]]:
    """The WHERE clauses of a user's listing."""
    clauses = [t.c.user_id == user_id]
    if status is not None:
        clauses.append(t.c.status == status.value)
    if instrument_token is not None:
        clauses.append(t.c.instrument_token == instrument_token)
    return clauses


def _payload(trigger: Trigger, watch_price_divisor: int | None) -> dict[str, Any]:
    """A created or updated event's payload: the trader's columns as stored (v1: as ever)."""
    columns = user_columns(trigger, watch_price_divisor)
    if trigger.is_v1:  # a v1 trigger's history reads as it always did
        columns = {k: v for k, v in columns.items() if k not in _V2_ONLY}
    if trigger.account is None:  # the default account: as before revision 0011
        del columns["account"]
    return {"status": trigger.status.value, **columns}


def _valid_id(trigger_id: str) -> str:
    try:
        return str(uuid.UUID(str(trigger_id)))
    except ValueError:
        raise TriggerNotFound(trigger_id) from None  # not even an id: nothing by that name
