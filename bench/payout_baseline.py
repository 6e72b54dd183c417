"""The bare payout gateway: the HTTP exchanges malipo makes per payout and nothing else.

    BENCH_PAYOUT_BASELINE_SIMULATOR_URL=http://127.0.0.1:8701 \\
    BENCH_PAYOUT_BASELINE_PUBLIC_URL=http://127.0.0.1:8003 \\
    python -m uvicorn --factory bench.payout_baseline:baseline_app --port 8003 \\
        --log-level warning --no-access-log

What ``bench/disbursement_batch.py`` measures malipo's disbursement batches against, in the same
run: the ceiling of this machine for the same protocol path, with no database and no business
logic (no authentication, no validation beyond reading the fields, no ledger, no idempotency, no
retries, no status queries, nothing stored but a dict in memory). Per item:

1. ``POST /batches`` ``{"items": [{"destination", "amount", "destinationType", "bankCode"?}]}``
   (the whole batch in one request): each item gets an id and goes on a queue; the reply, 201
   ``{"batchId", "itemCount", "itemIds"}``, is given at once;
2. a sender (one of a fixed pool of tasks draining that queue: no task per item) POSTs the payout
   to the Daraja simulator with one shared client, malipo's ``http_client`` (the OAuth token fetched once
   and cached), in the body malipo's Daraja client sends: M-Pesa B2C v3
   (``/mpesa/b2c/v3/paymentrequest``) for a ``mobile`` item, B2B Business Pay Bill
   (``/mpesa/b2b/v1/paymentrequest``) to the bank's paybill with the account number as
   ``AccountReference`` for a ``bank`` item; ``ResultURL`` =
   ``<public URL>/callbacks/daraja/<random token>/result`` and ``QueueTimeOutURL`` its
   ``/timeout`` twin, as malipo builds them;
3. ``POST /callbacks/daraja/{token}/result`` (or ``/timeout``): read Daraja's ``{"Result": …}``,
   count the item done (``ResultCode`` 0) or failed, and answer ``{"ResultCode": 0, "ResultDesc":
   "Accepted"}`` as malipo does.

Configured by environment variables: ``BENCH_PAYOUT_BASELINE_SIMULATOR_URL`` (Daraja's base URL),
``BENCH_PAYOUT_BASELINE_PUBLIC_URL`` (this app's own base URL, for ``ResultURL``) and
``BENCH_PAYOUT_BASELINE_SENDERS`` (sender tasks, default 8; the httpx pool keeps a connection
alive per sender, so no sender waits in httpcore's pool, whose CPU per request grows with the
requests in flight: see ``bench/stk_baseline.py``). The simulator's default credentials apply (any
consumer key and secret, any initiator). ``GET /healthz`` answers ok; ``GET /stats`` counts what
was sent, done and failed, with the times (``time.time()``) of the first batch and of the last
result, so that a bench reads items/s without a polling error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

# The Daraja constants and the bank paybill table malipo uses too (plain values; none of its logic).
from malipo.core.http_client import http_client
from malipo.payouts.banks import BANK_PAYBILLS
from malipo.providers.daraja.schemas import BUSINESS_PAY_BILL, SANDBOX_SHORTCODE, SHORTCODE_IDENTIFIER

__all__ = [
    "PUBLIC_URL_ENV",
    "SENDERS_ENV",
    "SIMULATOR_URL_ENV",
    "Gateway",
    "baseline_app",
]

SIMULATOR_URL_ENV = "BENCH_PAYOUT_BASELINE_SIMULATOR_URL"
PUBLIC_URL_ENV = "BENCH_PAYOUT_BASELINE_PUBLIC_URL"
SENDERS_ENV = "BENCH_PAYOUT_BASELINE_SENDERS"

OAUTH_PATH = "/oauth/v1/generate"
B2C_PATH = "/mpesa/b2c/v3/paymentrequest"
B2B_PATH = "/mpesa/b2b/v1/paymentrequest"
CONSUMER_KEY = "bench-baseline"
CONSUMER_SECRET = "bench-baseline-secret"
# What malipo's sandbox Daraja client sends (malipo.providers.daraja.connection).
INITIATOR = "testapi"
SECURITY_CREDENTIAL = "simulated"
ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}


@dataclass(slots=True)
class Item:
    """One payout of the batch, kept from its arrival until Daraja's result."""

    item_id: str
    reference: str
    conversation_id: str
    amount: int  # whole shillings
    bank: bool
    destination: str  # 2547… for mobile, the account number for bank
    paybill: str | None


