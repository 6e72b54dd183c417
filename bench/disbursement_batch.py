"""Disbursement batches: submit and pay N items through Daraja, against the bare payout gateway.

    python bench/disbursement_batch.py [--items 100000] [--bank-share 0.1] [--csv] [--no-baseline]
                                       [--worker-processes N] [--database-url postgresql://…]

This process is the driver and the only client (it submits one batch and polls it); every server
runs in its own process. First, unless ``--no-baseline``, the bare gateway
(``bench/payout_baseline.py``, its own fresh Daraja simulator): the N items POSTed to it in one
request, and the time from its reading the batch to the last item's result gives the baseline's
items/s. Then malipo, on a scratch PostgreSQL database (dropped at the end), migrated and seeded
(the demo merchant, authenticated with its Pay Hero Basic pair as in ``stk_push.py``, live mode),
its payments and service wallets funded by a journal from suspense, `malipo serve` (in-process
worker, or ``--worker-processes N`` `malipo worker` processes) pointed at its own Daraja simulator
(`malipo sim daraja --callback-delay 0`):

1. ``POST /api/v1/disbursements/batches`` with the N items as JSON, or with ``--csv``
   ``POST /api/v1/disbursements/batches/csv?batchName=…`` with a ``text/csv`` body: the request
   timed (the issue's target: under 10 s);
2. ``POST /api/v1/disbursements/batches/{batchId}/process`` with an ``Idempotency-Key``;
3. ``GET /api/v1/disbursements/batches/{batchId}`` every ``--poll`` seconds (progress printed)
   until ``counts.pending + counts.processing == 0``, the server's RSS read at each poll (psutil
   if installed, else ``/proc/<pid>/status``): at the start, its maximum and at the end;
4. items/s end to end = items paid / (time from the process call to the poll that saw every item
   final, so up to one poll interval late), and the slowest and fastest 5 s windows of progress;
5. ``GET /api/v1/reports/disbursements/batches/{batchId}/reconciliation`` (``ties`` must be true)
   and, once the servers are stopped, ``malipo ledger verify``.

Items: a ``--bank-share`` of them (spread evenly) are bank items (``destinationType`` bank, a
10-digit account at one of four banks whose paybills malipo knows), the rest Safaricom numbers;
each of ``--amount`` whole shillings. The issue's targets (submit < 10 s, items/s >= 0.6 of the
baseline's, RSS growth < 150 MB, ledger verify and the reconciliation tying) are printed as met
or missed; the run fails (exit 1) only when something is wrong: an item not final, a failed item,
the ledger or the reconciliation not tying, a baseline item without its result.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from bench import lib
from bench.payout_baseline import PUBLIC_URL_ENV, SENDERS_ENV, SIMULATOR_URL_ENV
from bench.wallet_transfer import DEFAULT_SERVER, _create_database, _drop_database

NAME = "disbursement_batch"
API = "/api/v1/disbursements/batches"
RECONCILIATION = "/api/v1/reports/disbursements/batches/{batch_id}/reconciliation"
CSV_HEADER = ("destination", "amount", "destinationType", "bankCode", "narration", "reference")
# Banks whose M-Pesa paybill malipo knows (malipo.payouts.banks.BANK_PAYBILLS): KCB, Co-op, Equity, DTB.
BANK_CODES = ("01", "11", "68", "63")
WINDOW_SECONDS = 5.0
MB = 1024 * 1024
# The targets.
SUBMIT_TARGET_S = 10.0
RATIO_TARGET = 0.6
RSS_GROWTH_TARGET_MB = 150.0


# -------------------------------------------------------------- the batch


def batch_items(count: int, bank_share: float, amount: int, run: str) -> list[dict[str, Any]]:
    """``count`` items as the API takes them; a ``bank_share`` of them bank items, spread evenly."""
    items: list[dict[str, Any]] = []
    banks = 0
    for index in range(count):
        reference = f"{run}-{index}"
        if int((index + 1) * bank_share) > banks:
            banks += 1
            items.append(
                {"destination": f"{2_000_000_000 + index}", "amount": amount, "destinationType": "bank",
                 "bankCode": BANK_CODES[index % len(BANK_CODES)], "narration": f"bench {reference}",
                 "reference": reference}
            )  # fmt: skip
        else:
            items.append(
                {"destination": f"2547{12_000_000 + index:08d}", "amount": amount,
                 "destinationType": "mobile", "narration": f"bench {reference}", "reference": reference}
            )  # fmt: skip
    return items


def batch_csv(items: list[dict[str, Any]]) -> bytes:
    """The items as the CSV upload takes them (header ``destination,amount,…,reference``)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_HEADER, lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({key: item.get(key, "") for key in CSV_HEADER})
    return out.getvalue().encode()


