"""The outgoing HTTP client: CPU per request of httpx's own transport (httpcore) against httpx
over aiohttp (malipo's ``core.http_client``) and aiohttp alone.

    python bench/http_client.py [--requests 4000] [--concurrency 64] [--connections 32] [--rounds 3]

The peer is a bare ASGI app under uvicorn in its own process (``peer`` below) answering each POST
with a Daraja-sized JSON body; this process is the client measured: each round sends
``--requests`` POSTs of a B2C-sized JSON body, ``--concurrency`` at a time over ``--connections``
kept-alive connections, with each client in turn (after 200 requests of warm-up), and reports
requests/s and this process's CPU per request. malipo's worker sends every push, payout and
callback through the client measured as ``malipo``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import httpx

from bench.lib import free_port, print_table, serving, write_json
from malipo.core.http_client import http_client

REPLY = (
    b'{"ConversationID":"AG_20191219_00005797af5d7d75f652","OriginatorConversationID":"16740-34861180-1",'
    b'"ResponseCode":"0","ResponseDescription":"Accept the service request successfully."}'
)
BODY = {
    "OriginatorConversationID": "feb5e3f2-fbbc-4745-844c-ee37b546f627", "InitiatorName": "testapi",
    "SecurityCredential": "x" * 344, "CommandID": "BusinessPayment", "Amount": 50, "PartyA": "600996",
    "PartyB": "254712345678", "Remarks": "Payout", "QueueTimeOutURL": "http://127.0.0.1:8000/timeout/abc",
    "ResultURL": "http://127.0.0.1:8000/result/abc", "Occasion": "",
}  # fmt: skip


async def peer(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Any) -> None:
    """The bare peer: reads the body, answers 200 with ``REPLY`` (and 200 at /healthz)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": REPLY})


Sender = Callable[[], Awaitable[None]]


async def _round(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    headers = {"Authorization": "Bearer token"}
    if name == "aiohttp":
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.connections))

        async def send() -> None:
            async with session.post(url, json=BODY, headers=headers) as reply:
                await reply.json()

        close: Callable[[], Awaitable[None]] = session.close
    else:
        client = (
            http_client(30.0, connections=args.connections)
            if name == "malipo"
            else httpx.AsyncClient(timeout=30.0, limits=limits)
        )

        async def send() -> None:
            (await client.post(url, json=BODY, headers=headers)).json()

        close = client.aclose
    slots = asyncio.Semaphore(args.concurrency)

    async def one() -> None:
        async with slots:
            await send()

    await asyncio.gather(*(one() for _ in range(200)))
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(args.requests)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await close()
    return {"client": name, "req/s": args.requests / seconds, "cpu ms/req": 1000 * cpu / args.requests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.http_client:peer", "--port", str(port),
            "--log-level", "warning", "--no-access-log"]  # fmt: skip
    clients = ("httpx (httpcore)", "malipo (httpx over aiohttp)", "aiohttp")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
    with serving(argv, {}, port):
        url = f"http://127.0.0.1:{port}/mpesa/b2c/v3/paymentrequest"
        for _ in range(args.rounds):
            for name in clients:
                runs[name].append(asyncio.run(_round(name.split()[0], url, args)))
    rows = [
        {"client": name, "req/s": statistics.median(r["req/s"] for r in runs[name]),
         "cpu ms/req": statistics.median(r["cpu ms/req"] for r in runs[name])}
        for name in clients
    ]  # fmt: skip
    print_table(rows, title=f"{args.requests} POSTs x {args.rounds} rounds, medians")
    base = rows[0]["cpu ms/req"]
    for row in rows[1:]:
        print(f"{row['client']}: CPU per request x{row['cpu ms/req'] / base:.2f} of httpcore's")
    write_json("http_client", {"args": vars(args), "rows": rows, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
