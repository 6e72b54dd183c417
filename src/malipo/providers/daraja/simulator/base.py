"""The simulator's state, lifecycle, error replies, OAuth and callback delivery."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.core.clock import Clock, SystemClock
from malipo.core.logging import get_logger
from malipo.providers.daraja.schemas import (
    INVALID_ACCESS_TOKEN,
    INVALID_AUTHENTICATION,
    INVALID_GRANT_TYPE,
    SANDBOX_PASSKEY,
    SANDBOX_SHORTCODE,
)
from malipo.providers.daraja.simulator.checks import (
    _TOKEN_ALPHABET,
    _basic_credentials,
    _Rejected,
    _request_id,
)
from malipo.providers.daraja.simulator.records import (
    B2BPayment,
    B2CPayment,
    StatusQuery,
    StkPush,
)
from malipo.providers.simulation import CallbackSender

log = get_logger("malipo.providers.daraja.simulator")


class SimulatorBase(CallbackSender):
    """The state and handlers behind the simulator app; see the module docstring for behaviour.

    ``credentials`` maps consumer keys to secrets (``None``: any non-empty pair is accepted).
    ``passkeys`` maps STK shortcodes to passkeys, on top of the public sandbox pair; an unlisted
    shortcode takes any passkey unless ``strict_passkeys`` ("Merchant does not exist").
    ``initiators`` maps B2C initiator names to security credentials (``None``: any non-empty).
    """

    def __init__(
        self,
        *,
        callback_delay: float = 0.0,
        credentials: Mapping[str, str] | None = None,
        passkeys: Mapping[str, str] | None = None,
        strict_passkeys: bool = False,
        initiators: Mapping[str, str] | None = None,
        token_ttl: int = 3599,
        stk_expiry: float = 60.0,
        b2c_funds: int = 10_000_000,
        b2b_funds: int = 10_000_000,
        callback_attempts: int = 3,
        callback_backoff: float = 0.2,
        callback_timeout: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            logger="malipo.providers.daraja.simulator", events="daraja_sim",
            callback_attempts=callback_attempts, callback_backoff=callback_backoff,
            callback_timeout=callback_timeout,
        )  # fmt: skip
        self.callback_delay = callback_delay
        self.credentials = dict(credentials) if credentials is not None else None
        self.passkeys = {SANDBOX_SHORTCODE: SANDBOX_PASSKEY, **(passkeys or {})}
        self.strict_passkeys = strict_passkeys
        self.initiators = dict(initiators) if initiators is not None else None
        self.token_ttl = token_ttl
        self.stk_expiry = stk_expiry
        self.b2c_funds = b2c_funds
        self.b2b_funds = b2b_funds
        self.clock: Clock = clock or SystemClock()

        self.oauth_hits = 0
        self.requests: Counter[str] = Counter()
        self.stk_pushes: dict[str, StkPush] = {}
        self.b2c_payments: dict[str, B2CPayment] = {}
        self.b2b_payments: dict[str, B2BPayment] = {}
        self.status_queries: list[StatusQuery] = []
        self._tokens: dict[str, datetime] = {}

        self.app = Starlette(
            routes=self._routes(),
            exception_handlers={_Rejected: self._rejected, HTTPException: self._http_error},
            lifespan=self._lifespan,
        )
        self.app.state.simulator = self

    def _routes(self) -> list[Route]:
        """The simulator's routes; :class:`DarajaSimulator` adds every API's."""
        return [Route("/healthz", self._healthz, methods=["GET"])]

    def expire_tokens(self) -> None:
        """Make every issued access token invalid (Daraja's answer becomes ``404.001.03``)."""
        self._tokens.clear()

    def _now(self) -> datetime:
        return self.clock.now()

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        self._in_background(self._guarded(work, what))

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("daraja_sim.task.failed", task=what)

    # ------------------------------------------------------------------ errors

    async def _rejected(self, _request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, _Rejected)
        body = {
            "requestId": exc.request_id or _request_id(),
            "errorCode": exc.code,
            "errorMessage": exc.message,
        }
        return JSONResponse(body, status_code=exc.status)

    async def _http_error(self, _request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        message = "Resource not found" if exc.status_code == 404 else str(exc.detail)
        body = {"requestId": _request_id(), "errorCode": f"{exc.status_code}.001.01", "errorMessage": message}
        return JSONResponse(body, status_code=exc.status_code)

    # ------------------------------------------------------------------ OAuth

    async def _healthz(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def _oauth(self, request: Request) -> JSONResponse:
        self.oauth_hits += 1
        self.requests[request.url.path] += 1
        if request.query_params.get("grant_type") != "client_credentials":
            raise _Rejected(400, INVALID_GRANT_TYPE, "Invalid grant type passed")
        pair = _basic_credentials(request.headers.get("authorization", ""))
        if pair is None or not pair[0] or not pair[1] or not self._known_app(*pair):
            raise _Rejected(400, INVALID_AUTHENTICATION, "Invalid Authentication passed")
        now = self._now()
        self._tokens = {token: expiry for token, expiry in self._tokens.items() if expiry > now}
        token = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(28))
        self._tokens[token] = now + timedelta(seconds=self.token_ttl)
        return JSONResponse({"access_token": token, "expires_in": str(self.token_ttl)})

    def _known_app(self, key: str, secret: str) -> bool:
        if self.credentials is None:
            return True
        expected = self.credentials.get(key)
        return expected is not None and secrets.compare_digest(expected.encode(), secret.encode())

    def _authorise(self, request: Request) -> None:
        self.requests[request.url.path] += 1
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or self._now() >= expiry:
            raise _Rejected(404, INVALID_ACCESS_TOKEN, "Invalid Access Token")
