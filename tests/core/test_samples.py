"""Folding the performance history: the worst of a minute survives, counts add up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hmt.core.samples import Sample, fold, fold_older, worst_verdict

T0 = datetime(2026, 12, 1, 3, 45, tzinfo=UTC)


def row(offset_s: int, **figures: object) -> Sample:
    return Sample(at=T0 + timedelta(seconds=offset_s), seconds=10, figures=figures)


def test_fold_averages_rates_sums_counts_keeps_the_worst_and_the_least() -> None:
    rows = [
        row(
            0,
            ticks_per_s=10.0,
            orders_placed=1,
            tick_to_order_p99_us=900,
            headroom_per_second=10,
            health="ok",
            ticks_per_s_by_connection={"0": 10.0},
        ),
        row(
            10,
            ticks_per_s=20.0,
            orders_placed=2,
            tick_to_order_p99_us=4000,
            headroom_per_second=3,
            health="degraded",
            ticks_per_s_by_connection={"0": 16.0, "1": 4.0},
        ),
        row(
            20,
            ticks_per_s=30.0,
            orders_placed=0,
            tick_to_order_p99_us=None,
            headroom_per_second=7,
            health="ok",
            ticks_per_s_by_connection={"0": 30.0},
        ),
    ]
    folded = fold(rows, T0, 60)
    assert (folded.at, folded.seconds) == (T0, 60)
    f = folded.figures
    assert f["ticks_per_s"] == 20.0
    # A connection absent from a row carried no ticks then: its minute rate counts that.
    assert f["ticks_per_s_by_connection"] == {"0": 18.667, "1": 1.333}
    assert f["orders_placed"] == 3
    assert f["tick_to_order_p99_us"] == 4000
    assert f["headroom_per_second"] == 3
    assert f["health"] == "degraded"
    assert f["claim_p99_us"] is None  # no row had one


def test_worst_verdict_orders_down_over_degraded_over_ok() -> None:
    assert worst_verdict(["ok", "ok"]) == "ok"
    assert worst_verdict(["ok", "disabled"]) == "disabled"
    assert worst_verdict(["ok", "down", "degraded"]) == "down"
    assert worst_verdict([]) == "ok"


def test_fold_older_folds_only_whole_minutes_before_the_cut() -> None:
    # 10-s rows over 03:45:00 .. 03:47:50; cut at 03:47:05: two whole minutes fold.
    rows = [row(s, orders_placed=1, health="ok") for s in range(0, 180, 10)]
    cut = T0 + timedelta(minutes=2, seconds=5)
    folded, replaced = fold_older(rows, cut, 60)
    assert [r.at for r in folded] == [T0, T0 + timedelta(minutes=1)]
    assert [r.figures["orders_placed"] for r in folded] == [6, 6]
    assert len(replaced) == 12
    assert all(r.at < T0 + timedelta(minutes=2) for r in replaced)
    # Again over the result and what was left: nothing new to fold, coarser rows untouched.
    left = [r for r in rows if r not in replaced]
    again, again_replaced = fold_older([*folded, *left], cut, 60)
    assert (again, again_replaced) == ([], [])


def test_fold_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing"):
        fold([], T0, 60)
