"""malipo's per-request overhead: GET /healthz on `malipo serve` against a bare FastAPI app.

    python bench/http_overhead.py [--connections 32] [--duration 10] [--warmup 2] [--rounds 1]

Both servers run the same uvicorn (uvloop + httptools), one process each, and
are loaded in turn by the same load generator in another process. /healthz
does no I/O in either, so the ratio malipo/baseline is what malipo adds to
every request: the request-context middleware (request id, structlog context,
Prometheus counter and histogram, body limit), its routers and the response
model. malipo runs on a fresh SQLite database with its in-process worker, as
`malipo serve` does by default.

With --rounds N the two alternate N times and the summary uses the medians, which
steadies the ratio on a machine that is busy with other work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import lib

NAME = "http_overhead"
# Another process using more than this many cores during a run makes its numbers suspect.
BUSY_MACHINE_CORES = 0.3


def _baseline_argv(port: int, app: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def _measure(argv: list[str], env: dict[str, str], port: int, args: argparse.Namespace) -> lib.LoadResult:
    with lib.serving(argv, env, port) as proc:
        return lib.run_load(
            f"http://127.0.0.1:{port}/healthz",
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            client=args.client,
            server_pid=proc.pid,
        )


def measure_baseline(args: argparse.Namespace, app: str = "bench.baseline_app:app") -> lib.LoadResult:
    port = lib.free_port()
    return _measure(_baseline_argv(port, app), {}, port, args)


def measure_malipo(args: argparse.Namespace) -> lib.LoadResult:
    with tempfile.TemporaryDirectory(prefix="malipo-bench-") as var_dir:
        env = {"MALIPO_VAR_DIR": var_dir, "MALIPO_LOG_LEVEL": "WARNING"}
        lib.run_command([sys.executable, "-m", "malipo.cli", "db", "upgrade"], env)
        port = lib.free_port()
        argv = [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)]
        return _measure(argv, env, port, args)


def _median(results: list[lib.LoadResult], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before that")
    parser.add_argument("--rounds", type=int, default=1, help="alternate baseline and malipo N times")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator")
    parser.add_argument(
        "--starlette", action="store_true", help="also measure a bare Starlette app (what FastAPI costs)"
    )
    args = parser.parse_args(argv)

    targets = {"baseline": lambda: measure_baseline(args), "malipo": lambda: measure_malipo(args)}
    if args.starlette:
        targets["starlette"] = lambda: measure_baseline(args, "bench.baseline_app:starlette_app")
    runs: dict[str, list[lib.LoadResult]] = {name: [] for name in targets}
    rows = []
    for round_no in range(1, args.rounds + 1):
        for name, measure in targets.items():
            result = measure()
            runs[name].append(result)
            label = name if args.rounds == 1 else f"{name} #{round_no}"
            rows.append(result.as_row(label))
            print(f"  {label}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms", flush=True)

    title = (
        f"GET /healthz, {args.connections} connections, {args.duration:g} s after {args.warmup:g} s warmup,"
        f" {args.client} load generator in its own process"
    )
    lib.print_table(rows, title=title)

    summary = {
        name: {
            "rps": _median(results, "rps"),
            "p50_ms": _median(results, "p50_ms"),
            "p90_ms": _median(results, "p90_ms"),
            "p99_ms": _median(results, "p99_ms"),
            "server_us_per_request": statistics.median(r.server_us_per_request or 0.0 for r in results),
        }
        for name, results in runs.items()
    }
    base, mal = summary["baseline"], summary["malipo"]
    ratio = {
        "rps": mal["rps"] / base["rps"],
        "p50": mal["p50_ms"] / base["p50_ms"],
        "p99": mal["p99_ms"] / base["p99_ms"],
        # CPU the server spends per request (from /proc), less sensitive to other load than req/s.
        "server_cpu_per_request": mal["server_us_per_request"] / base["server_us_per_request"]
        if base["server_us_per_request"]
        else None,
        "server_us_per_request_added": mal["server_us_per_request"] - base["server_us_per_request"],
    }
    which = "medians of the rounds" if args.rounds > 1 else "this run"
    print()
    print(
        f"malipo/baseline ({which}): req/s x{ratio['rps']:.2f}, p50 x{ratio['p50']:.2f},"
        f" p99 x{ratio['p99']:.2f}; server CPU per request"
        f" {base['server_us_per_request']:.0f} -> {mal['server_us_per_request']:.0f} us"
        f" (+{ratio['server_us_per_request_added']:.0f} us)"
    )

    all_results = [r for results in runs.values() for r in results]
    errors = sum(r.error_count for r in all_results)
    if errors:
        print(f"WARNING: {errors} errors; the figures above are not comparable", file=sys.stderr)
    if any(r.other_cpu is not None and r.other_cpu > BUSY_MACHINE_CORES for r in all_results):
        print(
            "WARNING: other work used the CPU during the run (see 'other cpu'); expect noise,"
            " prefer --rounds 3 and the ratio over absolute figures",
            file=sys.stderr,
        )
    if any(r.client_cpu is not None and r.client_cpu > 0.9 for r in all_results):
        print("WARNING: the load generator used a whole core: the server may be understated", file=sys.stderr)

    path = lib.write_json(
        NAME,
        {
            "settings": vars(args),
            "runs": {name: [r.to_dict() for r in results] for name, results in runs.items()},
            "summary": summary,
            "ratio_malipo_over_baseline": ratio,
        },
    )
    print(f"results written to {path.relative_to(lib.ROOT)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
