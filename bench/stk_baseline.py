"""The bare STK push gateway: the HTTP exchanges malipo makes per collection and nothing else.

    BENCH_STK_BASELINE_SIMULATOR_URL=http://127.0.0.1:8701 \\
    BENCH_STK_BASELINE_PUBLIC_URL=http://127.0.0.1:8002 \\
    BENCH_STK_BASELINE_ARRIVALS=/tmp/arrivals.txt \\
    python -m uvicorn --factory bench.stk_baseline:baseline_app --port 8002 \\
        --log-level warning --no-access-log

What ``bench/stk_push.py`` measures malipo against, in the same run: the ceiling of this machine
for the same protocol path, with no database and no business logic (no authentication, no
validation beyond reading the fields, no ledger, no idempotency, no retries, nothing stored but
a dict in memory). Per collection:

1. ``POST /api/v2/payments`` (Pay Hero's shape): read the JSON body, append
   ``<external_reference> <unix time>`` to the arrivals file (line-buffered), put the push on a
   queue and answer 201 ``{"success": true, "status": "QUEUED", "reference", "CheckoutRequestID"}``
   at once;
2. a push sender (one of a fixed pool of tasks draining that queue: no task per request) POSTs
   the STK push to the Daraja simulator with malipo's shared ``http_client`` (the OAuth token
   fetched once and cached), ``CallBackURL`` = ``<public URL>/callbacks/daraja/<random token>``;
3. ``POST /callbacks/daraja/{token}``: read Daraja's ``{"Body": {"stkCallback": …}}``, answer
   ``{"ResultCode": 0, "ResultDesc": "Accepted"}`` and queue the merchant's callback;
4. a webhook sender (another fixed pool) POSTs Pay Hero's callback body to the request's
   ``callback_url``.

Configured by environment variables: ``BENCH_STK_BASELINE_SIMULATOR_URL`` (Daraja's base URL),
``BENCH_STK_BASELINE_PUBLIC_URL`` (this app's own base URL, for ``CallBackURL``),
``BENCH_STK_BASELINE_ARRIVALS`` (the arrivals file) and ``BENCH_STK_BASELINE_SENDERS`` (tasks per
sender pool, default 8: 16 requests in flight at most, as malipo's worker runs 16 jobs at once by
default; the client keeps a connection alive per sender). The pools were kept small while the
client was httpcore's, whose pool scans every connection and waiting request on each request (3 to
4 ms of CPU per collection with 4 or 8 senders per pool, ~12 ms with 64, on the 2-vCPU VM). The
simulator's default credentials apply: any consumer key and secret, the public sandbox shortcode
and passkey. ``GET /healthz`` answers ok; ``GET /stats`` counts what was done and what failed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

# The Daraja constants malipo sends too (plain values; nothing of malipo's logic is used).
from malipo.core.http_client import http_client
from malipo.providers.daraja.schemas import (
    EAT,
    PAYBILL,
    SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE,
)

__all__ = [
    "ARRIVALS_ENV",
    "PUBLIC_URL_ENV",
    "SENDERS_ENV",
    "SIMULATOR_URL_ENV",
    "Gateway",
    "baseline_app",
]

SIMULATOR_URL_ENV = "BENCH_STK_BASELINE_SIMULATOR_URL"
PUBLIC_URL_ENV = "BENCH_STK_BASELINE_PUBLIC_URL"
ARRIVALS_ENV = "BENCH_STK_BASELINE_ARRIVALS"
SENDERS_ENV = "BENCH_STK_BASELINE_SENDERS"

OAUTH_PATH = "/oauth/v1/generate"
STK_PUSH_PATH = "/mpesa/stkpush/v1/processrequest"
CONSUMER_KEY = "bench-baseline"
CONSUMER_SECRET = "bench-baseline-secret"
SHORTCODE_PASSKEY = SANDBOX_SHORTCODE + SANDBOX_PASSKEY


@dataclass(slots=True)
class Collection:
    """What the gateway keeps between the request and Daraja's callback."""

    reference: str
    checkout_request_id: str
    external_reference: str
    callback_url: str
    amount: int
    phone: str


