"""The trigger book: which legs fire on a tick, in time independent of how many don't.

Per instrument, the legs that fire on a rise and the legs that fire on a fall
are kept in two sorted lists of integer keys. The lowest rising threshold and
the highest falling threshold are cached, so a tick that fires nothing costs a
dict look-up and two integer comparisons whether the instrument has ten
triggers or a million. Adding or removing a leg is O(log n); a tick that fires
k legs is O(k log n).

A key packs a leg into one int: ``threshold << 41 | seq << 1 | leg_bit``.
Sorting keys sorts by threshold first, and a slice of keys cut at a price
bound is exactly the set of legs that hold at that price. One small int per
leg is far cheaper in memory and comparisons than a tuple.

Trigger model v2 (docs/triggers.md): a trigger's legs are indexed under the
instrument it watches (`Trigger.watched`), each in its own direction
(`rules.direction`: a stated direction wins over DESIGN's table). A time leg
has no price: it is not in this book but in `TimeBook`; the trigger itself
is still registered here, so `len`, `in`, `get` and `remove` see every
active trigger the caller added. The tick path is unchanged: v2 only changes
which list a key lands in, and the cost of computing keys at add time.

Trailing stops (issue 14, docs/triggers.md "Trailing stops"): a trailing leg
has no fixed price; it lives in its instrument's `Trails` (`core/trailbook`),
where a new high costs amortized O(log n). An instrument holding one gets
sentinel bounds that send every tick past the fast path (every tick may move
a stop); an instrument without one keeps the fast path exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from sortedcontainers import SortedList

from hmt.core.errors import DuplicateTrigger
from hmt.core.gaps import DayRange
from hmt.core.model import Fired, Trigger
from hmt.core.rules import DIRECTIONS, direction
from hmt.core.rules import holds as holds_at
from hmt.core.trailbook import HOLD_ASK, HOLD_BID, Trails
from hmt.core.trailing import Trail, TrailState
from hmt.core.types import Direction, InstrumentToken, Leg, Side, TriggerId, TriggerType

_SHIFT: Final = 41
_SEQ_MASK: Final = (1 << _SHIFT) - 1
# Sentinels beyond any wire price (Kite's prices are uint32): nothing rises past
# the first, nothing falls below the second.
_NO_RISE: Final = 1 << 62
_NO_FALL: Final = -(1 << 62)
_NOTHING: Final[tuple[Fired, ...]] = ()

# For each (type, side), whether each leg (in leg order) fires on a rise: the
# rules table folded once, so indexing a trigger costs one look-up.
_RISES: Final[dict[tuple[TriggerType, Side], tuple[bool, ...]]] = {}
for (_type, _side, _leg), _way in sorted(DIRECTIONS.items()):
    _RISES[(_type, _side)] = (*_RISES.get((_type, _side), ()), _way is Direction.AT_OR_ABOVE)


_SINGLE: Final = TriggerType.SINGLE
_OCO: Final = TriggerType.OCO
_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
_SINGLE_BUY: Final = _RISES[(_SINGLE, _BUY)]
_SINGLE_SELL: Final = _RISES[(_SINGLE, _SELL)]
_OCO_BUY: Final = _RISES[(_OCO, _BUY)]
_OCO_SELL: Final = _RISES[(_OCO, _SELL)]


class _Instrument:
    """The legs of one instrument, split by the direction they fire in."""

    __slots__ = ("fall_at", "falling", "fixed_fall", "fixed_rise", "rise_at", "rising", "trails")

    def __init__(self) -> None:
        self.rising: SortedList[int] = SortedList()  # fire when ltp >= threshold
        self.falling: SortedList[int] = SortedList()  # fire when ltp <= threshold
        self.rise_at: int = _NO_RISE  # lowest rising threshold
        self.fall_at: int = _NO_FALL  # highest falling threshold
        self.trails: Trails | None = None  # its trailing legs, if any
        # The fixed legs' bounds, kept apart from `rise_at`/`fall_at` for the
        # trailing path (which sends every tick past the fast path).
        self.fixed_rise: int = _NO_RISE
        self.fixed_fall: int = _NO_FALL

    def refresh(self) -> None:
        if self.trails is not None and not self.trails:
            self.trails = None
        if self.trails is not None:
            self.fixed_rise = self.rising[0] >> _SHIFT if self.rising else _NO_RISE
            self.fixed_fall = self.falling[-1] >> _SHIFT if self.falling else _NO_FALL
            # Every tick can move a stop: no price may take the fast path.
            self.rise_at, self.fall_at = _NO_FALL, _NO_RISE
            return
        self.rise_at = self.rising[0] >> _SHIFT if self.rising else _NO_RISE
        self.fall_at = self.falling[-1] >> _SHIFT if self.falling else _NO_FALL

    def hold_trails(self, seq: int, trails: tuple[tuple[int, Trail], ...]) -> None:
        held = self.trails
        if held is None:
            held = self.trails = Trails()
        for bit, trail in trails:
            held.add(seq << 1 | bit, trail)

    def side(self, rises: bool) -> SortedList[int]:
        return self.rising if rises else self.falling

    def __len__(self) -> int:
        trails = 0 if self.trails is None else len(self.trails)
        return len(self.rising) + len(self.falling) + trails


class TriggerBook:
    """The active triggers, indexed for `on_tick`.

    The book holds only what it is given: the caller adds active triggers and
    removes them when they stop being active. `on_tick` removes what it fires
    before it returns, both legs of an oco at once, so no later tick in this
    process can fire the same trigger again.
    """

    __slots__ = ("_by_id", "_by_seq", "_instruments", "_next_seq", "depth")

    def __init__(self) -> None:
        # True when ticks carry depth (full mode): an LTP-only tick then leaves the legs
        # trailing the bid or ask where they are (they only fire), and `on_depth` moves
        # them. False: there is no bid or ask, and the LTP moves them too.
        self.depth = False
        self._instruments: dict[int, _Instrument] = {}
        self._by_id: dict[TriggerId, int] = {}
        self._by_seq: dict[int, Trigger] = {}
        self._next_seq = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, trigger_id: object) -> bool:
        return trigger_id in self._by_id

    def __iter__(self) -> Iterator[Trigger]:
        return iter(self._by_seq.values())

    def get(self, trigger_id: TriggerId) -> Trigger | None:
        seq = self._by_id.get(trigger_id)
        return None if seq is None else self._by_seq[seq]

    def instruments(self) -> frozenset[InstrumentToken]:
        """The instruments some price leg watches: what to subscribe to."""
        return frozenset(InstrumentToken(token) for token in self._instruments)

    def count_for(self, instrument_token: int) -> int:
        """How many price legs watching this instrument are in the book."""
        book = self._instruments.get(instrument_token)
        return 0 if book is None else len(book)

    def holds(self, instrument_token: int) -> bool:
        """Whether any price leg watches this instrument (an emptied one is dropped)."""
        return instrument_token in self._instruments

    def add(self, trigger: Trigger) -> None:
        """Index `trigger`'s legs; `DuplicateTrigger` if its id is already here."""
        if trigger.id in self._by_id:
            raise DuplicateTrigger(f"trigger {trigger.id} is already in the book")
        keys = self._register(trigger)
        trails = _trail_legs(trigger) if trigger.leg_specs else ()
        if not keys and not trails:  # time legs only: nothing to index by price
            return
        token = _watched(trigger)
        book = self._instruments.get(token)
        if book is None:
            book = self._instruments[token] = _Instrument()
        for rises, key in keys:
            book.side(rises).add(key)
        if trails:
            book.hold_trails(self._by_id[trigger.id], trails)
        book.refresh()

    def add_many(self, triggers: Iterable[Trigger]) -> int:
        """Index many triggers with one sort per instrument; returns how many."""
        pending: dict[int, tuple[list[int], list[int]]] = {}
        trailing: list[tuple[int, int, tuple[tuple[int, Trail], ...]]] = []
        count = 0
        try:
            for trigger in triggers:
                if trigger.id in self._by_id:
                    raise DuplicateTrigger(f"trigger {trigger.id} is already in the book")
                rising, falling = pending.setdefault(_watched(trigger), ([], []))
                for rises, key in self._register(trigger):
                    (rising if rises else falling).append(key)
                if trigger.leg_specs and (trails := _trail_legs(trigger)):
                    trailing.append((_watched(trigger), self._by_id[trigger.id], trails))
                count += 1
        finally:
            # Keys registered before a duplicate are still indexed: the book
            # stays consistent with its id maps whatever the input did.
            for token, seq, trails in trailing:
                book = self._instruments.get(token)
                if book is None:
                    book = self._instruments[token] = _Instrument()
                book.hold_trails(seq, trails)
            for token, (rising, falling) in pending.items():
                book = self._instruments.get(token)
                if not rising and not falling and book is None:
                    continue  # time legs only, or a malformed trigger's empty lists
                if book is None:
                    book = self._instruments[token] = _Instrument()
                book.rising.update(rising)
                book.falling.update(falling)
                book.refresh()
        return count

    def remove(self, trigger_id: TriggerId) -> Trigger | None:
        """Take a trigger out of the book; None if it was not there."""
        seq = self._by_id.pop(trigger_id, None)
        if seq is None:
            return None
        trigger = self._by_seq.pop(seq)
        keys = _leg_keys(trigger, seq)
        trails = _trail_legs(trigger) if trigger.leg_specs else ()
        if keys or trails:
            token = _watched(trigger)
            book = self._instruments[token]
            for rises, key in keys:
                book.side(rises).remove(key)
            if book.trails is not None:
                for bit, _ in trails:
                    book.trails.discard(seq << 1 | bit)
            self._settle(token, book)
        return trigger

    def on_tick(self, instrument_token: int, ltp: int) -> tuple[Fired, ...]:
        """The legs that fire at `ltp`, removed from the book before this returns."""
        book = self._instruments.get(instrument_token)
        if book is None or book.fall_at < ltp < book.rise_at:
            return _NOTHING
        return self._fire(instrument_token, book, ltp)

    def _fire(self, instrument_token: int, book: _Instrument, ltp: int) -> tuple[Fired, ...]:
        if book.trails is not None:
            if self.depth and book.trails.quoted:
                return self._fire_trailing(
                    instrument_token, book, book.trails, ltp, ltp, HOLD_BID, HOLD_ASK
                )
            return self._fire_trailing(instrument_token, book, book.trails, ltp, ltp)
        keys: list[int] = []
        if ltp >= book.rise_at:
            _take_below(book.rising, (ltp + 1) << _SHIFT, keys)
        if ltp <= book.fall_at:
            _take_from(book.falling, ltp << _SHIFT, keys)
        fired: list[Fired] = []
        by_seq, by_id = self._by_seq, self._by_id
        for key in keys:
            seq = (key & _SEQ_MASK) >> 1
            trigger = by_seq.pop(seq, None)
            if trigger is None:
                # The other leg of an oco whose first leg fired on this tick.
                continue
            del by_id[trigger.id]
            leg = Leg.SECOND if key & 1 else Leg.FIRST
            if leg is Leg.SECOND and trigger.leg_specs and _first_holds(trigger, ltp):
                # Stated directions can make both legs of an oco hold at one
                # price; the first (the stop-loss) is the one that fires.
                leg = Leg.FIRST
            fired.append(Fired(trigger, leg, ltp))
            if trigger.trigger_type is TriggerType.OCO:
                # Its other leg goes in the same call: one cancels the other.
                # (A time leg is not here; the caller takes it out of its TimeBook.)
                for rises, other in _leg_keys(trigger, seq):
                    if other != key:
                        book.side(rises).discard(other)
        self._settle(instrument_token, book)
        return tuple(fired)

    def on_quote(self, instrument_token: int, ltp: int, ref: int) -> tuple[Fired, ...]:
        """`on_tick` with a reference price other than the LTP (a quote's bid or ask).

        Trailing stops move with `ref` and fire on `ltp`; fixed legs see only `ltp`.
        """
        book = self._instruments.get(instrument_token)
        if book is None:
            return _NOTHING
        if book.trails is None:
            return self.on_tick(instrument_token, ltp)
        return self._fire_trailing(instrument_token, book, book.trails, ltp, ref)

    def on_depth(self, instrument_token: int, ltp: int, bid: int, ask: int) -> tuple[Fired, ...]:
        """A full-mode tick's best bid and ask (after its LTP went through `on_tick`):
        the legs trailing them move, then every trailing leg is checked at `ltp`.

        A side of the book that is empty (0) leaves its legs where they are.
        Fixed legs and LTP-trailing legs already saw this tick's LTP.
        """
        book = self._instruments.get(instrument_token)
        if book is None or book.trails is None or not book.trails.quoted:
            return _NOTHING
        return self._fire_trailing(
            instrument_token,
            book,
            book.trails,
            ltp,
            ltp,
            bid if bid > 0 else HOLD_BID,
            ask if ask > 0 else HOLD_ASK,
        )

    def _fire_trailing(
        self,
        instrument_token: int,
        book: _Instrument,
        trails: Trails,
        ltp: int,
        ref: int,
        bid: int | None = None,
        ask: int | None = None,
    ) -> tuple[Fired, ...]:
        """A tick on an instrument with trailing legs: move the stops, then fire.

        A trailing stop is moved by the tick's reference first and then checked
        against its LTP (docs/triggers.md). Fixed legs fire as on any tick.
        """
        lseqs = trails.tick(ref, ltp, bid, ask)
        keys: list[int] = []
        if ltp >= book.fixed_rise:
            _take_below(book.rising, (ltp + 1) << _SHIFT, keys)
        if ltp <= book.fixed_fall:
            _take_from(book.falling, ltp << _SHIFT, keys)
        if not keys and not lseqs:
            return _NOTHING
        lseqs += [key & _SEQ_MASK for key in keys]
        first_fired = {lseq >> 1 for lseq in lseqs if not lseq & 1}
        fired: list[Fired] = []
        by_seq, by_id = self._by_seq, self._by_id
        for lseq in lseqs:
            seq = lseq >> 1
            trigger = by_seq.pop(seq, None)
            if trigger is None:
                continue  # the other leg of an oco fired on this tick
            del by_id[trigger.id]
            leg = Leg.SECOND if lseq & 1 else Leg.FIRST
            if leg is Leg.SECOND and (
                seq in first_fired or (trigger.leg_specs and _first_holds(trigger, ltp))
            ):
                leg = Leg.FIRST  # both hold: the first (the stop-loss) fires
            fired.append(Fired(trigger, leg, ltp))
            if trigger.trigger_type is TriggerType.OCO:
                for rises, other in _leg_keys(trigger, seq):
                    book.side(rises).discard(other)
                for bit, _ in _trail_legs(trigger):
                    trails.discard(seq << 1 | bit)
        self._settle(instrument_token, book)
        return tuple(fired)

    def trail_state(self, trigger_id: TriggerId, leg: Leg) -> TrailState | None:
        """Where a trailing leg's stop stands now; None if it is not a held trailing leg.

        A trail not yet active has `TrailState()` (no best, no stop).
        """
        seq = self._by_id.get(trigger_id)
        if seq is None:
            return None
        book = self._instruments.get(_watched(self._by_seq[seq]))
        if book is None or book.trails is None:
            return None
        return book.trails.state(seq << 1 | (leg is Leg.SECOND))

    def trail_states(
        self, instrument_token: int | None = None
    ) -> Iterator[tuple[Trigger, Leg, TrailState]]:
        """Every held trailing leg and its state (of one instrument, if given): what the
        engine writes periodically."""
        by_seq = self._by_seq
        if instrument_token is None:
            books: Iterable[_Instrument] = self._instruments.values()
        else:
            one = self._instruments.get(instrument_token)
            books = () if one is None else (one,)
        for book in books:
            if book.trails is not None:
                for lseq, state in book.trails.states():
                    leg = Leg.SECOND if lseq & 1 else Leg.FIRST
                    yield by_seq[lseq >> 1], leg, state

    def moved_trails(self) -> list[tuple[Trigger, Leg]]:
        """The trailing legs whose state may have changed since the last call
        (`Trails.moved`): what the engine's periodic write compares, at the cost of the
        legs that moved rather than of every leg held. Their states: `trail_state`."""
        by_seq = self._by_seq
        out: list[tuple[Trigger, Leg]] = []
        for book in self._instruments.values():
            if book.trails is not None:
                out.extend(
                    (by_seq[lseq >> 1], Leg.SECOND if lseq & 1 else Leg.FIRST)
                    for lseq in book.trails.moved()
                )
        return out

    def resume_trail(self, trigger_id: TriggerId, leg: Leg, state: TrailState) -> None:
        """Put a trailing leg back where it was last written (after a restart).

        `ValueError` if the trigger's leg is not a held trailing leg or the
        state does not follow from its terms; the leg is unchanged then.
        """
        seq = self._by_id.get(trigger_id)
        trigger = None if seq is None else self._by_seq[seq]
        trail = None if trigger is None or leg not in trigger.legs else trigger.trail(leg)
        book = None if trigger is None else self._instruments.get(_watched(trigger))
        trails = None if book is None else book.trails
        if seq is None or trail is None or trails is None:
            raise ValueError(f"trigger {trigger_id} has no trailing leg {int(leg)} in the book")
        lseq = seq << 1 | (leg is Leg.SECOND)
        probe = Trails()
        probe.add(lseq, trail, state)  # checks the state before the book changes
        trails.discard(lseq)
        trails.add(lseq, trail, state)

    def crossed(
        self, instrument_token: int, before: DayRange, after: DayRange
    ) -> list[tuple[Trigger, Leg]]:
        """The legs whose price the day's range moved past between `before` and `after`.

        A rising leg is crossed when before.high < threshold <= after.high, a
        falling one when after.low <= threshold < before.low: the range grew
        over its price while the caller was not looking (a missed touch). Two
        range queries on the sorted lists, so the cost is the number of legs
        found, not the number held. Nothing is removed: the caller decides
        (`on_gap`) and removes what it fires. Both legs of an oco may be
        listed; the order is the triggers' arrival order, first leg first.
        """
        book = self._instruments.get(instrument_token)
        if book is None:
            return []
        keys: list[int] = []
        if after.high > before.high:
            rising = book.rising
            start = rising.bisect_left((before.high + 1) << _SHIFT)
            keys += rising.islice(start, rising.bisect_left((after.high + 1) << _SHIFT))
        if after.low < before.low:
            falling = book.falling
            start = falling.bisect_left(after.low << _SHIFT)
            keys += falling.islice(start, falling.bisect_left(before.low << _SHIFT))
        keys.sort(key=_SEQ_MASK.__and__)
        by_seq = self._by_seq
        return [
            (by_seq[(key & _SEQ_MASK) >> 1], Leg.SECOND if key & 1 else Leg.FIRST) for key in keys
        ]

    def _register(self, trigger: Trigger) -> tuple[tuple[bool, int], ...]:
        """Give `trigger` a sequence number and return its legs' keys.

        The keys are computed first, so a malformed trigger raises before the
        book has recorded anything of it.
        """
        seq = self._next_seq
        keys = _leg_keys(trigger, seq)
        self._next_seq = seq + 1
        self._by_id[trigger.id] = seq
        self._by_seq[seq] = trigger
        return keys

    def _settle(self, instrument_token: int, book: _Instrument) -> None:
        if book:
            book.refresh()
        else:
            del self._instruments[instrument_token]


