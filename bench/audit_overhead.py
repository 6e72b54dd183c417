"""What the audit log costs a cheap authenticated request.

Serves malipo twice on the same freshly migrated and seeded database, once with
the audit log on (the default) and once with ``MALIPO_AUDIT_ENABLED=false``,
alternating the two for ``--rounds`` rounds, and loads
``GET /api/v1/sandbox/api-keys`` (Bearer key: authentication, permission check,
one query) from a second process. Reports req/s and p50/p99 of each and the
cost of the audit log as a share of throughput. Target: under 15 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import lib

PATH = "/api/v1/sandbox/api-keys"


def _measure(env: dict[str, str], key: str, args: argparse.Namespace, audit: bool) -> lib.LoadResult:
    port = lib.free_port()
    argv = [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)]
    with lib.serving(argv, {**env, "MALIPO_AUDIT_ENABLED": str(audit).lower()}, port) as proc:
        return lib.run_load(
            f"http://127.0.0.1:{port}{PATH}",
            headers={"Authorization": f"Bearer {key}"},
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            server_pid=proc.pid,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternate audit on/off this many times")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="malipo-bench-audit-") as var_dir:
        env = {"MALIPO_VAR_DIR": var_dir, "MALIPO_LOG_LEVEL": "WARNING"}
        if args.database_url:
            env["MALIPO_DATABASE_URL"] = args.database_url
        lib.run_command([sys.executable, "-m", "malipo.cli", "db", "upgrade"], env)
        demo = json.loads(lib.run_command([sys.executable, "-m", "malipo.cli", "seed-demo", "--json"], env))
        key = demo["sandbox_api_key"]

        runs: dict[str, list[lib.LoadResult]] = {"audit off": [], "audit on": []}
        rows = []
        for round_no in range(1, args.rounds + 1):
            for label, audit in (("audit off", False), ("audit on", True)):
                result = _measure(env, key, args, audit)
                if result.errors:
                    raise SystemExit(f"{label}: {result.errors} failed requests: {result.statuses}")
                runs[label].append(result)
                rows.append(result.as_row(f"{label} #{round_no}"))
                line = f"  {label} #{round_no}: {result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms"
                print(line, flush=True)

    title = f"GET {PATH} (Bearer key), {args.connections} connections, {args.duration:g} s"
    lib.print_table(rows, title=title)
    summary = {
        label: {
            "rps": statistics.median(r.rps for r in results),
            "p50_ms": statistics.median(r.p50_ms for r in results),
            "p99_ms": statistics.median(r.p99_ms for r in results),
        }
        for label, results in runs.items()
    }
    off, on = summary["audit off"], summary["audit on"]
    cost = 1 - on["rps"] / off["rps"]
    summary["audit cost (share of req/s)"] = {"rps": cost}
    print(
        f"\naudit log cost: {cost:.1%} of throughput (median {on['rps']:,.0f} vs {off['rps']:,.0f} req/s); "
        f"p99 {on['p99_ms']:.2f} vs {off['p99_ms']:.2f} ms. Target: under 15 %."
    )
    lib.write_json("audit_overhead", {"args": vars(args), "summary": summary, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