@dataclass(slots=True)
class Counts:
    accepted: int = 0
    pushed: int = 0
    push_failures: int = 0
    callbacks: int = 0
    unknown_callbacks: int = 0
    webhooks: int = 0
    webhook_failures: int = 0
    errors: list[str] = field(default_factory=list)  # the first few failures, for the bench's log


def _msisdn(phone: str) -> str:
    """``07…`` / ``+2547…`` / ``2547…`` as ``2547…`` (what Daraja takes)."""
    phone = phone.strip().lstrip("+")
    return "254" + phone[1:] if phone.startswith("0") else phone


class Gateway:
    """The state and handlers behind :func:`baseline_app`."""

    def __init__(self, *, simulator_url: str, public_url: str, arrivals: Path, senders: int = 8) -> None:
        self.simulator_url = simulator_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.arrivals_path = arrivals
        self.senders = senders
        self.counts = Counts()
        self.pending: dict[str, Collection] = {}  # callback token → collection
        self._sequence = itertools.count()
        self._pushes: asyncio.Queue[tuple[str, Collection]] = asyncio.Queue()
        self._webhooks: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self._arrivals: TextIO | None = None
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self.app = Starlette(
            routes=[
                Route("/api/v2/payments", self.payments, methods=["POST"]),
                Route("/callbacks/daraja/{token}", self.daraja_callback, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/stats", self.stats, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    # ------------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._arrivals = self.arrivals_path.open("a", buffering=1)
        # malipo's own client (httpx over aiohttp, core/http_client.py) with a 30 s timeout: the
        # same exchanges cost the same in both; one kept-alive connection per sender task.
        self._http = http_client(httpx.Timeout(30.0, connect=10.0), connections=2 * self.senders)
        loop = asyncio.get_running_loop()
        for _ in range(self.senders):
            self._tasks.append(loop.create_task(self._push_sender()))
            self._tasks.append(loop.create_task(self._webhook_sender()))
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._http.aclose()
            self._arrivals.close()

    def _failed(self, what: str, exc: BaseException | str) -> None:
        if len(self.counts.errors) < 20:
            self.counts.errors.append(f"{what}: {exc!r}")

    # ------------------------------------------------------------------ the merchant's request

    async def payments(self, request: Request) -> JSONResponse:
        try:
            body = await request.json()
            external_reference = str(body["external_reference"])
            collection = Collection(
                reference=secrets.token_hex(5).upper(),
                checkout_request_id=f"ws_CO_{time.time_ns() // 1000}{next(self._sequence):06d}",
                external_reference=external_reference,
                callback_url=str(body["callback_url"]),
                amount=int(body["amount"]),
                phone=_msisdn(str(body["phone_number"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"success": False, "error_message": f"bad request: {exc!r}"}, status_code=400)
        assert self._arrivals is not None
        self._arrivals.write(f"{external_reference} {time.time():.6f}\n")
        token = secrets.token_urlsafe(24)
        self.pending[token] = collection
        self._pushes.put_nowait((token, collection))
        self.counts.accepted += 1
        return JSONResponse(
            {
                "success": True,
                "status": "QUEUED",
                "reference": collection.reference,
                "CheckoutRequestID": collection.checkout_request_id,
            },
            status_code=201,
        )

    # ------------------------------------------------------------------ Daraja

    async def _access_token(self) -> str:
        """The cached token, or one fetched once for every sender waiting on it."""
        if self._token is not None:
            return self._token
        async with self._token_lock:
            if self._token is None:
                assert self._http is not None
                response = await self._http.get(
                    self.simulator_url + OAUTH_PATH,
                    params={"grant_type": "client_credentials"},
                    auth=httpx.BasicAuth(CONSUMER_KEY, CONSUMER_SECRET),
                )
                response.raise_for_status()
                self._token = str(response.json()["access_token"])
            return self._token

    async def _push_sender(self) -> None:
        assert self._http is not None
        while True:
            token, collection = await self._pushes.get()
            try:
                timestamp = datetime.now(UTC).astimezone(EAT).strftime("%Y%m%d%H%M%S")
                password = base64.b64encode(f"{SHORTCODE_PASSKEY}{timestamp}".encode()).decode()
                response = await self._http.post(
                    self.simulator_url + STK_PUSH_PATH,
                    headers={"Authorization": f"Bearer {await self._access_token()}"},
                    json={
                        "BusinessShortCode": SANDBOX_SHORTCODE,
                        "Password": password,
                        "Timestamp": timestamp,
                        "TransactionType": PAYBILL,
                        "Amount": collection.amount,
                        "PartyA": collection.phone,
                        "PartyB": SANDBOX_SHORTCODE,
                        "PhoneNumber": collection.phone,
                        "CallBackURL": f"{self.public_url}/callbacks/daraja/{token}",
                        "AccountReference": collection.reference,
                        "TransactionDesc": f"Payment {collection.reference}",
                    },
                )
                reply = response.json()
                if response.status_code != 200 or reply.get("ResponseCode") != "0":
                    raise RuntimeError(f"HTTP {response.status_code} {reply}")
                self.counts.pushed += 1
            except Exception as exc:  # counted and reported; the sender goes on
                self.counts.push_failures += 1
                self.pending.pop(token, None)
                self._failed("push", exc)

    async def daraja_callback(self, request: Request) -> JSONResponse:
        body = await request.json()
        callback = body["Body"]["stkCallback"]
        self.counts.callbacks += 1
        collection = self.pending.pop(request.path_params["token"], None)
        if collection is None:
            self.counts.unknown_callbacks += 1
        else:
            result_code = int(callback["ResultCode"])
            items = (callback.get("CallbackMetadata") or {}).get("Item", [])
            metadata = {item["Name"]: item.get("Value") for item in items}
            webhook = {
                "forward_url": "",
                "response": {
                    "Amount": metadata.get("Amount", collection.amount),
                    "CheckoutRequestID": collection.checkout_request_id,
                    "ExternalReference": collection.external_reference,
                    "MerchantRequestID": callback.get("MerchantRequestID", ""),
                    "MpesaReceiptNumber": metadata.get("MpesaReceiptNumber") or "",
                    "Phone": f"+{collection.phone}",
                    "ResultCode": result_code,
                    "ResultDesc": callback.get("ResultDesc", ""),
                    "Status": "Success" if result_code == 0 else "Failed",
                },
                "status": result_code == 0,
            }
            self._webhooks.put_nowait((collection.callback_url, webhook))
        return JSONResponse({"ResultCode": 0, "ResultDesc": "Accepted"})

    # ------------------------------------------------------------------ the merchant's callback

    async def _webhook_sender(self) -> None:
        assert self._http is not None
        while True:
            url, webhook = await self._webhooks.get()
            try:
                response = await self._http.post(url, json=webhook)
                response.raise_for_status()
                self.counts.webhooks += 1
            except Exception as exc:  # counted and reported; the sender goes on
                self.counts.webhook_failures += 1
                self._failed("webhook", exc)

    # ------------------------------------------------------------------ probes

    async def healthz(self, _request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def stats(self, _request: Request) -> JSONResponse:
        counts = self.counts
        return JSONResponse(
            {
                "accepted": counts.accepted,
                "pushed": counts.pushed,
                "push_failures": counts.push_failures,
                "callbacks": counts.callbacks,
                "unknown_callbacks": counts.unknown_callbacks,
                "webhooks": counts.webhooks,
                "webhook_failures": counts.webhook_failures,
                "queued_pushes": self._pushes.qsize(),
                "queued_webhooks": self._webhooks.qsize(),
                "awaiting_callback": len(self.pending),
                "errors": counts.errors,
            }
        )


def baseline_app() -> Starlette:
    """The app for ``uvicorn --factory``, configured from the environment (see the module docstring)."""
    return Gateway(
        simulator_url=os.environ[SIMULATOR_URL_ENV],
        public_url=os.environ[PUBLIC_URL_ENV],
        arrivals=Path(os.environ[ARRIVALS_ENV]),
        senders=int(os.environ.get(SENDERS_ENV, "8")),
    ).app
