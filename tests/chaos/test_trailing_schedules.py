"""Trailing stops under chaos (issue 14): a few seeded schedules in `make test`.

Every schedule of the campaign now holds trailing SELL stops (`create_trail`, from a random
stream of their own, so a seed's other steps are unchanged): one right after the opening
creates and up to two more, some beside a fixed target, some with an activation or a step,
patched, paused, cancelled and hit by the same faults as the rest (ticker drops and stalls,
REST faults, the engine SIGKILLed, the database killed or rolled back). Here a few fixed
seeds are played end to end and judged like every schedule: 0 duplicated, 0 lost,
0 oco-double; each must have created and fired trailing triggers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.chaos_campaign import Campaign, run_chunk
from tests.support.chaos_schedule import ROLLBACK_SHARE, generate
from tests.support.chaos_trails import BASE, TICK
from tests.support.pg_cluster import PgCluster

# Between them: rollbacks (1, 8 and 0), an engine SIGKILL (1), the database killed (4, 8),
# ticker drops (0), patches of trailing stops (4, 2) and trailing ocos (8, 0, 2).
CHUNKS = [("postgresql", [1, 4, 8]), ("sqlite", [0, 2])]


def test_every_schedule_has_trailing_stops_right_after_its_opening() -> None:
    for seed in range(200):
        steps = generate(seed, "postgresql").steps
        kinds = [step.kind for step in steps]
        assert kinds[kinds.index("create_watch") + 1] == "create_trail"
        made = [step.args for step in steps if step.kind == "create_trail"]
        assert 1 <= len(made) <= 3
        for args in made:
            assert args["kind"] in ("price", "bps", "ticks")
            if "activation" in args:
                assert abs(args["activation"] - BASE) <= 50 * TICK
            if "target" in args:
                assert args["target"] > BASE


def test_the_trailing_steps_leave_the_rest_of_a_schedule_unchanged() -> None:
    """The same seed without its `create_trail` steps is the schedule it was before them
    (the trailing steps draw from their own stream)."""
    from tests.support import chaos_schedule

    for seed in range(50):
        with_trails = [s for s in generate(seed, "sqlite").steps if s.kind != "create_trail"]
        real = chaos_schedule.with_trails
        try:
            chaos_schedule.with_trails = lambda *_: None  # type: ignore[assignment]
            without = list(generate(seed, "sqlite").steps)
        finally:
            chaos_schedule.with_trails = real
        assert with_trails == without


@pytest.fixture(scope="module")
def campaign() -> Iterator[Campaign]:
    result = Campaign("Trailing stops under chaos (issue 14)", 0)
    yield result
    print("\n" + result.report())


@pytest.mark.parametrize(("backend", "seeds"), CHUNKS, ids=[b for b, _ in CHUNKS])
async def test_trailing_schedules_place_every_due_trigger_exactly_once(
    backend: str,
    seeds: list[int],
    campaign: Campaign,
    database_url: str,
    cluster: PgCluster | None,
    tmp_path: Path,
) -> None:
    await run_chunk(
        campaign,
        backend,
        seeds,
        database_url,
        cluster,
        tmp_path,
        rollback_share=ROLLBACK_SHARE,
        replay="pytest tests/chaos/test_trailing_schedules.py",
    )
    mine = campaign.outcomes[-len(seeds) :]
    assert all(outcome.trailing >= 1 for outcome in mine), [o.trailing for o in mine]
    assert sum(outcome.created["create_trail"] for outcome in mine) >= len(seeds)
