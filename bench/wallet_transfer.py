"""Wallet transfers per second: POST /api/v1/wallet/transfer on PostgreSQL, against bare SQL.

    python bench/wallet_transfer.py [--wallets 10000] [--connections 32 128] [--duration 10]
                                    [--no-idempotency-key] [--database-url postgresql://…]

Creates a scratch database on the PostgreSQL server (default
postgresql://postgres@127.0.0.1:5432, dropped at the end), migrates it, seeds the
demo merchant, and opens ``--wallets`` sandbox customers with funded wallets
(bulk SQL, one balanced funding journal). Then ``malipo serve`` (one uvicorn
process, its in-process worker) is loaded from a second process: each request
is one customer sending 1.00 to another, both drawn at random, with the
sender's JWT and (by default) a fresh ``Idempotency-Key``, as a careful client
sends it.

The baseline runs in this process: the same transfer as bare SQL through an
asyncpg pool of the same size, no HTTP, no ORM, ``--connections`` concurrent
tasks — the statements malipo's hot path runs for it, in one transaction. The
ratio malipo/bare says what the HTTP stack, the ORM and the checks cost.

At the end ``malipo ledger verify`` must pass and the number of transfer
journals must equal the 201 replies: a fast wrong answer is not a result.
Durability is the server's default (synchronous_commit on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import jwt

from bench import lib
from malipo.auth.authenticate import CUSTOMER_TOKEN_TTL

NAME = "wallet_transfer"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
FUNDING_PER_WALLET = 1_000_000_00  # 1,000,000.00 KES: no transfer in a run can empty a wallet
AMOUNT = "1.00"
TOKENS_ENV = "BENCH_WALLET_TOKENS"

# -------------------------------------------------------------- the load process's side

_tokens: list[tuple[str, str]] | None = None


def transfer_request(index: int) -> lib.Request:
    """One transfer between two random wallets (imported and called by bench.load)."""
    global _tokens
    if _tokens is None:
        _tokens = [tuple(pair) for pair in json.loads(Path(os.environ[TOKENS_ENV]).read_text())]  # type: ignore[misc]
    rng = random.Random(index)
    sender, recipient = rng.sample(range(len(_tokens)), 2)
    headers = {"Authorization": f"Bearer {_tokens[sender][1]}"}
    if os.environ.get("BENCH_IDEMPOTENCY", "1") == "1":
        headers["Idempotency-Key"] = f"bench-{index}-{secrets.token_hex(6)}"
    body = {"recipientCustomerId": _tokens[recipient][0], "amount": AMOUNT, "description": "bench"}
    return lib.Request(body=body, headers=headers)


# -------------------------------------------------------------- setup


async def _create_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _open_wallets(dsn: str, merchant_id: str, count: int) -> list[tuple[str, str]]:
    """``count`` sandbox customers of the merchant with funded KES wallets: [(customer id, wallet id)]."""
    now = datetime.now(UTC)
    client_id = uuid.UUID(merchant_id)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            funding = await conn.fetchval(
                "SELECT id FROM ledger_accounts WHERE owner_key = 'system' AND kind = 'sandbox_funding'"
                " AND currency = 'KES' AND mode = 'test'"
            )
            if funding is None:
                funding = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO ledger_accounts (id, owner_key, client_id, mode, kind, currency,"
                    " allow_negative, balance, held, created_at)"
                    " VALUES ($1, 'system', NULL, 'test', 'sandbox_funding', 'KES', true, 0, 0, $2)",
                    funding,
                    now,
                )
            customers = [(uuid.uuid4(), uuid.uuid4()) for _ in range(count)]
            await conn.copy_records_to_table(
                "ledger_accounts",
                columns=[
                    "id",
                    "owner_key",
                    "client_id",
                    "mode",
                    "kind",
                    "currency",
                    "allow_negative",
                    "balance",
                    "held",
                    "created_at",
                ],
                records=[
                    (
                        wallet,
                        f"customer:{cid}",
                        client_id,
                        "test",
                        "customer_wallet",
                        "KES",
                        False,
                        FUNDING_PER_WALLET,
                        0,
                        now,
                    )
                    for cid, wallet in customers
                ],
            )
            await conn.copy_records_to_table(
                "customers",
                columns=[
                    "id",
                    "client_id",
                    "mode",
                    "email",
                    "password_hash",
                    "full_name",
                    "wallet_account_id",
                    "created_at",
                ],
                records=[
                    (cid, client_id, "test", f"bench{i}@example.com", "!bench", f"Bench {i}", wallet, now)
                    for i, (cid, wallet) in enumerate(customers)
                ],
            )
            journal = uuid.uuid4()
            await conn.execute(
                "INSERT INTO ledger_journals (id, client_id, mode, reference, kind, description,"
                " idempotency_key, reverses_id, details, created_at)"
                " VALUES ($1, $2, 'test', $3, 'bench_funding', 'bench funding', NULL, NULL, '{}', $4)",
                journal,
                client_id,
                secrets.token_hex(5).upper(),
                now,
            )
            balance = await conn.fetchval(
                "UPDATE ledger_accounts SET balance = balance - $2 WHERE id = $1 RETURNING balance",
                funding,
                FUNDING_PER_WALLET * count,
            )
            await conn.copy_records_to_table(
                "ledger_postings",
                columns=[
                    "id",
                    "journal_id",
                    "account_id",
                    "amount",
                    "currency",
                    "balance_after",
                    "created_at",
                ],
                records=[
                    (uuid.uuid4(), journal, funding, -FUNDING_PER_WALLET * count, "KES", balance, now),
                    *(
                        (uuid.uuid4(), journal, wallet, FUNDING_PER_WALLET, "KES", FUNDING_PER_WALLET, now)
                        for _, wallet in customers
                    ),
                ],
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return [(str(cid), str(wallet)) for cid, wallet in customers]


def _tokens_for(customers: list[tuple[str, str]], merchant_id: str, secret: str) -> list[tuple[str, str]]:
    now = datetime.now(UTC)
    # Mirrors customers.service.issue_customer_token: malipo refuses a token that claims to be
    # good for longer than CUSTOMER_TOKEN_TTL, so a run (both loads) must fit in that lifetime.
    return [
        (
            cid,
            jwt.encode(
                {
                    "iss": "malipo",
                    "typ": "customer",
                    "sub": cid,
                    "customer_id": cid,
                    "client_id": merchant_id,
                    "mode": "test",
                    "iat": int(now.timestamp()),
                    "exp": int((now + CUSTOMER_TOKEN_TTL).timestamp()),
                    "jti": uuid.uuid4().hex,
                },
                secret,
                algorithm="HS256",
            ),
        )
        for cid, _ in customers
    ]


# -------------------------------------------------------------- the bare-SQL baseline

# What malipo's transfer runs, as plain statements: read both customers and their
# wallets (the tenancy check), the guarded debit and the credit in account order,
# the journal and its postings, the sender's balance for the reply.
_READ_PARTIES = (
    "SELECT c.id, c.client_id, c.mode, a.id AS wallet, a.currency FROM customers c"
    " JOIN ledger_accounts a ON a.id = c.wallet_account_id WHERE c.id = ANY($1::uuid[])"
)
_DEBIT = (
    "UPDATE ledger_accounts SET balance = balance + $2 WHERE id = $1"
    " AND (allow_negative OR balance + $2 - held >= 0) RETURNING balance"
)
_CREDIT = "UPDATE ledger_accounts SET balance = balance + $2 WHERE id = $1 RETURNING balance"
_JOURNAL = (
    "INSERT INTO ledger_journals (id, client_id, mode, reference, kind, description, idempotency_key,"
    " reverses_id, details, created_at) VALUES ($1, $2, 'test', $3, 'wallet_transfer', 'bench', NULL, NULL,"
    " '{}', $4)"
)
_POSTINGS = (
    "INSERT INTO ledger_postings (id, journal_id, account_id, amount, currency, balance_after, created_at)"
    " VALUES ($1, $2, $3, $4, 'KES', $5, $6), ($7, $2, $8, $9, 'KES', $10, $6)"
)
_IDEM_CLAIM = (
    "INSERT INTO idempotency_keys (id, scope, key, request_hash, status, locked_until, created_at,"
    " expires_at) VALUES ($1, $2, $3, 'x', 'in_flight', $4, $4, $4)"
)


async def _bare_transfer(
    conn: asyncpg.Connection, customers: list[tuple[str, str]], rng: random.Random, idempotency: bool
) -> None:
    sender, recipient = rng.sample(customers, 2)
    amount = 100
    now = datetime.now(UTC)
    async with conn.transaction():
        if idempotency:
            await conn.execute(_IDEM_CLAIM, uuid.uuid4(), f"cust:{sender[0]}", secrets.token_hex(8), now)
        rows = await conn.fetch(_READ_PARTIES, [uuid.UUID(sender[0]), uuid.UUID(recipient[0])])
        assert len(rows) == 2
        client_id = rows[0]["client_id"]
        legs = sorted([(uuid.UUID(sender[1]), -amount), (uuid.UUID(recipient[1]), amount)])
        after = {}
        for account, delta in legs:
            after[account] = await conn.fetchval(_DEBIT if delta < 0 else _CREDIT, account, delta)
            assert after[account] is not None
        journal = uuid.uuid4()
        await conn.execute(_JOURNAL, journal, client_id, secrets.token_hex(5).upper(), now)
        (a1, d1), (a2, d2) = legs
        await conn.execute(
            _POSTINGS, uuid.uuid4(), journal, a1, d1, after[a1], now, uuid.uuid4(), a2, d2, after[a2]
        )


async def _bare_sql(
    dsn: str, customers: list[tuple[str, str]], args: argparse.Namespace, connections: int
) -> dict[str, Any]:
    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    latencies: list[float] = []
    done = 0
    stop_at = 0.0
    measuring = False

    async def worker(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            async with pool.acquire() as conn:
                await _bare_transfer(conn, customers, rng, args.idempotency)
            if measuring:
                latencies.append((time.perf_counter() - started) * 1000)
                done += 1

    try:
        stop_at = time.monotonic() + args.warmup + args.duration
        tasks = [asyncio.create_task(worker(i)) for i in range(connections)]
        await asyncio.sleep(args.warmup)
        measuring = True
        started = time.monotonic()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    finally:
        await pool.close()
    latencies.sort()
    return {
        "label": f"bare SQL c={connections}",
        "transfers/s": done / elapsed,
        "p50 ms": latencies[len(latencies) // 2],
        "p99 ms": latencies[int(len(latencies) * 0.99)],
        "requests": done,
    }


# -------------------------------------------------------------- malipo over HTTP


def _start_py_spy(args: argparse.Namespace, pid: int, connections: int) -> subprocess.Popen[bytes] | None:
    if not args.py_spy:
        return None
    out = lib.RESULTS_DIR / f"{NAME}_c{connections}.collapsed"
    lib.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    print(f"  sampling the server with py-spy into {out.relative_to(lib.ROOT)}", flush=True)
    argv = [args.py_spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    argv += ["--duration", str(int(args.warmup + args.duration)), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _count_transfers(dsn: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM ledger_journals WHERE kind = 'wallet_transfer'")
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER))
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--pool-size", type=int, default=20, help="malipo's and the baseline's pool")
    parser.add_argument("--no-idempotency-key", dest="idempotency", action="store_false")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    parser.add_argument(
        "--py-spy",
        metavar="PY_SPY",
        help="path to py-spy: sample the server during the first load into bench/results/*.collapsed",
    )
    args = parser.parse_args(argv)

    server = args.database_url.rsplit("/", 1)[0]
    db_name = f"malipo_bench_{os.getpid()}"
    dsn = f"{server}/{db_name}"
    try:
        asyncio.run(_create_database(args.database_url, db_name))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL is needed at {args.database_url}: {exc}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    results: dict[str, Any] = {"settings": vars(args)}
    errors = 0
    try:
        with tempfile.TemporaryDirectory(prefix="malipo-bench-") as var_dir:
            env = {
                "MALIPO_VAR_DIR": var_dir,
                "MALIPO_LOG_LEVEL": "WARNING",
                "MALIPO_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://"),
                "MALIPO_DB_POOL_SIZE": str(args.pool_size),
                "MALIPO_DB_MAX_OVERFLOW": "0",
            }
            lib.run_command([sys.executable, "-m", "malipo.cli", "db", "upgrade"], env)
            demo = json.loads(
                lib.run_command([sys.executable, "-m", "malipo.cli", "seed-demo", "--json"], env)
            )
            merchant_id = demo["merchant_id"]
            started = time.monotonic()
            customers = asyncio.run(_open_wallets(dsn, merchant_id, args.wallets))
            print(
                f"opened {len(customers):,} funded wallets in {time.monotonic() - started:.1f} s", flush=True
            )
            secret = json.loads((Path(var_dir) / "secrets.json").read_text())["secret_key"]
            tokens_file = Path(var_dir) / "tokens.json"
            tokens_file.write_text(json.dumps(_tokens_for(customers, merchant_id, secret)))
            os.environ[TOKENS_ENV] = str(tokens_file)
            os.environ["BENCH_IDEMPOTENCY"] = "1" if args.idempotency else "0"

            port = lib.free_port()
            argv_serve = [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)]
            ok_before = _count_transfers(dsn)
            ok_replies = 0
            with lib.serving(argv_serve, env, port) as proc:
                for connections in args.connections:
                    spy = (
                        _start_py_spy(args, proc.pid, connections)
                        if connections == args.connections[0]
                        else None
                    )
                    result = lib.run_load(
                        f"http://127.0.0.1:{port}/api/v1/wallet/transfer",
                        method="POST",
                        body_factory=transfer_request,
                        connections=connections,
                        duration=args.duration,
                        warmup=args.warmup,
                        server_pid=proc.pid,
                    )
                    if spy is not None:
                        spy.wait(timeout=60)
                    ok_replies += result.ok_all
                    errors += result.error_count
                    results[f"malipo_c{connections}"] = result
                    row = result.as_row(f"malipo c={connections}")
                    rows.append(row)
                    print(
                        f"  malipo c={connections} {result.rps:,.0f} transfers/s, p99 {result.p99_ms:.0f} ms",
                        flush=True,
                    )
            journals = _count_transfers(dsn) - ok_before
            verify = lib.run_command([sys.executable, "-m", "malipo.cli", "ledger", "verify"], env)
            results["journals"] = journals
            results["ok_replies"] = ok_replies
            results["ledger_verify"] = verify.strip()
            if journals != ok_replies:
                print(
                    f"ERROR: {ok_replies} transfers answered 201 but {journals} journals exist",
                    file=sys.stderr,
                )
                errors += 1

            if args.baseline:
                for connections in args.connections:
                    bare = asyncio.run(_bare_sql(dsn, customers, args, min(connections, args.pool_size)))
                    bare["label"] = f"bare SQL c={connections} (pool {min(connections, args.pool_size)})"
                    results[f"bare_c{connections}"] = bare
                    rows.append(bare)
                    print(f"  {bare['label']}: {bare['transfers/s']:,.0f} transfers/s", flush=True)
    finally:
        asyncio.run(_drop_database(args.database_url, db_name))

    lib.print_table(
        rows,
        title=f"POST /api/v1/wallet/transfer over {args.wallets:,} wallets, PostgreSQL, {args.duration:g} s"
        f" after {args.warmup:g} s warmup" + (", with Idempotency-Key" if args.idempotency else ""),
    )
    print(
        f"ledger verify: {results['ledger_verify']}; journals {results['journals']:,} = 201 replies"
        f" {results['ok_replies']:,}"
    )
    if args.baseline:
        for connections in args.connections:
            mal = results[f"malipo_c{connections}"]
            bare = results[f"bare_c{connections}"]
            results[f"ratio_c{connections}"] = mal.rps / bare["transfers/s"]
            print(f"c={connections}: malipo/bare SQL = {mal.rps / bare['transfers/s']:.2f}")
    path = lib.write_json(NAME, results)
    print(f"results written to {path.relative_to(lib.ROOT)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
