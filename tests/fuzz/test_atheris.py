"""Issue 8 fuzzing: each coverage-guided harness under fuzz/ runs bounded, and finds nothing.

Each harness runs in its own process (libFuzzer exits the process on a crash)
for a fixed number of inputs from its seed corpus. The test prints, per
harness, the inputs run, the coverage reached, the corpus grown and the
crashes found; a crash fails the test and leaves libFuzzer's reproducer
(crash-<sha1>) in the printed directory, replayable with
`python -m fuzz.<harness> <that file>`.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fuzz.harness import write_seeds

from tests.support.services import ROOT, unavailable

HARNESSES = ["ticker_frames", "ticker_text", "replay_csv", "upstox_feed"]
RUNS = 50_000  # a few seconds each on 2 cores; libFuzzer's -seed makes a run replayable
SEED = 20_261_124


@pytest.mark.parametrize("harness", HARNESSES)
def test_harness_runs_bounded_without_a_crash(harness: str, tmp_path: Path) -> None:
    """The harness runs RUNS inputs and every one of them keeps its invariants."""
    if importlib.util.find_spec("atheris") is None:
        unavailable("atheris is not installed (a dev dependency on Linux x86-64)")
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    write_seeds(corpus, importlib.import_module(f"fuzz.{harness}").seeds())
    artifacts.mkdir()
    command = [
        sys.executable, "-m", f"fuzz.{harness}", f"-runs={RUNS}", f"-seed={SEED}",
        "-max_total_time=60", f"-artifact_prefix={artifacts}/", "-print_final_stats=1",
        str(corpus),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=100)
    log = done.stdout + done.stderr
    crashes = sorted(p.name for p in artifacts.iterdir())
    runs = re.search(r"Done (\d+) runs in (\d+) second", log)
    coverage = re.search(r"DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)", log)
    print(
        f"\nfuzz {harness}: runs={runs[1] if runs else '?'} seconds={runs[2] if runs else '?'} "
        f"cov={coverage[1] if coverage else '?'} features={coverage[2] if coverage else '?'} "
        f"corpus={coverage[3] if coverage else '?'} seed={SEED} crashes={len(crashes)}"
        + (f" in {artifacts}: {crashes}" if crashes else "")
    )
    assert done.returncode == 0, log[-4000:]
    assert not crashes
    assert runs is not None, log[-2000:]
    assert int(runs[1]) == RUNS