class BookBuilder:
    """A new book from many batches: each instrument's legs are sorted once, at the end.

    Adding batch after batch to a `TriggerBook` merges each batch into sorted
    lists that keep growing; a start-up load of a million triggers in batches
    spent most of its book time there. `add_many` here only registers each
    trigger and keeps its keys in plain lists; `steps` then builds one
    instrument at a time (so an async caller can let its loop run between
    them) and `build` finishes and hands the book over. Nothing may use the
    book before `build` returns it.
    """

    __slots__ = ("_book", "_pending", "_trailing")

    def __init__(self) -> None:
        self._book = TriggerBook()
        self._pending: dict[int, tuple[list[int], list[int]]] = {}
        self._trailing: list[tuple[int, int, tuple[tuple[int, Trail], ...]]] = []

    def add_many(self, triggers: Iterable[Trigger]) -> int:
        """Register `triggers` (`DuplicateTrigger` on an id already added); how many.

        A v1 trigger (the whole of a typical million-trigger load) is keyed here
        inline, its direction found by identity (`_v1_rises`); any other goes
        through `_leg_keys`. Each trigger's keys are computed before anything of
        it is recorded, so a malformed one leaves no trace.
        """
        book, pending, trailing = self._book, self._pending, self._trailing
        by_id, by_seq = book._by_id, book._by_seq
        first_seq = seq = book._next_seq
        try:
            for trigger in triggers:
                trigger_id = trigger.id
                if trigger_id in by_id:
                    raise DuplicateTrigger(f"trigger {trigger_id} is already in the book")
                watch = trigger.watch_token
                token = trigger.instrument_token if watch is None else watch
                rises = None if trigger.leg_specs else _v1_rises(trigger.trigger_type, trigger.side)
                if rises is not None and len(rises) == 1:
                    key = trigger.trigger_price_1 << _SHIFT | seq << 1
                    by_id[trigger_id] = seq
                    by_seq[seq] = trigger
                    lists = pending.get(token)
                    if lists is None:
                        lists = pending[token] = ([], [])
                    lists[0 if rises[0] else 1].append(key)
                    seq += 1
                    continue
                keys = _leg_keys(trigger, seq)  # first: a malformed trigger leaves no trace
                by_id[trigger_id] = seq
                by_seq[seq] = trigger
                if trigger.leg_specs and (trails := _trail_legs(trigger)):
                    trailing.append((token, seq, trails))
                seq += 1
                if not keys:  # time legs (or trailing legs) only
                    continue
                lists = pending.get(token)
                if lists is None:
                    lists = pending[token] = ([], [])
                for up, key in keys:
                    lists[0 if up else 1].append(key)
        finally:
            book._next_seq = seq
        return seq - first_seq

    def steps(self) -> Iterator[int]:
        """Sort the legs of one instrument per step; each step yields how many legs it sorted."""
        instruments, pending, trailing = self._book._instruments, self._pending, self._trailing
        if trailing:
            for token, seq, trails in trailing:
                book = instruments.get(token)
                if book is None:
                    book = instruments[token] = _Instrument()
                book.hold_trails(seq, trails)
            for book in instruments.values():
                book.refresh()
            yield len(trailing)
            trailing.clear()
        while pending:
            token, (rising, falling) = pending.popitem()
            book = instruments.get(token)
            if book is None:
                book = instruments[token] = _Instrument()
            book.rising.update(rising)
            book.falling.update(falling)
            book.refresh()
            yield len(rising) + len(falling)

    def build(self) -> TriggerBook:
        """The book, every instrument sorted (the steps not yet taken, taken now)."""
        for _ in self.steps():
            pass
        return self._book


