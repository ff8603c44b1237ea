"""The trigger's fields, specified once: the record, the loader and the API derive from this.

Each field says where hmt keeps it (the core `Trigger`, the store's record, or
only the table), its column in `hmt_gtt_orders`, its JSON name in the v1 API,
its type, whether it is a price (rupees in the table and the API, integer wire
units inside), who owns it and whether an edit may change it. A new field is
one line here; `tests/core/test_fields.py` checks that the table, the record
and the API schemas agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum

from hmt.core.lifecycle import Status
from hmt.core.types import Exchange, Leg, OnGap, OrderType, Product, Side, TriggerType


class Home(StrEnum):
    """Where hmt keeps the value."""

    TRIGGER = "trigger"  # the core `Trigger`: what the engine decides on
    RECORD = "record"  # the store's `TriggerRecord`: what the server did, and instrument facts
    TABLE = "table"  # only the table (not read into any object yet)


class Owner(StrEnum):
    """Who writes the value."""

    TRADER = "trader"  # sent by the trader at create, changed by an edit
    INSTRUMENT = "instrument"  # the instrument's units, set by hmt from the broker's master
    SERVER = "server"  # ids, status and outcomes: set by hmt only


@dataclass(frozen=True, slots=True)
class TriggerField:
    """One field of a stored trigger."""

    name: str  # attribute of `Trigger` or `TriggerRecord`
    column: str  # column of hmt_gtt_orders
    api: str | None  # JSON name in the v1 API; None where the API does not show it
    type: type  # the runtime type of the value (an enum class for enums)
    home: Home
    owner: Owner
    nullable: bool = False  # may be None in hmt (the table may allow more: see price_divisor)
    price: bool = False  # rupees in the table and the API, wire units (x price_divisor) inside
    editable: bool = False  # an edit of an active or paused trigger may change it
    # The column may be NULL although hmt always holds a value: NULL is read as
    # one (price_divisor: the broker's rule; trigger_price_1: a time leg's 0;
    # legs: the v1 shape; on_gap: fire). docs/store.md.
    null_in_table: bool = False

    @property
    def is_enum(self) -> bool:
        return issubclass(self.type, Enum)


_T, _R = Home.TRIGGER, Home.RECORD
_TRADER, _INSTRUMENT, _SERVER = Owner.TRADER, Owner.INSTRUMENT, Owner.SERVER


def _trader(
    name: str,
    type_: type,
    *,
    nullable: bool = False,
    price: bool = False,
    null_in_table: bool = False,
) -> TriggerField:
    api = "transaction_type" if name == "side" else name  # Kite's name on the wire and the table
    return TriggerField(
        name,
        api,
        api,
        type_,
        _T,
        _TRADER,
        nullable,
        price,
        editable=True,
        null_in_table=null_in_table,
    )


def _v2(name: str, column: str, type_: type, home: Home, owner: Owner, **kw: bool) -> TriggerField:
    """A field of trigger model v2: not in the v1 API (its v2 shape is nested, docs/api.md)."""
    return TriggerField(name, column, None, type_, home, owner, **kw)


# In the table's column order.
FIELDS: tuple[TriggerField, ...] = (
    TriggerField("id", "id", "id", str, _T, _SERVER),
    TriggerField("user_id", "user_id", "user_id", str, _T, _SERVER),
    _trader("instrument_token", int),
    _trader("exchange", Exchange),
    _trader("tradingsymbol", str),
    _trader("trigger_type", TriggerType),
    _trader("side", Side),
    _trader("trigger_price_1", int, price=True, null_in_table=True),
    _trader("trigger_price_2", int, nullable=True, price=True),
    _trader("quantity", int),
    _trader("product", Product),
    _trader("order_type", OrderType),
    _trader("limit_price_1", int, nullable=True, price=True),
    _trader("limit_price_2", int, nullable=True, price=True),
    TriggerField("status", "status", "status", Status, _T, _SERVER),
    TriggerField("triggered_leg", "triggered_leg", "triggered_leg", Leg, _R, _SERVER, True),
    TriggerField(
        "triggered_price", "triggered_price", "triggered_price", int, _R, _SERVER, True, True
    ),
    TriggerField("triggered_at", "triggered_at", "triggered_at", datetime, _R, _SERVER, True),
    TriggerField("broker_tag", "broker_tag", "broker_tag", str, _R, _SERVER, True),
    TriggerField("order_id", "order_id", "order_id", str, _R, _SERVER, True),
    TriggerField("error_message", "error_message", "error_message", str, _R, _SERVER, True),
    TriggerField("attempts", "attempts", "attempts", int, _R, _SERVER),
    TriggerField("created_at", "created_at", "created_at", datetime, _R, _SERVER),
    TriggerField("updated_at", "updated_at", "updated_at", datetime, _R, _SERVER),
    _trader("expires_at", datetime, nullable=True),
    # Never NULL in hmt, although the column allows it for rows other tools write
    # (docs/store.md). An edit that changes the instrument changes it too.
    TriggerField(
        "price_divisor",
        "price_divisor",
        None,
        int,
        _T,
        _INSTRUMENT,
        editable=True,
        null_in_table=True,
    ),
    TriggerField("tick_size", "tick_size", None, int, _R, _INSTRUMENT, True, True),
    TriggerField("lot_size", "lot_size", None, int, _R, _INSTRUMENT, True),
    # The claim's owner (an engine's id) and lease; NULL unless `triggered` (docs/engine.md).
    TriggerField("claimed_by", "claimed_by", None, str, _R, _SERVER, True),
    TriggerField("claim_expires_at", "claim_expires_at", None, datetime, _R, _SERVER, True),
    # Trigger model v2 (revision 0003, docs/triggers.md); NULL in a v1 row. The
    # watched instrument (None: the traded one); the master's name and units for
    # it are set with it, and its divisor is the one of the thresholds.
    _v2("watch_token", "watch_token", int, _T, _TRADER, nullable=True, editable=True),
    _v2("watch_exchange", "watch_exchange", Exchange, _R, _INSTRUMENT, nullable=True),
    _v2("watch_tradingsymbol", "watch_tradingsymbol", str, _R, _INSTRUMENT, nullable=True),
    _v2("watch_price_divisor", "watch_price_divisor", int, _R, _INSTRUMENT, nullable=True),
    # Each leg's condition and basket (`LegSpec`s) as JSON; () is the v1 shape.
    _v2("leg_specs", "legs", tuple, _T, _TRADER, editable=True, null_in_table=True),
    _v2("not_before", "not_before", datetime, _T, _TRADER, nullable=True, editable=True),
    _v2("on_gap", "on_gap", OnGap, _T, _TRADER, editable=True, null_in_table=True),
    # Each price in wire units (revision 0008): the database keeps them (PostgreSQL),
    # hmt never writes them, and only the start-up load reads them (docs/store.md).
    *(
        TriggerField(f"{p}_units", f"{p}_units", None, int, Home.TABLE, _SERVER, True)
        for p in ("trigger_price_1", "trigger_price_2", "limit_price_1", "limit_price_2")
    ),
    # The watched instrument's cluster partition (revision 0010, docs/cluster.md): hmt
    # writes it with each row; a cluster node's load selects by it.
    TriggerField("partition", "partition", None, int, Home.TABLE, _SERVER, True),
    # The account whose session places the orders (revision 0011, docs/accounts.md);
    # None (NULL) is the default account, so a v1 row or request means it.
    TriggerField("account", "account", "account", str, _T, _TRADER, True, editable=True),
)

BY_NAME: dict[str, TriggerField] = {f.name: f for f in FIELDS}
TRIGGER_FIELDS = tuple(f for f in FIELDS if f.home is Home.TRIGGER)
RECORD_FIELDS = tuple(f for f in FIELDS if f.home is Home.RECORD)
TRADER_FIELDS = tuple(f for f in FIELDS if f.owner is Owner.TRADER)
# What v2 adds to the trader's fields; the v1 API carries the others.
V2_TRADER_FIELDS = tuple(f for f in TRADER_FIELDS if f.api is None)
# The trader's prices: one divisor scales them all.
TRADER_PRICES = tuple(f for f in TRADER_FIELDS if f.price)
EDITABLE = frozenset(f.name for f in FIELDS if f.editable)
API_FIELDS = tuple(f for f in FIELDS if f.api is not None)
