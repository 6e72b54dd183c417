"""Run every benchmark in bench/, one after the other (what `make bench` does).

    python bench/run_all.py                  # all of them
    python bench/run_all.py http_overhead    # only these

A benchmark is a module in bench/ that defines ``main(argv: list[str] | None = None) -> int``;
it is called with no arguments, so its defaults are what `make bench` measures, except for the
few in ``ARGS`` (a shorter run than their own default).
The harness modules (lib, load, baseline_app, this one) and names starting
with "_" are not benchmarks. http_overhead runs first; the rest by name.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCH_DIR = Path(__file__).resolve().parent
NOT_BENCHMARKS = frozenset({"__init__", "lib", "load", "baseline_app", "run_all"})
FIRST = ("http_overhead",)
# Benchmarks whose own defaults are a long run (100,000 disbursement items): what `make bench` passes.
ARGS: dict[str, list[str]] = {"disbursement_batch": ["--items", "2000"]}


def discover() -> list[str]:
    names = [
        path.stem
        for path in BENCH_DIR.glob("*.py")
        if path.stem not in NOT_BENCHMARKS and not path.stem.startswith("_")
    ]
    return sorted(names, key=lambda n: (FIRST.index(n) if n in FIRST else len(FIRST), n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args(argv)

    available = discover()
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available)})")
    failed: list[str] = []
    ran = 0
    for name in args.names or available:
        module = importlib.import_module(f"bench.{name}")
        entry = getattr(module, "main", None)
        if not callable(entry):
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        try:
            code = entry(ARGS.get(name, []))
        except Exception:
            traceback.print_exc()
            code = 1
        ran += 1
        print(f"=== {name}: {'ok' if not code else f'FAILED ({code})'} in {time.monotonic() - started:.0f} s")
        if code:
            failed.append(name)
    print(f"\n{ran} benchmark(s) run" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
