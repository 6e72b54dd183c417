"""Bulk SMS through the Africa's Talking simulator: one request of 10,000 recipients, end to end.

    python bench/messaging_bulk.py [--recipients 10000] [--rate 0] [--chunk 100]
                                   [--postgres [postgresql://postgres@127.0.0.1:5432/postgres]]
                                   [--py-spy PATH]

Migrates a scratch database (SQLite under a temporary directory by default), seeds the demo
merchant (its sandbox service wallet holds KES 10,000: enough for 12,500 one-segment SMS), and
runs ``malipo serve`` (one process, its in-process worker, the simulators mounted in it). Then one
``POST /api/v1/sms/bulk`` with ``--recipients`` distinct numbers, and
``GET /api/v1/sms/batches/{id}`` polled until every message is final.

Reported: how long the bulk request took to answer (every row and job written, the wallet
charged), when every message had been handed to the simulator (``sent``), and when every
delivery report had come back (``delivered``), as recipients per second from the request's start;
the slowest and fastest 2-second windows of sends and of final reports (how steady);
the server's CPU in all and per recipient (the steadiest figure on a shared machine), on
PostgreSQL also the CPU of the backends serving the scratch database (``db us per recipient``,
read from /proc: the server must run on this machine), and the CPU that other processes used
meanwhile (``other cpu``, in cores). A poll that fails is counted
(``poll errors``) and the run goes on, but it fails the run: the batch view must stay readable
during a bulk. ``--rate`` is MALIPO_SMS_BULK_RATE (0: unpaced, what the gateway can do; the default
configuration paces bulk sends at 500 recipients/s). At the end the ledger must verify and the
charge must equal 0.80 per recipient. ``--py-spy PATH`` samples the server from the request to the
last report into ``bench/results/messaging_bulk_<backend>.collapsed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench import lib
from bench.load import machine_busy_seconds

NAME = "messaging_bulk"
_WINDOW_S = 2.0


def _call(method: str, url: str, key: str, body: Any = None, timeout: float = 300.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


async def _pg(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _pg_backends(server_url: str, database: str) -> list[int]:
    conn = await asyncpg.connect(server_url)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    return [int(row["pid"]) for row in rows]


def _backend_cpu(server_url: str | None, database: str | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database`` (same machine only)."""
    if not server_url or not database:
        return {}
    found = {pid: lib.process_cpu_seconds(pid) for pid in asyncio.run(_pg_backends(server_url, database))}
    return {pid: cpu for pid, cpu in found.items() if cpu is not None}


def _window_rates(timeline: list[tuple[float, int]], total: int) -> tuple[int | None, int | None]:
    """(slowest, fastest) rate of ``timeline`` (seconds, count) over whole windows of _WINDOW_S
    between its first count above 0 and the last count below ``total``."""
    moving = [(t, n) for t, n in timeline if 0 < n < total]
    if len(moving) < 2:
        return None, None
    rates = []
    start_t, start_n = moving[0]
    for t, n in moving[1:]:
        if t - start_t >= _WINDOW_S:
            rates.append((n - start_n) / (t - start_t))
            start_t, start_n = t, n
    if not rates:
        return None, None
    return round(min(rates)), round(max(rates))


