"""What the rails' OAuth2 clients (Daraja, Airtel) share: one token cache, and one error shape.

:class:`TokenCache` holds one client-credentials access token: fetched once for all concurrent
callers, kept until a margin before it expires (never less than half its life), and — when the
provider still refuses it (expired early, revoked: Daraja's ``404.001.03``, HTTP 401) — dropped,
fetched again once and the call sent again once (:meth:`TokenCache.send`); a second refusal is
the caller's error, never a loop.

:class:`ProviderCallError` is the base of each client's error: ``retryable`` (sending the same
request again may succeed), ``status`` (HTTP, None when no reply came), ``error_message`` (the
provider's words) and ``retry_after`` (seconds the provider asked us to wait: a rate limit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx

from malipo.core.clock import Clock, SystemClock
from malipo.core.logging import get_logger

__all__ = ["ProviderCallError", "TokenCache"]

log = get_logger("malipo.providers.oauth")


class ProviderCallError(Exception):
    """A call to a provider that failed (see the module docstring for the fields)."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, error_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.error_message = error_message
        self.retry_after = retry_after


# Fetch a new token: (the token, its lifetime in seconds).
Fetch = Callable[[], Awaitable[tuple[str, float]]]


class TokenCache:
    """One provider app's access token (see the module docstring)."""

    def __init__(
        self, fetch: Fetch, *, name: str, clock: Clock | None = None, refresh_margin: float = 60.0
    ) -> None:
        self._fetch = fetch
        self._name = name
        self._clock: Clock = clock or SystemClock()
        self._refresh_margin = refresh_margin
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def token(self) -> str:
        """A valid access token: the cached one, or a new one fetched once for all concurrent callers."""
        cached = self._cached()
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._cached()
            if cached is not None:  # another caller fetched it while we waited
                return cached
            token, lifetime = await self._fetch()
            keep_for = max(lifetime - self._refresh_margin, lifetime / 2)
            self._token, self._expires_at = token, self._clock.now() + timedelta(seconds=keep_for)
            self.fetches += 1
            log.info(f"{self._name}.token.fetched", expires_in=lifetime)
            return token

    def forget(self, token: str | None = None) -> None:
        """Drop the cached token (only if it is still ``token``: a concurrent caller may have
        replaced it already); the next call fetches a new one."""
        if token is None or self._token == token:
            self._token = None
            self._expires_at = None

    def _cached(self) -> str | None:
        if self._token is None or self._expires_at is None or self._clock.now() >= self._expires_at:
            return None
        return self._token

    async def send(
        self, call: Callable[[str], Awaitable[httpx.Response]], rejected: Callable[[httpx.Response], bool],
        *, what: str,
    ) -> httpx.Response:  # fmt: skip
        """``call(token)``; when the reply says the token was refused, a new token and once more."""
        response: httpx.Response | None = None
        for attempt in (1, 2):
            token = await self.token()
            response = await call(token)
            if attempt == 1 and rejected(response):
                log.info(f"{self._name}.token.rejected", path=what, status=response.status_code)
                self.forget(token)
                continue
            break
        assert response is not None
        return response