# -------------------------------------------------------------- HTTP, memory, progress


def _http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, Any]:
    """One request from this process; returns (status, the JSON reply or its text)."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def rss_bytes(pid: int) -> int | None:
    """The resident memory of process ``pid`` (psutil if installed, else /proc), or None if gone."""
    try:
        import psutil
    except ImportError:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


class Memory:
    """A process's RSS at the start, its maximum over the samples, and at the end."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_bytes(pid) or 0
        self.max = self.start
        self.end = self.start

    def sample(self) -> int:
        now = rss_bytes(self.pid) or self.end
        self.max = max(self.max, now)
        self.end = now
        return now

    def as_dict(self) -> dict[str, float]:
        return {
            "start_mb": self.start / MB,
            "max_mb": self.max / MB,
            "end_mb": self.end / MB,
            "growth_mb": (self.max - self.start) / MB,
        }


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (every core, /proc/stat), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def other_cpu(busy_before: float | None, measured_cpu: float, seconds: float) -> float | None:
    """Cores busy with anything but the measured processes since ``busy_before``."""
    busy_after = machine_busy_seconds()
    if busy_before is None or busy_after is None or seconds <= 0:
        return None
    return max(0.0, busy_after - busy_before - measured_cpu) / seconds


def windows(samples: list[tuple[float, int]], width: float = WINDOW_SECONDS) -> dict[str, float | None]:
    """The slowest and fastest ``width``-second windows of (time, items final) samples, in items/s."""
    rates: list[float] = []
    j = 0
    for i, (start, done) in enumerate(samples):
        j = max(j, i + 1)
        while j < len(samples) and samples[j][0] - start < width:
            j += 1
        if j == len(samples):
            break
        end, done_then = samples[j]
        rates.append((done_then - done) / (end - start))
    return {"slowest": min(rates) if rates else None, "fastest": max(rates) if rates else None}


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


@contextlib.contextmanager
def _serving_logged(
    argv: list[str], env: dict[str, str], port: int, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`bench.lib.serving` keeping the server's output in ``log_path`` (to read after a failure)."""
    proc = lib.start_server(argv, env, port, log_path=log_path)
    try:
        yield proc
    finally:
        lib.stop_server(proc)


def _simulator_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "malipo.cli", "sim", "daraja", "--port", str(port), "--callback-delay", "0"]


def _undelivered(sim_log: Path) -> int:
    """How many callbacks the simulator gave up (its ``daraja_sim.callback.undelivered`` lines)."""
    text = sim_log.read_text(errors="replace") if sim_log.exists() else ""
    return text.count("daraja_sim.callback.undelivered")


# -------------------------------------------------------------- the baseline


