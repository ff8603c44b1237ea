"""Coverage-guided fuzzing of the simulator's CSV replay reader (atheris / libFuzzer).

Run: `python -m fuzz.replay_csv -runs=20000 CORPUS_DIR`. A replay file either
reads into rows that are all sound, or is refused with a `ReplayError` naming a
line of the file and one of its fields; any other exception is a crash.
"""

from __future__ import annotations

import math

from fuzz.harness import instrumented, main

with instrumented(__name__ == "__main__"):
    from hmt.sim.prices import ReplayError, parse_replay
    from hmt.sim.universe import Universe

UNIVERSE = Universe()
U32 = 0xFFFF_FFFF
FIELDS = {"row", "timestamp", "token", "ltp", "volume"}


def check(data: bytes) -> None:
    """Parse `data` as a replay file and check the rows or the error."""
    text = data.decode("utf-8", "replace")
    error: ReplayError | None = None
    rows = []
    try:
        rows = parse_replay(text, UNIVERSE)
    except ReplayError as exc:
        error = exc
    if error is not None:
        assert error.field in FIELDS, error.field
        assert 1 <= error.line <= max(1, len(text.splitlines())), (error.line, text)
        assert f"line {error.line}" in str(error), error
        return
    last = float("-inf")
    for row in rows:
        assert row.token in UNIVERSE, row
        assert isinstance(row.price, int), row
        # The simulator sends prices and volumes as uint32 wire fields.
        assert 0 < row.price <= U32, row
        assert row.volume is None or 0 <= row.volume <= U32, row
        assert math.isfinite(row.at), row
        assert row.at >= last, row
        last = row.at


def seeds() -> list[bytes]:
    """A few sound replay files for libFuzzer to start from."""
    return [
        b"timestamp,token,ltp,volume\n1767000000,408065,1500.5\n"
        b"2026-01-01T09:15:00,256265,25000.05,10\n# note\n"
        b"2026-01-01T09:15:00+05:30,408065,1501,12\n",
        b"0,408065,1500,100\n0.01,408065,1501,150\n0.02,256265,25000\n",
        b'"1","738561","1400.10",""\n',
    ]


if __name__ == "__main__":
    main(check, seeds())