def _start_py_spy(py_spy: str | None, pid: int, backend: str) -> subprocess.Popen[bytes] | None:
    if not py_spy:
        return None
    out = lib.RESULTS_DIR / f"{NAME}_{backend}.collapsed"
    lib.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    print(f"  sampling the server with py-spy into {out.relative_to(lib.ROOT)}", flush=True)
    argv = [py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.0, help="MALIPO_SMS_BULK_RATE (0: unpaced)")
    parser.add_argument("--chunk", type=int, default=100, help="recipients per provider request")
    parser.add_argument(
        "--postgres",
        metavar="SERVER_URL",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/postgres",
        default=None,
        help="run on a scratch database of this PostgreSQL server (default: SQLite in a temporary directory)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--py-spy", metavar="PY_SPY", help="path to py-spy: sample the server")
    args = parser.parse_args(argv)
    backend = "postgresql" if args.postgres else "sqlite"

    with tempfile.TemporaryDirectory(prefix="malipo-bench-sms-") as tmp:
        port = lib.free_port()
        env = {
            "MALIPO_VAR_DIR": tmp,
            "MALIPO_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "MALIPO_SMS_BULK_RATE": str(args.rate),
            "MALIPO_SMS_BULK_CHUNK": str(args.chunk),
            "MALIPO_LOG_LEVEL": "WARNING",
            "MALIPO_AUDIT_ENABLED": "true",
        }
        scratch = None
        if args.postgres:
            scratch = f"malipo_bench_sms_{uuid.uuid4().hex[:8]}"
            asyncio.run(_pg(args.postgres, f'CREATE DATABASE "{scratch}"'))
            base_url = args.postgres.rpartition("/")[0].replace("postgresql://", "postgresql+asyncpg://", 1)
            env["MALIPO_DATABASE_URL"] = f"{base_url}/{scratch}"
        python = sys.executable
        lib.run_command([python, "-m", "malipo.cli", "db", "upgrade"], env)
        demo = json.loads(lib.run_command([python, "-m", "malipo.cli", "seed-demo", "--json"], env))
        key = demo["sandbox_api_key"]
        numbers = [f"+2547{10_000_000 + i:08d}" for i in range(args.recipients)]
        base = f"http://127.0.0.1:{port}/api/v1"
        argv_serve = [python, "-m", "malipo.cli", "serve", "--port", str(port)]
        log_path = Path(tmp) / "serve.log"
        proc = lib.start_server(argv_serve, env, port, log_path=log_path)
        spy = None
        poll_errors: dict[str, int] = {}
        sent_line: list[tuple[float, int]] = []
        final_line: list[tuple[float, int]] = []
        try:
            spy = _start_py_spy(args.py_spy, proc.pid, backend)
            cpu_before = lib.process_cpu_seconds(proc.pid) or 0.0
            db_before = _backend_cpu(args.postgres, scratch)
            busy_before = machine_busy_seconds() or 0.0
            started = time.perf_counter()
            status, reply = _call(
                "POST", f"{base}/sms/bulk", key, {"phoneNumbers": numbers, "message": "Sale!"}
            )
            accepted_s = time.perf_counter() - started
            assert status == 201, reply
            accepted = reply["accepted"]
            batch = reply["batchId"]
            sent_s = delivered_s = None
            counts: dict[str, int] = {}
            deadline = started + args.timeout
            while time.perf_counter() < deadline:
                try:
                    _status, view = _call("GET", f"{base}/sms/batches/{batch}?pageSize=1", key)
                except (urllib.error.URLError, TimeoutError) as exc:
                    http_error = isinstance(exc, urllib.error.HTTPError)
                    name = f"HTTP {exc.code}" if http_error else type(exc).__name__  # type: ignore[attr-defined]
                    poll_errors[name] = poll_errors.get(name, 0) + 1
                    time.sleep(0.2)
                    continue
                counts = view["counts"]
                now = time.perf_counter() - started
                sent_line.append((now, accepted - counts["queued"]))
                final_line.append((now, counts["delivered"] + counts["failed"]))
                if sent_s is None and counts["queued"] == 0:
                    sent_s = now
                if counts["delivered"] + counts["failed"] == accepted:
                    delivered_s = now
                    break
                time.sleep(0.2)
            cpu_s = (lib.process_cpu_seconds(proc.pid) or 0.0) - cpu_before
            wall_s = time.perf_counter() - started
            busy_s = (machine_busy_seconds() or 0.0) - busy_before
            db_after = _backend_cpu(args.postgres, scratch)
            db_cpu_s = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items())
        except Exception:
            print(log_path.read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                spy.wait(60)
            lib.stop_server(proc)
        verify = lib.run_command([python, "-m", "malipo.cli", "ledger", "verify"], env)
        if scratch:
            asyncio.run(_pg(args.postgres, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))

    slow_sent, fast_sent = _window_rates(sent_line, accepted)
    slow_final, fast_final = _window_rates(final_line, accepted)
    row = {
        "recipients": accepted,
        "request_s": round(accepted_s, 2),
        "all_sent_s": round(sent_s, 2) if sent_s else None,
        "sent_per_s": round(accepted / sent_s) if sent_s else None,
        "all_delivered_s": round(delivered_s, 2) if delivered_s else None,
        "delivered_per_s": round(accepted / delivered_s) if delivered_s else None,
        "sent_per_s_2s_windows": f"{slow_sent}-{fast_sent}",
        "final_per_s_2s_windows": f"{slow_final}-{fast_final}",
        "server_cpu": round(cpu_s / wall_s, 2),
        "server_us_per_recipient": round(cpu_s / accepted * 1e6),
        "db_us_per_recipient": round(db_cpu_s / accepted * 1e6) if args.postgres else None,
        "other_cpu": round(max(busy_s - cpu_s - db_cpu_s, 0.0) / wall_s, 2),
        "cost": reply["cost"],
        "failed": counts.get("failed"),
        "poll_errors": ", ".join(f"{k}={v}" for k, v in poll_errors.items()) or "0",
    }
    lib.print_table([row], title=f"bulk SMS through the simulator ({backend}, rate {args.rate or 'unpaced'})")
    print(verify.strip())
    lib.write_json(
        f"{NAME}_{backend}",
        {"settings": vars(args), "result": row, "sent": sent_line, "final": final_line},
    )
    ok = (
        delivered_s is not None
        and counts.get("failed") == 0
        and not poll_errors
        and reply["cost"] == f"{0.8 * accepted:.2f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