@dataclass(slots=True)
class Counts:
    accepted: int = 0
    sent: int = 0
    send_failures: int = 0
    done: int = 0
    failed: int = 0  # a result with ResultCode != 0, or a queue timeout
    timeouts: int = 0
    unknown_callbacks: int = 0
    rejected: int = 0  # items of a batch that could not be read (bad fields, unknown bank)
    first_batch_at: float | None = None
    last_result_at: float | None = None
    errors: list[str] = field(default_factory=list)  # the first few failures, for the bench's log


def _msisdn(phone: str) -> str:
    """``07…`` / ``+2547…`` / ``2547…`` as ``2547…`` (what Daraja takes)."""
    phone = phone.strip().lstrip("+")
    return "254" + phone[1:] if phone.startswith("0") else phone


class Gateway:
    """The state and handlers behind :func:`baseline_app`."""

    def __init__(self, *, simulator_url: str, public_url: str, senders: int = 8) -> None:
        self.simulator_url = simulator_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.senders = senders
        self.counts = Counts()
        self.pending: dict[str, Item] = {}  # callback token → item awaiting its result
        self._sequence = itertools.count(1)
        self._queue: asyncio.Queue[tuple[str, Item]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self.app = Starlette(
            routes=[
                Route("/batches", self.batches, methods=["POST"]),
                Route("/callbacks/daraja/{token}/result", self.result, methods=["POST"]),
                Route("/callbacks/daraja/{token}/timeout", self.timeout, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/stats", self.stats, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    # ------------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        # malipo's worker's own client (httpx over aiohttp, core/http_client.py) with a 30 s
        # timeout, one kept-alive connection per sender.
        self._http = http_client(httpx.Timeout(30.0, connect=10.0), connections=self.senders)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sender()) for _ in range(self.senders)]
        try:
            yield
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._http.aclose()

    def _failed(self, what: str, exc: BaseException | str) -> None:
        if len(self.counts.errors) < 20:
            self.counts.errors.append(f"{what}: {exc!r}")

    # ------------------------------------------------------------------ the merchant's batch

    def _item(self, row: dict[str, Any]) -> Item:
        """One row of the batch as an item; KeyError, TypeError or ValueError if it cannot be paid."""
        bank = str(row["destinationType"]) == "bank"
        paybill = BANK_PAYBILLS[str(row["bankCode"])] if bank else None
        destination = str(row["destination"]) if bank else _msisdn(str(row["destination"]))
        return Item(
            item_id=f"i{next(self._sequence)}",
            reference=secrets.token_hex(5).upper(),
            conversation_id=str(uuid.uuid4()),
            amount=int(row["amount"]),
            bank=bank,
            destination=destination,
            paybill=paybill,
        )

    async def batches(self, request: Request) -> JSONResponse:
        try:
            rows = (await request.json())["items"]
            if not isinstance(rows, list):
                raise TypeError("items must be a list")
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad request: {exc!r}"}, status_code=400)
        if self.counts.first_batch_at is None:
            self.counts.first_batch_at = time.time()
        item_ids: list[str] = []
        rejected: list[dict[str, Any]] = []
        for row_number, row in enumerate(rows, start=1):
            try:
                item = self._item(row)
            except (KeyError, TypeError, ValueError) as exc:
                self.counts.rejected += 1
                rejected.append({"row": row_number, "reason": repr(exc)})
                continue
            token = secrets.token_urlsafe(24)
            self.pending[token] = item
            self._queue.put_nowait((token, item))
            item_ids.append(item.item_id)
        self.counts.accepted += len(item_ids)
        return JSONResponse(
            {
                "batchId": str(uuid.uuid4()),
                "itemCount": len(rows),
                "acceptedCount": len(item_ids),
                "itemIds": item_ids,
                "rejected": rejected,
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

    def _request(self, token: str, item: Item) -> tuple[str, dict[str, Any]]:
        """The path and body malipo's Daraja client sends for this item (B2C v3 or B2B)."""
        result_url = f"{self.public_url}/callbacks/daraja/{token}/result"
        timeout_url = f"{self.public_url}/callbacks/daraja/{token}/timeout"
        remarks = f"Payout {item.reference}"
        if item.bank:
            return B2B_PATH, {
                "Initiator": INITIATOR,
                "SecurityCredential": SECURITY_CREDENTIAL,
                "CommandID": BUSINESS_PAY_BILL,
                "SenderIdentifierType": SHORTCODE_IDENTIFIER,
                "RecieverIdentifierType": SHORTCODE_IDENTIFIER,  # sic: Daraja's spelling
                "Amount": item.amount,
                "PartyA": SANDBOX_SHORTCODE,
                "PartyB": item.paybill,
                "AccountReference": item.destination,
                "Remarks": remarks,
                "QueueTimeOutURL": timeout_url,
                "ResultURL": result_url,
                "Occasion": item.reference,
                "OriginatorConversationID": item.conversation_id,
            }
        return B2C_PATH, {
            "OriginatorConversationID": item.conversation_id,
            "InitiatorName": INITIATOR,
            "SecurityCredential": SECURITY_CREDENTIAL,
            "CommandID": "BusinessPayment",
            "Amount": item.amount,
            "PartyA": SANDBOX_SHORTCODE,
            "PartyB": item.destination,
            "Remarks": remarks,
            "QueueTimeOutURL": timeout_url,
            "ResultURL": result_url,
            "Occasion": item.reference,
        }

    async def _sender(self) -> None:
        assert self._http is not None
        while True:
            token, item = await self._queue.get()
            try:
                path, body = self._request(token, item)
                response = await self._http.post(
                    self.simulator_url + path,
                    headers={"Authorization": f"Bearer {await self._access_token()}"},
                    json=body,
                )
                reply = response.json()
                if response.status_code != 200 or reply.get("ResponseCode") != "0":
                    raise RuntimeError(f"HTTP {response.status_code} {reply}")
                self.counts.sent += 1
            except Exception as exc:  # counted and reported; the sender goes on
                self.counts.send_failures += 1
                if self.pending.pop(token, None) is not None:
                    self._final(succeeded=False)
                self._failed("send", exc)

    def _final(self, *, succeeded: bool) -> None:
        if succeeded:
            self.counts.done += 1
        else:
            self.counts.failed += 1
        self.counts.last_result_at = time.time()

    async def result(self, request: Request) -> JSONResponse:
        body = await request.json()
        item = self.pending.pop(request.path_params["token"], None)
        if item is None:
            self.counts.unknown_callbacks += 1
        else:
            code = int(body["Result"]["ResultCode"])
            if code != 0:
                self._failed("result", f"{item.item_id}: {code} {body['Result'].get('ResultDesc')}")
            self._final(succeeded=code == 0)
        return JSONResponse(ACCEPTED)

    async def timeout(self, request: Request) -> JSONResponse:
        await request.body()
        item = self.pending.pop(request.path_params["token"], None)
        if item is None:
            self.counts.unknown_callbacks += 1
        else:
            self.counts.timeouts += 1
            self._failed("timeout", item.item_id)
            self._final(succeeded=False)
        return JSONResponse(ACCEPTED)

    # ------------------------------------------------------------------ probes

    async def healthz(self, _request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def stats(self, _request: Request) -> JSONResponse:
        counts = self.counts
        return JSONResponse(
            {
                "accepted": counts.accepted,
                "rejected": counts.rejected,
                "sent": counts.sent,
                "send_failures": counts.send_failures,
                "done": counts.done,
                "failed": counts.failed,
                "timeouts": counts.timeouts,
                "unknown_callbacks": counts.unknown_callbacks,
                "queued": self._queue.qsize(),
                "awaiting_result": len(self.pending),
                "first_batch_at": counts.first_batch_at,
                "last_result_at": counts.last_result_at,
                "errors": counts.errors,
            }
        )


def baseline_app() -> Starlette:
    """The app for ``uvicorn --factory``, configured from the environment (see the module docstring)."""
    return Gateway(
        simulator_url=os.environ[SIMULATOR_URL_ENV],
        public_url=os.environ[PUBLIC_URL_ENV],
        senders=int(os.environ.get(SENDERS_ENV, "8")),
    ).app
