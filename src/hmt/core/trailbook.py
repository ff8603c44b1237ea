"""The trailing stops of one instrument, kept so that a new high costs amortized O(log n).

`trailing.Trail` defines one stop. Moving n stops one by one on every new
high is a scan; here the stops are kept in *classes* instead: the stops whose
best reference since activation is the same number `b`. A stop's price is a
function of `b` and of its own terms, so a class moves as a whole by changing
its `b`. A new high `r` raises every class below `r` to `r`: those classes
are merged into one (the smaller into the larger, so each stop moves between
classes O(log n) times in its life). On a rising instrument every active stop
ends up in one class and a new high touches one number and two heaps,
whatever n is.

Inside a class the stops are grouped by what makes their price a function of
the offset alone: (offset kind, tick, step, residue of the stop modulo the
step). In a group the stop falls as the offset grows, so the stops that fire
at a price are a prefix of the group's offsets, found by one bisection, and
the class's highest stop is bounded by its least offset per (kind, tick).
Each class is filed in a heap under that bound: a tick that fires nothing
compares the LTP with the heap's first entry.

Everything works on *oriented* prices: a BUY stop is a SELL stop on the
negated price (its lowest reference is the highest negated one, rounding up
is rounding the negation down), so one code path serves both sides.

Costs, for n stops on an instrument: a tick that fires nothing and makes no
new high, O(1); a new high, O(log n) plus the merges it causes (amortized
O(log^2 n) per stop over its life, O(1) classes merged on a rising
instrument); a tick firing k stops, O(k log n) plus the groups of the
classes it visits; add O(log n); remove O(log n) plus its class's groups.
The groups are bounded by the distinct trail terms, not by n: stepped stops
of one step have at most step/tick residues.
"""

from __future__ import annotations

from collections.abc import Iterator
from heapq import heapify, heappop, heappush
from typing import Final

from sortedcontainers import SortedList

from hmt.core.trailing import BPS_PER_UNIT, Offset, Reference, Trail, TrailState
from hmt.core.types import Side

_SHIFT: Final = 41
_MASK: Final = (1 << _SHIFT) - 1
_NEVER: Final = 1 << 50  # beyond any oriented price
_NO_ACT: Final = -(1 << 40)  # a trail without an activation price: the first reference starts it
_SLACK: Final = 64  # dead heap entries tolerated beyond twice the live ones

# (offset kind, tick, step (0: none), residue of the oriented stop modulo the step)
_Group = tuple[Offset, int, int, int]