# A tick usually fires a leg or two: up to this many are popped one by one (a few
# attribute reads each) before the slicing path, whose index work costs more for
# few keys and far less for many.
_FEW: Final = 8


def _take_below(rising: SortedList[int], bound: int, keys: list[int]) -> None:
    """Move every key below `bound` (the lowest first) from `rising` to `keys`."""
    left = len(rising)
    for _ in range(_FEW):
        if not left or rising[0] >= bound:
            return
        keys.append(rising.pop(0))
        left -= 1
    cut = rising.bisect_left(bound)
    keys += rising[:cut]
    del rising[:cut]


def _take_from(falling: SortedList[int], bound: int, keys: list[int]) -> None:
    """Move every key at or above `bound` (in ascending order, as a slice) to `keys`."""
    left = len(falling)
    taken: list[int] = []
    for _ in range(_FEW):
        if not left or falling[-1] < bound:
            break
        taken.append(falling.pop())
        left -= 1
    else:
        cut = falling.bisect_left(bound)
        keys += falling[cut:]
        del falling[cut:]
    keys += reversed(taken)


def _watched(trigger: Trigger) -> int:
    """The instrument the trigger's price legs are indexed under."""
    return trigger.instrument_token if trigger.watch_token is None else trigger.watch_token


def _v1_rises(trigger_type: object, side: object) -> tuple[bool, ...] | None:
    """`_RISES[(trigger_type, side)]` found by identity, None for a pair not in it.

    Hashing an enum member runs `Enum.__hash__` in Python: the dict look-up with
    a pair of them cost about 0.4 us, a tenth of a v1 trigger's whole way into the
    book at a million of them. Typed `object`: a value that is no member (a
    caller's bug) gets None, and `_RISES` then raises as it always did.
    """
    if trigger_type is _SINGLE:
        return _SINGLE_BUY if side is _BUY else _SINGLE_SELL if side is _SELL else None
    if trigger_type is _OCO:
        return _OCO_BUY if side is _BUY else _OCO_SELL if side is _SELL else None
    return None


