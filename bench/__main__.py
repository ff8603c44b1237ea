"""`python -m bench [--quick] [--out FILE]`: run every bench/bench_*.py, write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.report import machine, table

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=HERE.parent / "BENCHMARKS.md")
    parser.add_argument("only", nargs="*", help="run only these modules (e.g. bench_book)")
    args = parser.parse_args()

    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only]
    sections = []
    for name in names:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench.{name}")
        sections.append(module.run(quick=args.quick))
        print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    missed = missed_targets(sections)
    command = "make bench" if not args.quick else "python -m bench --quick"
    header = [
        "# hmt benchmarks",
        "",
        f"Written by `{command}`; every figure below comes from this one run. Speed is shown",
        "here, never asserted by tests. Ratios compare things measured side by side.",
        "",
        table(["machine", ""], machine()),
        "",
        "## Missed targets",
        "",
        "Every table row below whose verdict cell says `no`, collected from this run"
        + (":" if missed else ": none."),
        "",
        *missed,
        "",
    ]
    args.out.write_text("\n".join(header) + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def missed_targets(sections: list[str]) -> list[str]:
    """Each row (with its section's title and column names) whose verdict cell is a `no`."""
    missed = []
    for section in sections:
        title, header = "?", []
        for line in section.splitlines():
            if line.startswith("## "):
                title = line[3:].strip()
            if not line.startswith("|"):
                header = []
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not header:
                header = cells
            elif any(c == "no" or c.startswith("no:") or ": no:" in c for c in cells):
                named = [f"{h}: {c}" for h, c in zip(header, cells, strict=False) if c]
                missed.append(f"- {title} — " + "; ".join(named))
    return missed


if __name__ == "__main__":
    raise SystemExit(main())
