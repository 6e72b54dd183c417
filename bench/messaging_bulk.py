"""Bulk SMS through the Africa's Talking simulator: one request of 10,000 recipients, end to end.

    python bench/messaging_bulk.py [--recipients 10000] [--rate 0] [--chunk 100]
                                   [--postgres [postgresql://postgres@127.0.0.1:5432/postgres]]

Migrates a scratch database (SQLite under a temporary directory by default), seeds the demo
merchant (its sandbox service wallet holds KES 10,000: enough for 12,500 one-segment SMS), and
runs ``malipo serve`` (one process, its in-process worker, the simulators mounted in it). Then one
``POST /api/v1/sms/bulk`` with ``--recipients`` distinct numbers, and
``GET /api/v1/sms/batches/{id}`` polled until every message is final.

Reported: how long the bulk request took to answer (every row and job written, the wallet
charged), when every message had been handed to the simulator (``sent``), and when every
delivery report had come back (``delivered``), as recipients per second from the request's start.
``--rate`` is MALIPO_SMS_BULK_RATE (0: unpaced, what the gateway can do; the default
configuration paces bulk sends at 500 recipients/s). At the end the ledger must verify and the
charge must equal 0.80 per recipient.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench import lib

NAME = "messaging_bulk"


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
    args = parser.parse_args(argv)

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
        try:
            started = time.perf_counter()
            status, reply = _call(
                "POST", f"{base}/sms/bulk", key, {"phoneNumbers": numbers, "message": "Sale!"}
            )
            accepted_s = time.perf_counter() - started
            assert status == 201, reply
            batch = reply["batchId"]
            sent_s = delivered_s = None
            counts: dict[str, int] = {}
            deadline = started + args.timeout
            while time.perf_counter() < deadline:
                _status, view = _call("GET", f"{base}/sms/batches/{batch}?pageSize=1", key)
                counts = view["counts"]
                now = time.perf_counter() - started
                if sent_s is None and counts["queued"] == 0:
                    sent_s = now
                if counts["delivered"] + counts["failed"] == reply["accepted"]:
                    delivered_s = now
                    break
                time.sleep(0.2)
        except Exception:
            print(log_path.read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            lib.stop_server(proc)
        verify = lib.run_command([python, "-m", "malipo.cli", "ledger", "verify"], env)
        if scratch:
            asyncio.run(_pg(args.postgres, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))

    accepted = reply["accepted"]
    row = {
        "recipients": accepted,
        "request_s": round(accepted_s, 2),
        "all_sent_s": round(sent_s, 2) if sent_s else None,
        "sent_per_s": round(accepted / sent_s) if sent_s else None,
        "all_delivered_s": round(delivered_s, 2) if delivered_s else None,
        "delivered_per_s": round(accepted / delivered_s) if delivered_s else None,
        "cost": reply["cost"],
        "failed": counts.get("failed"),
    }
    backend = "postgresql" if args.postgres else "sqlite"
    lib.print_table([row], title=f"bulk SMS through the simulator ({backend}, rate {args.rate or 'unpaced'})")
    print(verify.strip())
    lib.write_json(
        f"{NAME}_{'postgresql' if args.postgres else 'sqlite'}", {"settings": vars(args), "result": row}
    )
    ok = delivered_s is not None and counts.get("failed") == 0 and reply["cost"] == f"{0.8 * accepted:.2f}"
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