def _leg_keys(trigger: Trigger, seq: int) -> tuple[tuple[bool, int], ...]:
    """(fires on a rise, key) for each price leg of `trigger`, in leg order."""
    if trigger.leg_specs:
        return _v2_leg_keys(trigger, seq)
    # A v1 trigger: DESIGN's table, folded once (the path a million-trigger load takes).
    rises = _v1_rises(trigger.trigger_type, trigger.side)
    if rises is None:
        rises = _RISES[(trigger.trigger_type, trigger.side)]  # raises: no such v1 shape
    first = (rises[0], trigger.trigger_price_1 << _SHIFT | seq << 1)
    if len(rises) == 1:
        return (first,)
    second = trigger.threshold(Leg.SECOND) << _SHIFT | seq << 1 | 1
    return first, (rises[1], second)


def _v2_leg_keys(trigger: Trigger, seq: int) -> tuple[tuple[bool, int], ...]:
    """A v2 trigger's keys: each leg's own direction; time legs have none."""
    return tuple(
        (
            direction(trigger, leg) is Direction.AT_OR_ABOVE,
            trigger.threshold(leg) << _SHIFT | seq << 1 | (leg is Leg.SECOND),
        )
        for leg in trigger.legs
        if trigger.fire_at(leg) is None and trigger.trail(leg) is None
    )


def _trail_legs(trigger: Trigger) -> tuple[tuple[int, Trail], ...]:
    """(leg bit, trail) for each trailing leg of a v2 `trigger`."""
    return tuple(
        (leg is Leg.SECOND, trail)
        for leg in trigger.legs
        if (trail := trigger.trail(leg)) is not None
    )


def _first_holds(trigger: Trigger, ltp: int) -> bool:
    """Whether the first leg of a v2 oco holds at `ltp` too (only stated directions allow it)."""
    return (
        trigger.fire_at(Leg.FIRST) is None
        and trigger.trail(Leg.FIRST) is None
        and holds_at(direction(trigger, Leg.FIRST), trigger.trigger_price_1, ltp)
    )