def _baseline(args: argparse.Namespace, var_dir: Path, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The N items through `bench/payout_baseline.py`, with its own simulator: items/s and checks."""
    sim_port, port = lib.free_port(), lib.free_port()
    sim_log = var_dir / "baseline-simulator.log"
    baseline_env = {
        SIMULATOR_URL_ENV: f"http://127.0.0.1:{sim_port}",
        PUBLIC_URL_ENV: f"http://127.0.0.1:{port}",
        SENDERS_ENV: str(args.baseline_senders),
    }
    baseline_argv = [sys.executable, "-m", "uvicorn", "--factory", "bench.payout_baseline:baseline_app",
                     "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    sim_env = {"MALIPO_VAR_DIR": str(var_dir), "MALIPO_LOG_LEVEL": "WARNING"}
    with (
        _serving_logged(_simulator_argv(sim_port), sim_env, sim_port, sim_log) as sim_proc,
        lib.serving(baseline_argv, baseline_env, port) as proc,
    ):
        memory = Memory(proc.pid)
        cpu_before = {p.pid: lib.process_cpu_seconds(p.pid) or 0.0 for p in (proc, sim_proc)}
        busy_before, clock_before = machine_busy_seconds(), time.monotonic()
        body = json.dumps({"items": items}).encode()
        sent_at = time.monotonic()
        status, reply = _http("POST", f"{base}/batches", body=body, timeout=600)
        submit_s = time.monotonic() - sent_at
        if status != 201:
            raise RuntimeError(f"the baseline refused the batch: {status} {str(reply)[:500]}")
        print(f"  baseline: {reply['acceptedCount']:,} items accepted in {submit_s:.2f} s", flush=True)
        samples: list[tuple[float, int]] = []
        stalled_since = time.monotonic()
        last_final = -1
        while True:
            _status, stats = _http("GET", f"{base}/stats")
            memory.sample()
            final = stats["done"] + stats["failed"]
            samples.append((time.time(), final))
            if final >= len(items):
                break
            if final > last_final:
                last_final, stalled_since = final, time.monotonic()
                print(f"  baseline: {stats['done']:,} done, {stats['failed']:,} failed", flush=True)
            elif time.monotonic() - stalled_since > args.stall:
                print(f"  baseline: no result for {args.stall:.0f} s, giving up", file=sys.stderr)
                break
            time.sleep(args.poll)
        cpu = {pid: (lib.process_cpu_seconds(pid) or 0.0) - before for pid, before in cpu_before.items()}
        other = other_cpu(busy_before, sum(cpu.values()), time.monotonic() - clock_before)
    elapsed = (stats["last_result_at"] or time.time()) - stats["first_batch_at"]
    done = stats["done"]
    return {
        "items": len(items),
        "submit_seconds": submit_s,
        "stats": stats,
        "seconds": elapsed,
        "items_per_s": done / elapsed if elapsed > 0 else None,
        "windows_per_s": windows(samples),
        "rss": memory.as_dict(),
        "server_cpu_ms_per_item": 1000 * cpu[proc.pid] / max(done, 1),
        "simulator_cpu_ms_per_item": 1000 * cpu[sim_proc.pid] / max(done, 1),
        "other_cpu": other,
        "simulator_undelivered_callbacks": _undelivered(sim_log),
    }


def _baseline_failed(baseline: dict[str, Any]) -> bool:
    stats = baseline["stats"]
    return bool(
        stats["done"] != baseline["items"]
        or stats["failed"]
        or stats["send_failures"]
        or stats["unknown_callbacks"]
        or stats["rejected"]
        or baseline["simulator_undelivered_callbacks"]
    )


# -------------------------------------------------------------- malipo


async def _fund_wallet(dsn: str, merchant_id: str, kind: str, amount_minor: int) -> None:
    """A balanced journal from the live suspense account into the merchant's live ``kind`` wallet."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            wallet = await conn.fetchval(
                "SELECT id FROM ledger_accounts WHERE owner_key = $1 AND kind = $2"
                " AND mode = 'live' AND currency = 'KES'",
                f"client:{merchant_id}", kind,
            )  # fmt: skip
            suspense = await conn.fetchval(
                "SELECT id FROM ledger_accounts WHERE owner_key = 'system' AND kind = 'suspense'"
                " AND mode = 'live' AND currency = 'KES'"
            )
            if wallet is None or suspense is None:
                raise RuntimeError(f"no live KES {kind} for merchant {merchant_id} (or no suspense account)")
            journal = uuid.uuid4()
            await conn.execute(
                "INSERT INTO ledger_journals (id, client_id, mode, reference, kind, description, details,"
                " created_at) VALUES ($1, $2, 'live', $3, 'bench_funding', 'bench funding', '{}', $4)",
                journal, uuid.UUID(merchant_id), uuid.uuid4().hex[:10].upper(), now,
            )  # fmt: skip
            for account, delta in ((suspense, -amount_minor), (wallet, amount_minor)):
                after = await conn.fetchval(
                    "UPDATE ledger_accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance",
                    account, delta,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO ledger_postings (id, journal_id, account_id, amount, currency,"
                    " balance_after, created_at) VALUES ($1, $2, $3, $4, 'KES', $5, $6)",
                    uuid.uuid4(), journal, account, delta, after, now,
                )  # fmt: skip
    finally:
        await conn.close()


def _submit(
    base: str, auth: dict[str, str], items: list[dict[str, Any]], *, as_csv: bool
) -> tuple[float, Any]:
    """The batch submitted (JSON or CSV): (seconds the request took, the reply). Raises if refused."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    if as_csv:
        url = f"{base}{API}/csv?" + urllib.parse.urlencode({"batchName": name})
        body, content_type = batch_csv(items), "text/csv"
    else:
        url = f"{base}{API}"
        body, content_type = json.dumps({"batchName": name, "items": items}).encode(), "application/json"
    sent_at = time.monotonic()
    status, reply = _http("POST", url, body=body, content_type=content_type, headers=auth, timeout=600)
    seconds = time.monotonic() - sent_at
    if status != 201:
        raise RuntimeError(f"the batch was refused: HTTP {status} {str(reply)[:1000]}")
    return seconds, reply


def _malipo(
    args: argparse.Namespace,
    var_dir: Path,
    env: dict[str, str],
    auth: dict[str, str],
    items: list[dict[str, Any]],
) -> dict[str, Any]:
    """Submit, process and follow the batch on `malipo serve`; the figures and the checks."""
    sim_port, port = lib.free_port(), lib.free_port()
    base = f"http://127.0.0.1:{port}"
    env = env | {"MALIPO_PUBLIC_URL": base, "MALIPO_DARAJA_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}"}
    sim_log = var_dir / "simulator.log"
    serve_argv = [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)]
    serve_env = env
    workers: list[subprocess.Popen[bytes]] = []
    if args.worker_processes:
        serve_env = env | {"MALIPO_INPROCESS_WORKER": "false"}
    figures: dict[str, Any] = {"items": len(items)}
    try:
        with (
            _serving_logged(_simulator_argv(sim_port), env, sim_port, sim_log) as sim_proc,
            lib.serving(serve_argv, serve_env, port) as proc,
        ):
            workers += [
                subprocess.Popen(
                    [sys.executable, "-m", "malipo.cli", "worker"], cwd=lib.ROOT, env=lib.child_env(env)
                )
                for _ in range(args.worker_processes)
            ]
            memory = Memory(proc.pid)
            worker_memory = [Memory(w.pid) for w in workers]
            malipo_pids = [proc.pid, *(w.pid for w in workers)]
            cpu_before = {pid: lib.process_cpu_seconds(pid) or 0.0 for pid in [*malipo_pids, sim_proc.pid]}
            busy_before, clock_before = machine_busy_seconds(), time.monotonic()

            submit_s, submitted = _submit(base, auth, items, as_csv=args.csv)
            memory.sample()
            batch_id = submitted["batchId"]
            figures |= {
                "submit_seconds": submit_s,
                "batch_id": batch_id,
                "accepted": submitted.get("acceptedCount"),
                "rejected": submitted.get("rejectedCount"),
                "rejected_first": submitted.get("rejected", [])[:5],
                "approval_required": submitted.get("approvalRequired"),
            }
            print(
                f"  malipo: batch {batch_id} submitted in {submit_s:.2f} s: {submitted.get('acceptedCount')}"
                f" accepted, {submitted.get('rejectedCount')} rejected,"
                f" approval required: {submitted.get('approvalRequired')}",
                flush=True,
            )

            process_key = str(uuid.uuid4())
            process_at = time.time()
            status, processed = _http(
                "POST", f"{base}{API}/{batch_id}/process", body=b"{}",
                headers=auth | {"Idempotency-Key": process_key}, timeout=600,
            )  # fmt: skip
            figures["process_seconds"] = time.time() - process_at
            if status != 200:
                raise RuntimeError(f"process refused: HTTP {status} {str(processed)[:1000]}")
            figures["queued"] = processed.get("queued")
            figures["skipped"] = len(processed.get("skipped", []))
            print(
                f"  malipo: process answered in {figures['process_seconds']:.2f} s,"
                f" {processed.get('queued')} queued, {figures['skipped']} skipped",
                flush=True,
            )

            samples: list[tuple[float, int]] = [(process_at, 0)]
            stalled_since = time.monotonic()
            last_final = -1
            batch: dict[str, Any] = {}
            finished_at = None
            while True:
                time.sleep(args.poll)
                status, batch = _http("GET", f"{base}{API}/{batch_id}", headers=auth)
                now = time.time()
                rss = memory.sample()
                for worker in worker_memory:
                    worker.sample()
                if status != 200:
                    print(f"  malipo: GET batch answered {status}: {str(batch)[:300]}", file=sys.stderr)
                    if time.monotonic() - stalled_since > args.stall:
                        break
                    continue
                counts = batch["counts"]
                final = counts["processed"] + counts["failed"]
                samples.append((now, final))
                if counts["pending"] + counts["processing"] == 0:
                    finished_at = now
                    break
                if final > last_final:
                    last_final, stalled_since = final, time.monotonic()
                elif time.monotonic() - stalled_since > args.stall:
                    print(f"  malipo: no item final for {args.stall:.0f} s, giving up", file=sys.stderr)
                    break
                print(
                    f"  malipo: {now - process_at:6.0f} s  processed {counts['processed']:,}"
                    f"  failed {counts['failed']:,}  processing {counts['processing']:,}"
                    f"  pending {counts['pending']:,}"
                    f"  rss {rss / MB:.0f} MB",
                    flush=True,
                )
            cpu = {pid: (lib.process_cpu_seconds(pid) or 0.0) - before for pid, before in cpu_before.items()}
            other = other_cpu(busy_before, sum(cpu.values()), time.monotonic() - clock_before)
            status, reconciliation = _http(
                "GET",
                base + RECONCILIATION.format(batch_id=batch_id) + "?items=none",
                headers=auth,
                timeout=300,
            )
    finally:
        for worker in workers:
            lib.stop_server(worker)
    paid = batch.get("counts", {}).get("processed", 0)
    elapsed = (finished_at or time.time()) - process_at
    malipo_cpu = sum(cpu[pid] for pid in malipo_pids)
    return figures | {
        "finished": finished_at is not None,
        "batch": batch,
        "seconds": elapsed,
        "items_per_s": paid / elapsed if finished_at is not None and elapsed > 0 else None,
        "windows_per_s": windows(samples),
        "rss": memory.as_dict(),
        "worker_rss": [m.as_dict() for m in worker_memory],
        "server_cpu_ms_per_item": 1000 * malipo_cpu / max(paid, 1),
        "simulator_cpu_ms_per_item": 1000 * cpu[sim_proc.pid] / max(paid, 1),
        "other_cpu": other,
        "simulator_undelivered_callbacks": _undelivered(sim_log),
        "reconciliation_status": status,
        "reconciliation": reconciliation,
        "ties": status == 200
        and isinstance(reconciliation, dict)
        and reconciliation.get("totals", {}).get("ties") is True,
    }


def _ledger_verify(env: dict[str, str]) -> tuple[bool, str]:
    try:
        return True, lib.run_command([sys.executable, "-m", "malipo.cli", "ledger", "verify"], env).strip()
    except RuntimeError as exc:
        return False, str(exc)[-2000:]


def _run_malipo(
    args: argparse.Namespace, var_dir: Path, items: list[dict[str, Any]], errors: list[str]
) -> dict[str, Any]:
    """A scratch database, migrated, seeded and funded; the batch through malipo; the database dropped."""
    server = args.database_url.rsplit("/", 1)[0]
    db_name = f"malipo_bench_disb_{os.getpid()}"
    dsn = f"{server}/{db_name}"
    try:
        asyncio.run(_create_database(args.database_url, db_name))
    except (OSError, asyncpg.PostgresError) as exc:
        errors.append(f"PostgreSQL is needed at {args.database_url}: {exc}")
        return {}
    try:
        env = {
            "MALIPO_VAR_DIR": str(var_dir),
            "MALIPO_LOG_LEVEL": "WARNING",
            "MALIPO_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://"),
            # Daraja answers on loopback in about a millisecond: a few connections carry the load.
            "MALIPO_HTTP_CONNECTIONS": str(args.http_connections),
        }
        lib.run_command([sys.executable, "-m", "malipo.cli", "db", "upgrade"], env)
        demo = json.loads(lib.run_command([sys.executable, "-m", "malipo.cli", "seed-demo", "--json"], env))
        total_minor = sum(int(item["amount"]) for item in items) * 100
        # Twice what the batch pays, and KES 200 of fees an item: no item is refused for funds.
        asyncio.run(_fund_wallet(dsn, demo["merchant_id"], "payments_wallet", 2 * total_minor + 1_000_000_00))
        asyncio.run(
            _fund_wallet(dsn, demo["merchant_id"], "service_wallet", len(items) * 200_00 + 1_000_000_00)
        )
        pair = f"{demo['payhero_api_username']}:{demo['payhero_api_password']}"
        auth = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        try:
            malipo = _malipo(args, var_dir, env, auth, items)
        except (RuntimeError, KeyError, TypeError, OSError) as exc:
            errors.append(f"malipo: {exc!r}")
            malipo = {"error": repr(exc)}
        malipo["ledger_verify_ok"], malipo["ledger_verify"] = _ledger_verify(env)
    finally:
        asyncio.run(_drop_database(args.database_url, db_name))
    if not malipo["ledger_verify_ok"]:
        errors.append(f"malipo: ledger verify failed: {malipo['ledger_verify']}")
    if "error" in malipo:
        return malipo
    counts = malipo["batch"].get("counts", {})
    if not malipo["finished"]:
        errors.append(f"malipo: not every item became final: {counts}")
    if counts.get("failed"):
        errors.append(f"malipo: {counts['failed']:,} items failed")
    if malipo["accepted"] != len(items):
        errors.append(
            f"malipo accepted {malipo['accepted']} of {len(items)} items: {malipo['rejected_first']}"
        )
    if not malipo["ties"]:
        errors.append(
            f"malipo: the reconciliation does not tie ({malipo['reconciliation_status']}):"
            f" {str(malipo['reconciliation'])[:500]}"
        )
    return malipo


# -------------------------------------------------------------- the run


def _row(label: str, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": label,
        "items": figures["items"],
        "submit s": figures.get("submit_seconds"),
        "seconds": figures.get("seconds"),
        "items/s": figures.get("items_per_s"),
        "slowest 5s/s": figures["windows_per_s"]["slowest"],
        "fastest 5s/s": figures["windows_per_s"]["fastest"],
        "rss start MB": figures["rss"]["start_mb"],
        "rss growth MB": figures["rss"]["growth_mb"],
        "server cpu ms/item": figures.get("server_cpu_ms_per_item"),
        "sim cpu ms/item": figures.get("simulator_cpu_ms_per_item"),
        "other cpu": figures.get("other_cpu"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER))
    parser.add_argument("--items", type=int, default=100_000, help="items in the batch")
    parser.add_argument("--bank-share", type=float, default=0.1, help="the share of bank items (0 to 1)")
    parser.add_argument("--amount", type=int, default=50, help="whole shillings per item")
    parser.add_argument("--csv", action="store_true", help="submit the batch as a CSV upload")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls of the batch")
    parser.add_argument("--stall", type=float, default=120.0, help="give up after this long without progress")
    parser.add_argument(
        "--http-connections", type=int, default=8, help="MALIPO_HTTP_CONNECTIONS for malipo's worker"
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="run the outbox worker as this many `malipo worker` processes (0: inside `malipo serve`)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare payout gateway")
    parser.add_argument("--baseline-only", action="store_true", help="measure the bare payout gateway only")
    parser.add_argument("--baseline-senders", type=int, default=8, help="the bare gateway's sender tasks")
    args = parser.parse_args(argv)
    if not 0 <= args.bank_share <= 1 or args.items < 1:
        parser.error("--items must be positive and --bank-share between 0 and 1")

    run = uuid.uuid4().hex[:8]
    items = batch_items(args.items, args.bank_share, args.amount, run)
    bank_items = sum(1 for item in items if item["destinationType"] == "bank")
    print(f"{args.items:,} items ({bank_items:,} bank) of KES {args.amount} each", flush=True)
    results: dict[str, Any] = {"settings": vars(args), "bank_items": bank_items}
    errors: list[str] = []
    baseline: dict[str, Any] | None = None
    malipo: dict[str, Any] | None = None

    with tempfile.TemporaryDirectory(prefix="malipo-bench-") as var_dir:
        if not args.no_baseline:
            baseline = results["baseline"] = _baseline(args, Path(var_dir), items)
            if _baseline_failed(baseline):
                errors.append(f"the baseline did not pay every item: {baseline['stats']}")
        if not args.baseline_only:
            malipo = _run_malipo(args, Path(var_dir), items, errors)
            results["malipo"] = malipo

    measured = (("baseline", baseline), ("malipo", malipo))
    rows = [_row(label, figures) for label, figures in measured if figures and "windows_per_s" in figures]
    if rows:
        print()
        lib.print_table(rows, title=f"{args.items:,} disbursement items ({bank_items:,} bank), the same run")
    if malipo is not None and "items_per_s" in malipo:
        ratio = _ratio(malipo["items_per_s"], baseline["items_per_s"] if baseline else None)
        targets = {
            "submit_under_10_s": malipo["submit_seconds"] < SUBMIT_TARGET_S,
            "items_per_s_ratio": ratio,
            "items_per_s_ratio_at_least_0_6": None if ratio is None else ratio >= RATIO_TARGET,
            "rss_growth_under_150_mb": malipo["rss"]["growth_mb"] < RSS_GROWTH_TARGET_MB,
            "ledger_verify": malipo["ledger_verify_ok"],
            "reconciliation_ties": malipo["ties"],
        }
        results["targets"] = targets
        print(
            f"malipo/baseline items/s: {'n/a' if ratio is None else f'x{ratio:.2f}'}"
            f" (target >= {RATIO_TARGET});"
            f" submit {malipo['submit_seconds']:.2f} s (target < {SUBMIT_TARGET_S:.0f} s);"
            f" RSS growth {malipo['rss']['growth_mb']:.0f} MB (target < {RSS_GROWTH_TARGET_MB:.0f} MB)"
        )
        print(
            f"ledger verify: {'OK' if malipo['ledger_verify_ok'] else 'FAILED'};"
            f" reconciliation ties: {malipo['ties']}"
        )
        missed = [name for name, met in targets.items() if met is False]
        print("targets: " + (f"missed {', '.join(missed)}" if missed else "all met"))
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    path = lib.write_json(NAME, results)
    print(f"results written to {path.relative_to(lib.ROOT)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
