"""Collections per second: POST /api/v2/payments on PostgreSQL, and request-to-callback time.

    python bench/stk_push.py [--connections 64] [--duration 10] [--rate R] [--no-baseline]
                             [--baseline-senders 8] [--database-url postgresql://…]

Creates a scratch database (dropped at the end), migrates it, seeds the demo merchant and funds
its service wallet (fees are held per collection), then starts three processes: the Daraja
simulator (`malipo sim daraja`, answering and calling back at once), a merchant callback
receiver (records when each callback arrives), and `malipo serve` (one uvicorn process with its
in-process worker) pointed at the simulator. A fourth process loads `POST /api/v2/payments`
with the Pay Hero Basic pair, each request a new `external_reference` and the receiver as
`callback_url`.

Reported: accepted collections/s (201 replies) with p50/p99 of the request itself, and the time
from the request reaching malipo (the collection's `created_at`) to its merchant callback
arriving (p50/p99), for the collections accepted in the measured window, and the CPU that
malipo spent per collection over the whole run (requests, worker, callbacks: from the start of
the load until the last callback). By default the load is closed-loop (each connection sends its
next request when the last is answered: how fast malipo accepts); ``--rate R`` offers R requests
per second instead (open loop, each request timed from when it was due), which shows the
request-to-callback time at a rate the worker can keep up with. After the load it
waits for the callbacks to drain, checks that every accepted collection reached a final state
and was called back exactly once, and runs `malipo ledger verify`.

Before malipo, in the same run and under the same load (connections, duration, warmup, rate,
body factory with its own run id), it measures the bare baseline, `bench/stk_baseline.py`: a
Starlette app doing only the HTTP exchanges malipo does per collection (answer the request at
once, OAuth once, the STK push to the simulator, Daraja's callback, the merchant's callback, all
through one httpx client and fixed pools of sender tasks; no database, no business logic), with
its own fresh simulator and receiver processes. Its request time is when the request reached it
(an arrivals file), its CPU per collection the baseline process's and the simulator's; it is
checked that every accepted request got exactly one callback, that no push or callback failed and
that the simulator gave up no callback (its log). As the closed loop makes a backlog, the wait for
its callbacks ends only after ``--drain`` seconds without one. Both rows are printed, with
end-to-end/s (callbacks per second from the first request to the last callback) for each, and the
ratios malipo/baseline (accepted/s, request-to-callback p50 and p99, end-to-end/s, CPU per
collection); the baseline's figures and the ratios are written under the "baseline" key of the
results. ``--no-baseline`` skips it; ``--baseline-senders N`` sizes its sender pools (default 8).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench import lib
from bench.stk_baseline import ARRIVALS_ENV, PUBLIC_URL_ENV, SENDERS_ENV, SIMULATOR_URL_ENV
from bench.wallet_transfer import DEFAULT_SERVER, _create_database, _drop_database

NAME = "stk_push"
RUN_ENV = "BENCH_STK_RUN"
CALLBACKS_ENV = "BENCH_STK_CALLBACKS"


# -------------------------------------------------------------- the load process's side


def payment_request(index: int) -> lib.Request:
    """One STK push request (imported and called by bench.load)."""
    run = os.environ[RUN_ENV]
    return lib.Request(
        body={
            "amount": 100,
            "phone_number": "0708374149",
            "provider": "m-pesa",
            "network_code": "63902",
            "external_reference": f"{run}-{index}",
            "callback_url": os.environ["BENCH_STK_CALLBACK_URL"],
        }
    )


# -------------------------------------------------------------- the callback receiver


def receiver_app() -> Any:
    """A Starlette app appending ``<external_reference> <unix time>`` per callback to a file."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    out = Path(os.environ[CALLBACKS_ENV]).open("a", buffering=1)  # noqa: SIM115 - lives with the app

    async def callback(request: Request) -> PlainTextResponse:
        body = await request.json()
        out.write(f"{body['response']['ExternalReference']} {time.time():.6f}\n")
        return PlainTextResponse("ok")

    async def healthz(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/cb", callback, methods=["POST"]), Route("/healthz", healthz)])


# -------------------------------------------------------------- setup and checks


async def _fund_service_wallet(dsn: str, merchant_id: str, amount_minor: int) -> None:
    """A balanced journal from the live suspense account into the merchant's live service wallet."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            wallet = await conn.fetchval(
                "SELECT id FROM ledger_accounts WHERE owner_key = $1 AND kind = 'service_wallet'"
                " AND mode = 'live' AND currency = 'KES'",
                f"client:{merchant_id}",
            )
            suspense = await conn.fetchval(
                "SELECT id FROM ledger_accounts WHERE owner_key = 'system' AND kind = 'suspense'"
                " AND mode = 'live' AND currency = 'KES'"
            )
            journal = uuid.uuid4()
            await conn.execute(
                "INSERT INTO ledger_journals (id, client_id, mode, reference, kind, description, details,"
                " created_at) VALUES ($1, $2, 'live', $3, 'bench_funding', 'bench funding', '{}', $4)",
                journal, uuid.UUID(merchant_id), uuid.uuid4().hex[:10].upper(), now,
            )  # fmt: skip
            after = {}
            for account, delta in ((suspense, -amount_minor), (wallet, amount_minor)):
                after[account] = await conn.fetchval(
                    "UPDATE ledger_accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance",
                    account, delta,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO ledger_postings (id, journal_id, account_id, amount, currency,"
                    " balance_after, created_at) VALUES ($1, $2, $3, $4, 'KES', $5, $6)",
                    uuid.uuid4(), journal, account, delta, after[account], now,
                )  # fmt: skip
    finally:
        await conn.close()


async def _collections(dsn: str, run: str) -> dict[str, tuple[float, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT external_reference, created_at, status FROM collections WHERE external_reference LIKE $1",
            f"{run}-%",
        )
    finally:
        await conn.close()
    return {r["external_reference"]: (r["created_at"].timestamp(), r["status"]) for r in rows}


def _load(args: argparse.Namespace, port: int, headers: dict[str, str], server_pid: int) -> lib.LoadResult:
    """The same load for the baseline and for malipo: ``POST /api/v2/payments`` on ``port``."""
    return lib.run_load(
        f"http://127.0.0.1:{port}/api/v2/payments",
        method="POST",
        headers=headers,
        body_factory=payment_request,
        connections=args.connections,
        duration=args.duration,
        warmup=args.warmup,
        server_pid=server_pid,
        rate=args.rate,
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _first_times(path: Path) -> tuple[dict[str, float], int]:
    """``<reference> <unix time>`` lines as {reference: first time}, and how many lines repeated one."""
    lines = path.read_text().splitlines() if path.exists() else []
    first: dict[str, float] = {}
    repeats = 0
    for line in lines:
        ref, at = line.split()
        repeats += ref in first
        first.setdefault(ref, float(at))
    return first, repeats


def _ms(value: float) -> float:
    return value * 1000


def _baseline(
    args: argparse.Namespace, var_dir: Path, sim_env: dict[str, str], headers: dict[str, str]
) -> dict[str, Any]:
    """Measure `bench/stk_baseline.py` under the same load, with its own simulator and receiver."""
    sim_port, receiver_port, port = lib.free_port(), lib.free_port(), lib.free_port()
    arrivals_file = var_dir / "baseline-arrivals.txt"
    callbacks_file = var_dir / "baseline-callbacks.txt"
    run = f"b{uuid.uuid4().hex[:8]}"
    os.environ[RUN_ENV] = run
    os.environ["BENCH_STK_CALLBACK_URL"] = f"http://127.0.0.1:{receiver_port}/cb"
    baseline_env = {
        SIMULATOR_URL_ENV: f"http://127.0.0.1:{sim_port}",
        PUBLIC_URL_ENV: f"http://127.0.0.1:{port}",
        ARRIVALS_ENV: str(arrivals_file),
        SENDERS_ENV: str(args.baseline_senders),
    }
    sim_argv = [sys.executable, "-m", "malipo.cli", "sim", "daraja", "--port", str(sim_port),
                "--callback-delay", "0"]  # fmt: skip
    receiver_argv = [sys.executable, "-m", "uvicorn", "--factory", "bench.stk_push:receiver_app",
                     "--port", str(receiver_port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    baseline_argv = [sys.executable, "-m", "uvicorn", "--factory", "bench.stk_baseline:baseline_app",
                     "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    sim_log = var_dir / "baseline-simulator.log"
    with (
        _serving_logged(sim_argv, sim_env, sim_port, sim_log) as sim_proc,
        lib.serving(receiver_argv, {CALLBACKS_ENV: str(callbacks_file)}, receiver_port) as receiver_proc,
        lib.serving(baseline_argv, baseline_env, port) as proc,
    ):
        pids = {"baseline": proc.pid, "simulator": sim_proc.pid, "receiver": receiver_proc.pid}
        cpu_before = {name: lib.process_cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
        started = time.time()
        result = _load(args, port, headers, proc.pid)
        load_end = time.time()
        print(f"  baseline accepted {result.rps:,.0f} collections/s, p99 {result.p99_ms:.0f} ms; draining")
        # The closed loop accepts far more than the push path carries: wait as long as the
        # callbacks keep coming, and give up after --drain seconds without one.
        deadline = time.monotonic() + args.drain
        called_back = -1
        while True:
            arrivals, repeated_arrivals = _first_times(arrivals_file)
            arrived, duplicates = _first_times(callbacks_file)
            if len(arrived) >= len(arrivals) >= result.ok_all or time.monotonic() > deadline:
                break
            if len(arrived) > called_back:
                called_back = len(arrived)
                deadline = time.monotonic() + args.drain
            time.sleep(0.2)
        drained = time.time()
        cpu = {name: (lib.process_cpu_seconds(pid) or 0.0) - cpu_before[name] for name, pid in pids.items()}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as reply:
            stats = json.load(reply)
    accepted = result.ok_all
    window = [ref for ref, at in arrivals.items() if started + args.warmup <= at <= load_end]
    latencies = [arrived[ref] - arrivals[ref] for ref in window if ref in arrived]
    missing = [ref for ref in arrivals if ref not in arrived]
    unexpected = [ref for ref in arrived if ref not in arrivals]
    per = max(accepted, 1)
    return {
        "load": result,
        "accepted_total": accepted,
        "end_to_end_per_s": _end_to_end_rate(arrivals, arrived),
        "arrivals": len(arrivals),
        "repeated_arrivals": repeated_arrivals,
        "callbacks": len(arrived),
        "duplicate_callbacks": duplicates,
        "missing_callbacks": len(missing),
        "unexpected_callbacks": len(unexpected),
        "drain_seconds": drained - load_end,
        "request_to_callback_ms": {
            "p50": _ms(_percentile(latencies, 0.5)),
            "p99": _ms(_percentile(latencies, 0.99)),
            "mean": _ms(statistics.fmean(latencies)) if latencies else None,
            "count": len(latencies),
        },
        "server_cpu_ms_per_collection": _ms(cpu["baseline"]) / per,
        "simulator_cpu_ms_per_collection": _ms(cpu["simulator"]) / per,
        "receiver_cpu_ms_per_collection": _ms(cpu["receiver"]) / per,
        "gateway_stats": stats,
        # The simulator gives a callback up after 3 failed tries (its log says why, e.g. PoolTimeout).
        "simulator_undelivered_callbacks": _undelivered(sim_log),
    }


@contextlib.contextmanager
def _serving_logged(
    argv: list[str], env: dict[str, str], port: int, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`bench.lib.serving` keeping the server's output in ``log_path``."""
    proc = lib.start_server(argv, env, port, log_path=log_path)
    try:
        yield proc
    finally:
        lib.stop_server(proc)


def _undelivered(sim_log: Path) -> dict[str, int]:
    """The simulator's ``daraja_sim.callback.undelivered`` lines, by error."""
    found: dict[str, int] = {}
    for line in sim_log.read_text(errors="replace").splitlines() if sim_log.exists() else []:
        if "daraja_sim.callback.undelivered" in line:
            error = line.partition(" error=")[2].split(" ", 1)[0] or "?"
            found[error] = found.get(error, 0) + 1
    return found


def _end_to_end_rate(requested: dict[str, float], called_back: dict[str, float]) -> float | None:
    """Callbacks per second from the first request to the last callback: what the whole path carried."""
    if not requested or not called_back:
        return None
    return len(called_back) / max(max(called_back.values()) - min(requested.values()), 1e-9)


def _baseline_failed(baseline: dict[str, Any]) -> bool:
    stats = baseline["gateway_stats"]
    return bool(
        baseline["missing_callbacks"]
        or baseline["duplicate_callbacks"]
        or baseline["unexpected_callbacks"]
        or baseline["repeated_arrivals"]
        or baseline["callbacks"] < baseline["accepted_total"]
        or stats["push_failures"]
        or stats["webhook_failures"]
        or stats["unknown_callbacks"]
        or baseline["simulator_undelivered_callbacks"]
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator or denominator != denominator or numerator != numerator:
        return None
    return numerator / denominator


def _comparison_row(label: str, figures: dict[str, Any]) -> dict[str, Any]:
    load: lib.LoadResult = figures["load"]
    r2c = figures["request_to_callback_ms"]
    return {
        "target": label,
        "accepted/s": load.rps,
        "req p50 ms": load.p50_ms,
        "req p99 ms": load.p99_ms,
        "r2c p50 ms": r2c["p50"],
        "r2c p99 ms": r2c["p99"],
        "end-to-end/s": figures.get("end_to_end_per_s"),
        "server cpu ms/coll": figures["server_cpu_ms_per_collection"],
        "sim cpu ms/coll": figures["simulator_cpu_ms_per_collection"],
        "other cpu": load.other_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER))
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, help="offer this many requests/s (open loop)")
    parser.add_argument(
        "--http-connections", type=int, default=8, help="MALIPO_HTTP_CONNECTIONS for malipo's worker"
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="run the outbox worker as this many `malipo worker` processes (0: inside `malipo serve`)",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="seconds to wait for callbacks after the load (for the baseline: without a new callback)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the bare baseline (bench/stk_baseline.py) measured before malipo",
    )
    parser.add_argument(
        "--baseline-senders",
        type=int,
        default=8,
        help="the baseline's sender tasks per pool (STK pushes, merchant callbacks)",
    )
    args = parser.parse_args(argv)

    server = args.database_url.rsplit("/", 1)[0]
    db_name = f"malipo_bench_stk_{os.getpid()}"
    dsn = f"{server}/{db_name}"
    try:
        asyncio.run(_create_database(args.database_url, db_name))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL is needed at {args.database_url}: {exc}", file=sys.stderr)
        return 2
    errors = 0
    results: dict[str, Any] = {"settings": vars(args)}
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="malipo-bench-") as var_dir:
            sim_port, receiver_port, port = lib.free_port(), lib.free_port(), lib.free_port()
            env = {
                "MALIPO_VAR_DIR": var_dir,
                "MALIPO_LOG_LEVEL": "WARNING",
                "MALIPO_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://"),
                "MALIPO_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "MALIPO_DARAJA_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}",
                # Daraja and the receiver answer on loopback in about a millisecond: a few
                # connections carry the load (each open one costs a check per request).
                "MALIPO_HTTP_CONNECTIONS": str(args.http_connections),
            }
            lib.run_command([sys.executable, "-m", "malipo.cli", "db", "upgrade"], env)
            demo = json.loads(
                lib.run_command([sys.executable, "-m", "malipo.cli", "seed-demo", "--json"], env)
            )
            asyncio.run(_fund_service_wallet(dsn, demo["merchant_id"], 10_000_000_00))
            pair = f"{demo['payhero_api_username']}:{demo['payhero_api_password']}"
            auth = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
            baseline: dict[str, Any] | None = None
            if not args.no_baseline:
                baseline = _baseline(args, Path(var_dir), env, auth)
                results["baseline"] = baseline
                if _baseline_failed(baseline):
                    print(
                        "ERROR: the baseline did not call back every accepted request exactly once"
                        f" or its senders failed: {baseline['gateway_stats']}; the simulator gave up"
                        f" callbacks: {baseline['simulator_undelivered_callbacks'] or 'none'}",
                        file=sys.stderr,
                    )
                    errors += 1
            callbacks_file = Path(var_dir) / "callbacks.txt"
            run = uuid.uuid4().hex[:8]
            os.environ[RUN_ENV] = run
            os.environ["BENCH_STK_CALLBACK_URL"] = f"http://127.0.0.1:{receiver_port}/cb"
            receiver_env = {CALLBACKS_ENV: str(callbacks_file)}
            sim_argv = [sys.executable, "-m", "malipo.cli", "sim", "daraja", "--port", str(sim_port),
                        "--callback-delay", "0"]  # fmt: skip
            receiver_argv = [sys.executable, "-m", "uvicorn", "--factory", "bench.stk_push:receiver_app",
                             "--port", str(receiver_port), "--log-level", "warning",
                             "--no-access-log"]  # fmt: skip
            serve_argv = [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)]
            serve_env = env
            if args.worker_processes:
                serve_env = env | {"MALIPO_INPROCESS_WORKER": "false"}
                workers += [
                    subprocess.Popen([sys.executable, "-m", "malipo.cli", "worker"], env=lib.child_env(env))
                    for _ in range(args.worker_processes)
                ]
            with (
                lib.serving(sim_argv, env, sim_port, ready_path="/healthz") as sim_proc,
                lib.serving(receiver_argv, receiver_env, receiver_port),
                lib.serving(serve_argv, serve_env, port) as proc,
            ):
                cpu_before = sum(lib.process_cpu_seconds(p.pid) or 0.0 for p in [proc, *workers])
                workers_before = sum(lib.process_cpu_seconds(p.pid) or 0.0 for p in workers)
                sim_cpu_before = lib.process_cpu_seconds(sim_proc.pid) or 0.0
                started = time.time()
                result = _load(args, port, auth, proc.pid)
                load_end = time.time()
                print(
                    f"  accepted {result.rps:,.0f} collections/s, p99 {result.p99_ms:.0f} ms; draining",
                    flush=True,
                )
                accepted = result.ok_all
                deadline = time.monotonic() + args.drain
                arrived: dict[str, float] = {}
                while time.monotonic() < deadline:
                    lines = callbacks_file.read_text().splitlines() if callbacks_file.exists() else []
                    arrived = {}
                    duplicates = 0
                    for line in lines:
                        ref, at = line.split()
                        duplicates += ref in arrived
                        arrived.setdefault(ref, float(at))
                    # Requests cut off at the end of the load may still have been stored: wait
                    # for every stored collection, not only the answered ones.
                    if len(arrived) >= accepted:
                        stored_now = asyncio.run(_collections(dsn, run))
                        final_now = [s for _c, s in stored_now.values() if s in ("SUCCESS", "FAILED")]
                        if len(final_now) == len(stored_now) and len(arrived) >= len(stored_now):
                            break
                    time.sleep(0.5)
                drained = time.time()
                server_cpu = sum(lib.process_cpu_seconds(p.pid) or 0.0 for p in [proc, *workers]) - cpu_before
                workers_cpu = sum(lib.process_cpu_seconds(p.pid) or 0.0 for p in workers) - workers_before
                sim_cpu = (lib.process_cpu_seconds(sim_proc.pid) or 0.0) - sim_cpu_before
            stored = asyncio.run(_collections(dsn, run))
            window = [
                ref for ref, (created, _s) in stored.items() if started + args.warmup <= created <= load_end
            ]
            latencies = [arrived[ref] - stored[ref][0] for ref in window if ref in arrived]
            final = sum(1 for _c, state in stored.values() if state in ("SUCCESS", "FAILED"))
            verify = lib.run_command([sys.executable, "-m", "malipo.cli", "ledger", "verify"], env).strip()
            results |= {
                "load": result,
                "accepted_total": accepted,
                "collections_stored": len(stored),
                "final": final,
                "callbacks": len(arrived),
                "duplicate_callbacks": duplicates,
                "drain_seconds": drained - load_end,
                "request_to_callback_ms": {
                    "p50": _percentile(latencies, 0.5) * 1000,
                    "p99": _percentile(latencies, 0.99) * 1000,
                    "mean": statistics.fmean(latencies) * 1000 if latencies else None,
                    "count": len(latencies),
                },
                "ledger_verify": verify,
                "server_cpu_ms_per_collection": 1000 * server_cpu / max(accepted, 1),
                "simulator_cpu_ms_per_collection": 1000 * sim_cpu / max(accepted, 1),
                "worker_processes_cpu_ms_per_collection": 1000 * workers_cpu / max(accepted, 1),
            }
            label = f"POST /api/v2/payments c={args.connections}"
            label += f" rate={args.rate:g}/s" if args.rate else ""
            lib.print_table([result.as_row(label)])
            r2c = results["request_to_callback_ms"]
            print(
                f"request → merchant callback over {r2c['count']:,} collections of the window:"
                f" p50 {r2c['p50']:.0f} ms, p99 {r2c['p99']:.0f} ms"
            )
            print(
                f"accepted {accepted:,}; stored {len(stored):,}; final {final:,};"
                f" called back {len(arrived):,} ({duplicates} duplicates),"
                f" drained {drained - load_end:.1f} s after the load; {verify}"
            )
            print(
                f"CPU per collection, whole run: malipo {results['server_cpu_ms_per_collection']:.1f} ms"
                + (f" (worker processes {workers_cpu * 1000 / max(accepted, 1):.1f} ms)" if workers else "")
                + f", simulator {results['simulator_cpu_ms_per_collection']:.1f} ms"
            )
            if final != len(stored) or len(arrived) != len(stored) or duplicates:
                print(
                    "ERROR: not every accepted collection was finished and called back once", file=sys.stderr
                )
                errors += 1
            if baseline is not None:
                created = {ref: at for ref, (at, _state) in stored.items()}
                malipo_row = _comparison_row("malipo", results)
                malipo_row["end-to-end/s"] = _end_to_end_rate(
                    created, {r: arrived[r] for r in created if r in arrived}
                )
                print()
                lib.print_table(
                    [_comparison_row("baseline", baseline), malipo_row],
                    title=f"{label}: the bare baseline and malipo, same run",
                )
                b2c = baseline["request_to_callback_ms"]
                ratios = {
                    "accepted_per_s": _ratio(result.rps, baseline["load"].rps),
                    "request_to_callback_p50": _ratio(r2c["p50"], b2c["p50"]),
                    "request_to_callback_p99": _ratio(r2c["p99"], b2c["p99"]),
                    "cpu_per_collection": _ratio(
                        results["server_cpu_ms_per_collection"], baseline["server_cpu_ms_per_collection"]
                    ),
                    "end_to_end_per_s": _ratio(malipo_row["end-to-end/s"], baseline["end_to_end_per_s"]),
                }
                baseline["malipo_end_to_end_per_s"] = malipo_row["end-to-end/s"]
                baseline["ratios"] = ratios

                def shown(value: float | None) -> str:
                    return "n/a" if value is None else f"x{value:.2f}"

                print(
                    f"malipo/baseline: accepted/s {shown(ratios['accepted_per_s'])},"
                    f" request → callback p50 {shown(ratios['request_to_callback_p50'])},"
                    f" p99 {shown(ratios['request_to_callback_p99'])};"
                    f" end to end/s {shown(ratios['end_to_end_per_s'])};"
                    f" server CPU per collection {shown(ratios['cpu_per_collection'])}"
                )
                print(
                    f"baseline: accepted {baseline['accepted_total']:,}; arrived {baseline['arrivals']:,};"
                    f" called back {baseline['callbacks']:,} ({baseline['duplicate_callbacks']} duplicates,"
                    f" {baseline['missing_callbacks']} missing), drained {baseline['drain_seconds']:.1f} s"
                    f" after the load; CPU per collection: baseline"
                    f" {baseline['server_cpu_ms_per_collection']:.2f} ms, simulator"
                    f" {baseline['simulator_cpu_ms_per_collection']:.2f} ms, receiver"
                    f" {baseline['receiver_cpu_ms_per_collection']:.2f} ms"
                )
    finally:
        for worker in workers:
            lib.stop_server(worker)
        asyncio.run(_drop_database(args.database_url, db_name))
    path = lib.write_json(NAME, results)
    print(f"results written to {path.relative_to(lib.ROOT)}")
    return 1 if errors or result.error_count else 0


if __name__ == "__main__":
    sys.exit(main())