def _level(kind: Offset, offset: int, tick: int, best: int) -> int:
    """`Trail.level` on oriented prices: the stop below `best`, on the grid, rounded down."""
    if kind is Offset.PRICE:
        raw = best - offset
    elif kind is Offset.TICKS:
        raw = best - offset * tick
    else:
        raw = best + (-abs(best) * offset // BPS_PER_UNIT)
    return raw - raw % tick


def _stop(group: _Group, offset: int, best: int) -> int:
    """The oriented stop of a stop in `group` with this offset, its class at `best`."""
    kind, tick, step, residue = group
    level = _level(kind, offset, tick, best)
    return level - (level - residue) % step if step else level


def _most_offset(group: _Group, best: int, ltp: int) -> int:
    """The largest offset in `group` whose stop fires at oriented `ltp` (-1: none)."""
    kind, tick, step, residue = group
    floor = -(-ltp // tick) * tick  # the lowest grid price at or above ltp
    if step:
        floor += (residue - floor) % step  # ...and on the step's grid
    room = best - floor  # the stop fires iff its distance from best is at most this
    if room < 0:
        return -1
    if kind is Offset.PRICE:
        return room
    if kind is Offset.TICKS:
        return room // tick
    real = abs(best)
    return room * BPS_PER_UNIT // real if real else BPS_PER_UNIT


class _Class:
    """The active stops whose best reference is `best` (oriented)."""

    __slots__ = ("best", "cid", "groups", "least", "size", "top")

    def __init__(self, best: int, cid: int) -> None:
        self.best = best
        self.cid = cid
        self.groups: dict[_Group, SortedList[int]] = {}  # offset << _SHIFT | lseq
        # The least offset per (kind, tick) over its groups: the class's highest
        # stop before step rounding, a bound computed in a few operations
        # however many step residues the class holds.
        self.least: dict[tuple[Offset, int], int] = {}
        self.size = 0
        self.top: int | None = None  # its key in `_Side.tops`

    def relearn(self) -> None:
        least: dict[tuple[Offset, int], int] = {}
        for (kind, tick, _, _), offsets in self.groups.items():
            offset = offsets[0] >> _SHIFT
            if offset < least.get((kind, tick), _NEVER):
                least[(kind, tick)] = offset
        self.least = least


class _Member:
    """One trailing leg: waiting for activation (`cls` None) or in a class."""

    __slots__ = ("cls", "group", "key", "side", "trail")

    def __init__(self, trail: Trail, side: _Side) -> None:
        self.trail = trail
        self.side = side
        self.cls: _Class | None = None
        self.group: _Group = (trail.kind, trail.tick, 0, 0)
        self.key = 0


class _Side:
    """The stops of one side, on oriented prices (sign 1: SELL, -1: BUY).

    Two heaps index the classes, with lazy deletion (an entry whose class is
    gone or has moved on is dropped when it surfaces, and a heap is rebuilt
    when dead entries outnumber live ones): `bests` (lowest best first: the
    classes a new high raises) and `tops` (highest stop first: the classes a
    tick may fire). A new high on a rising instrument is one pop and one push
    on each, a few hundred nanoseconds whatever n is.
    """

    __slots__ = (
        "bests",
        "by_best",
        "classes",
        "count",
        "fire_at",
        "low",
        "moved",
        "next_cid",
        "sign",
        "tops",
        "wait_at",
        "waiting",
    )

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.count = 0
        self.waiting: SortedList[int] = SortedList()  # activation << _SHIFT | lseq
        self.wait_at = _NEVER  # the lowest activation waiting
        self.bests: list[int] = []  # heap of best << _SHIFT | cid
        self.tops: list[int] = []  # heap of -top << _SHIFT | cid: the highest stop first
        self.by_best: dict[int, _Class] = {}
        self.classes: dict[int, _Class] = {}
        self.fire_at = -_NEVER  # the highest stop of all (a bound)
        self.low = _NEVER  # the lowest best of all
        self.next_cid = 0
        # Classes whose best changed or that gained stops since `Trails.moved` last
        # took them: what the engine's periodic write reads instead of every stop.
        self.moved: set[int] = set()

    # The tick path -----------------------------------------------------------------

    def tick(self, ref: int, ltp: int, members: dict[int, _Member], out: list[int]) -> None:
        """Move the stops for oriented `ref`, then take those firing at oriented `ltp`."""
        if ref >= self.wait_at:
            self._activate(ref, members)
        if ref > self.low:
            self._raise(ref, members)
        if ltp <= self.fire_at:
            self._fire(ltp, members, out)

    def _activate(self, ref: int, members: dict[int, _Member]) -> None:
        waiting = self.waiting
        cut = waiting.bisect_left((ref + 1) << _SHIFT)
        keys = waiting[:cut]
        del waiting[:cut]
        self.wait_at = waiting[0] >> _SHIFT if waiting else _NEVER
        cls = self._class_at(ref)
        for key in keys:
            member = members[key & _MASK]
            trail = member.trail
            self._join(cls, member, key & _MASK, _level(trail.kind, trail.offset, trail.tick, ref))
        self.moved.add(cls.cid)
        self._retop(cls)

    def _join(self, cls: _Class, member: _Member, lseq: int, stop: int) -> None:
        """Put an active member in `cls`, its oriented stop now `stop` (its step's grid)."""
        group = _group(member.trail, stop)
        key = member.trail.offset << _SHIFT | lseq
        offsets = cls.groups.get(group)
        if offsets is None:
            offsets = cls.groups[group] = SortedList()
        offsets.add(key)
        cls.size += 1
        member.cls, member.group, member.key = cls, group, key
        terms = (member.trail.kind, member.trail.tick)
        if member.trail.offset < cls.least.get(terms, _NEVER):
            cls.least[terms] = member.trail.offset

    def _class_at(self, best: int) -> _Class:
        cls = self.by_best.get(best)
        if cls is None:
            cls = _Class(best, self.next_cid)
            self.next_cid += 1
            self.by_best[best] = cls
            self.classes[cls.cid] = cls
            heappush(self.bests, best << _SHIFT | cls.cid)
            self.low = min(self.low, best)
        return cls

    def _raise(self, ref: int, members: dict[int, _Member]) -> None:
        """Every class below `ref` now has `ref` as its best: merge them into one."""
        bests, by_best, classes = self.bests, self.by_best, self.classes
        bound = ref << _SHIFT
        merged: list[_Class] = []
        while bests and bests[0] < bound:
            key = heappop(bests)
            cls = classes.get(key & _MASK)
            if cls is not None and cls.best == key >> _SHIFT and by_best.get(cls.best) is cls:
                del by_best[cls.best]
                merged.append(cls)
        if not merged:
            self._relow()  # only dead entries were below `ref`
            return
        there = by_best.pop(ref, None)
        if there is not None:
            merged.append(there)
        keep = merged[0] if len(merged) == 1 else max(merged, key=_size)
        for cls in merged:
            if cls is not keep:
                self._absorb(keep, cls, members)
        keep.best = ref
        self.moved.add(keep.cid)
        by_best[ref] = keep
        if keep is not there:
            heappush(bests, bound | keep.cid)
        self._retop(keep)
        if bests[0] == bound | keep.cid:
            self.low = ref  # the usual new high: the one class it moved is the lowest
        else:
            self._relow()

    def _absorb(self, keep: _Class, gone: _Class, members: dict[int, _Member]) -> None:
        """Move `gone`'s stops into `keep` (the larger class) and forget `gone`."""
        groups = keep.groups
        for group, offsets in gone.groups.items():
            into = groups.get(group)
            if into is None:
                groups[group] = offsets
            else:
                into.update(offsets)
            for key in offsets:
                members[key & _MASK].cls = keep
        keep.size += gone.size
        least = keep.least
        for terms, offset in gone.least.items():
            if offset < least.get(terms, _NEVER):
                least[terms] = offset
        del self.classes[gone.cid]  # its heap entries die with it

    def _fire(self, ltp: int, members: dict[int, _Member], out: list[int]) -> None:
        tops, classes = self.tops, self.classes
        # Each class whose highest stop may fire, visited once; `_retop` files
        # it again under what is left.
        bound = -ltp << _SHIFT
        hot: list[_Class] = []
        while tops and tops[0] < bound + (1 << _SHIFT):
            key = heappop(tops)
            cls = classes.get(key & _MASK)
            if cls is not None and cls.top == -(key >> _SHIFT):
                cls.top = None
                hot.append(cls)
        for cls in hot:
            for group in list(cls.groups):
                offsets = cls.groups[group]
                most = _most_offset(group, cls.best, ltp)
                if most < 0:
                    continue
                cut = offsets.bisect_left((most + 1) << _SHIFT)
                if not cut:
                    continue
                for key in offsets[:cut]:
                    lseq = key & _MASK
                    del members[lseq]
                    out.append(lseq)
                del offsets[:cut]
                cls.size -= cut
                self.count -= cut
                if not offsets:
                    del cls.groups[group]
            cls.relearn()
            self._retop(cls)
        self._refire()

    # Keeping the indexes ----------------------------------------------------------

    def _retop(self, cls: _Class) -> None:
        """Re-file `cls` under (a bound on) its highest stop, or forget it if empty.

        The bound ignores step rounding, which only lowers a stop: a tick may
        visit a class and find nothing to fire, never miss one.
        """
        if not cls.size:
            self._forget(cls)
            return
        best, top = cls.best, -_NEVER
        for (kind, tick), offset in cls.least.items():
            level = _level(kind, offset, tick, best)
            if level > top:
                top = level
        if top == cls.top:
            self._refire()
            return
        cls.top = top
        key = -top << _SHIFT | cls.cid
        tops = self.tops
        heappush(tops, key)
        if tops[0] == key:
            self.fire_at = top  # the usual new high: this class has the highest stop
        else:
            self._refire()
        if len(tops) > 2 * len(self.classes) + _SLACK:
            tops[:] = [-c.top << _SHIFT | c.cid for c in self.classes.values() if c.top is not None]
            heapify(tops)

    def _forget(self, cls: _Class) -> None:
        """Drop an emptied class (its heap entries die with it)."""
        if self.by_best.get(cls.best) is cls:
            del self.by_best[cls.best]
        del self.classes[cls.cid]
        self._relow()
        self._refire()

    def _relow(self) -> None:
        """`low` from the first live entry of `bests` (dead ones popped; rebuilt if many)."""
        bests, classes, by_best = self.bests, self.classes, self.by_best
        if len(bests) > 2 * len(classes) + _SLACK:
            bests[:] = [c.best << _SHIFT | c.cid for c in by_best.values()]
            heapify(bests)
        while bests:
            key = bests[0]
            cls = classes.get(key & _MASK)
            if cls is not None and cls.best == key >> _SHIFT and by_best.get(cls.best) is cls:
                self.low = key >> _SHIFT
                return
            heappop(bests)
        self.low = _NEVER

    def _refire(self) -> None:
        """`fire_at` from the first live entry of `tops` (dead ones popped)."""
        tops, classes = self.tops, self.classes
        while tops:
            key = tops[0]
            cls = classes.get(key & _MASK)
            if cls is not None and cls.top == -(key >> _SHIFT):
                self.fire_at = -(key >> _SHIFT)
                return
            heappop(tops)
        self.fire_at = -_NEVER

    # Members ------------------------------------------------------------------------

    def add(self, lseq: int, member: _Member, state: TrailState | None) -> None:
        self.count += 1
        trail = member.trail
        if state is None or state.best is None or state.stop is None:
            act = _NO_ACT if trail.activation is None else self.sign * trail.activation
            member.key = act << _SHIFT | lseq
            self.waiting.add(member.key)
            self.wait_at = min(self.wait_at, act)
            return
        best, stop = self.sign * state.best, self.sign * state.stop
        if _stop(_group(trail, stop), trail.offset, best) != stop:
            # Not what these terms give for that best: resuming could loosen it.
            self.count -= 1
            raise ValueError(f"trail state {state} does not follow from the trail {trail}")
        cls = self._class_at(best)
        self._join(cls, member, lseq, stop)
        self.moved.add(cls.cid)
        self._retop(cls)

    def remove(self, lseq: int, member: _Member) -> None:
        self.count -= 1
        cls = member.cls
        if cls is None:
            self.waiting.remove(member.key)
            self.wait_at = self.waiting[0] >> _SHIFT if self.waiting else _NEVER
            return
        offsets = cls.groups[member.group]
        offsets.remove(member.key)
        if not offsets:
            del cls.groups[member.group]
        cls.size -= 1
        cls.relearn()
        self._retop(cls)

    def state(self, member: _Member) -> TrailState:
        cls = member.cls
        if cls is None:
            return TrailState()
        sign = self.sign
        return TrailState(
            sign * cls.best, sign * _stop(member.group, member.trail.offset, cls.best)
        )


def _group(trail: Trail, stop: int) -> _Group:
    """The group of a trail whose oriented stop is `stop`."""
    step = trail.step or 0
    return (trail.kind, trail.tick, step, stop % step if step else 0)


def _size(cls: _Class) -> int:
    return cls.size


class Trails:
    """Every trailing leg watching one instrument, keyed by the book's leg sequence.

    `lseq` is the book's ``seq << 1 | leg_bit``. `tick` advances every stop
    with the reference price and returns, removed, the legs whose stop fires
    at the LTP (the reference is the LTP unless the caller passes a quote's
    bid or ask). Legs trailing the bid or the ask (`Reference`) are kept on
    sides of their own, moved by `bid`/`ask` when given, else by `ref`.
    """

    __slots__ = ("buy", "members", "quoted_buy", "quoted_sell", "sell")

    def __init__(self) -> None:
        self.sell = _Side(1)
        self.buy = _Side(-1)
        self.quoted_sell = _Side(1)  # SELL stops trailing the best bid
        self.quoted_buy = _Side(-1)  # BUY stops trailing the best ask
        self.members: dict[int, _Member] = {}

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, lseq: object) -> bool:
        return lseq in self.members

    @property
    def quoted(self) -> bool:
        """Whether any held leg trails the bid or the ask."""
        return bool(self.quoted_sell.count or self.quoted_buy.count)

    def add(self, lseq: int, trail: Trail, state: TrailState | None = None) -> None:
        """Hold a trailing leg, fresh (`state` None) or resumed from a written state."""
        if lseq in self.members:
            raise ValueError(f"trailing leg {lseq} is already held")
        if state is not None and (state.best is None) != (state.stop is None):
            raise ValueError("a trail state has both best and stop, or neither")
        quoted = trail.reference is not Reference.LTP
        if trail.side is Side.SELL:
            side = self.quoted_sell if quoted else self.sell
        else:
            side = self.quoted_buy if quoted else self.buy
        member = _Member(trail, side)
        side.add(lseq, member, state)
        self.members[lseq] = member

    def discard(self, lseq: int) -> None:
        """Forget a leg (cancelled, or the other leg of an oco fired); absent is fine."""
        member = self.members.pop(lseq, None)
        if member is not None:
            member.side.remove(lseq, member)

    def state(self, lseq: int) -> TrailState | None:
        """Where the leg's stop stands now; None if it is not held."""
        member = self.members.get(lseq)
        return None if member is None else member.side.state(member)

    def states(self) -> Iterator[tuple[int, TrailState]]:
        """Every held leg's state (for the engine's periodic write)."""
        for lseq, member in self.members.items():
            yield lseq, member.side.state(member)

    def moved(self) -> list[int]:
        """The legs whose state may have changed since the last call (their class's best
        moved, or they activated or were resumed); the record of them is cleared.

        Costs the legs of the classes that moved (a key each, no state computed), not
        every leg: nothing on an instrument that made no new best.
        """
        out: list[int] = []
        for side in (self.sell, self.buy, self.quoted_sell, self.quoted_buy):
            if not side.moved:
                continue
            cids, side.moved = side.moved, set()
            for cid in cids:
                cls = side.classes.get(cid)
                if cls is None:
                    continue  # emptied, or merged into a class that moved too
                for offsets in cls.groups.values():
                    out += [key & _MASK for key in offsets]
        return out

    def tick(self, ref: int, ltp: int, bid: int | None = None, ask: int | None = None) -> list[int]:
        """Advance every stop with `ref` (bid/ask legs with `bid`/`ask` when given), then
        take the legs firing at `ltp`. `HOLD` as `bid` or `ask` moves none of those legs
        (a tick that only checks them against its LTP)."""
        out: list[int] = []
        members = self.members
        if self.sell.count:
            self.sell.tick(ref, ltp, members, out)
        if self.buy.count:
            self.buy.tick(-ref, -ltp, members, out)
        if self.quoted_sell.count:
            self.quoted_sell.tick(ref if bid is None else bid, ltp, members, out)
        if self.quoted_buy.count:
            self.quoted_buy.tick(-ref if ask is None else -ask, -ltp, members, out)
        return out


# As `Trails.tick`'s bid or ask: below any activation and any best on its oriented
# side, so the bid/ask legs neither activate nor move, and only fire.
HOLD_BID: Final = -_NEVER
HOLD_ASK: Final = _NEVER
