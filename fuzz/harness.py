"""What every harness shares: instrumenting imports when atheris is there, and main().

The harnesses' `check` functions are plain Python, so the Hypothesis tests in
tests/ import and run them without atheris; only `main` needs it.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import atheris
except ImportError:  # atheris is optional: Linux x86-64 wheels only
    atheris = None


def instrumented(fuzzing: bool) -> contextlib.AbstractContextManager[Any]:
    """Imports inside this block get coverage instrumentation when `fuzzing` (run as a script).

    Imported by a test instead, a harness leaves the modules as they are: the
    test process must not run instrumented code.
    """
    if fuzzing and atheris is not None:
        return atheris.instrument_imports()
    return contextlib.nullcontext()


def write_seeds(directory: Path, seeds: list[bytes]) -> None:
    """Put each seed input in its own file, as libFuzzer reads a corpus directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, seed in enumerate(seeds):
        (directory / f"seed-{number}").write_bytes(seed)


def main(check: Callable[[bytes], None], seeds: list[bytes]) -> None:
    """Fuzz `check` with libFuzzer's command line (e.g. -runs=20000 [CORPUS_DIR]).

    Without a corpus directory, a temporary one is filled with `seeds`.
    """
    if atheris is None:
        sys.exit("atheris is not installed: pip install 'atheris>=3,<4' (Linux x86-64)")
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        corpus = Path(tempfile.mkdtemp(prefix="hmt-fuzz-"))
        write_seeds(corpus, seeds)
        argv.append(str(corpus))
    atheris.Setup(argv, check)
    atheris.Fuzz()
