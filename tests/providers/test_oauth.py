"""The rails' shared OAuth token cache: one fetch for concurrent callers, kept until a margin
before expiry, and a refused token fetched again once and the call sent again once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from malipo.core.clock import FrozenClock
from malipo.providers.airtel.client import AirtelError
from malipo.providers.daraja.client import DarajaError
from malipo.providers.oauth import ProviderCallError, TokenCache


async def test_concurrent_callers_share_one_fetch_until_it_nearly_expires() -> None:
    clock = FrozenClock()
    issued: list[str] = []

    async def fetch() -> tuple[str, float]:
        await asyncio.sleep(0.01)
        issued.append(f"t{len(issued)}")
        return issued[-1], 100.0

    cache = TokenCache(fetch, name="test", clock=clock, refresh_margin=10.0)
    assert set(await asyncio.gather(*(cache.token() for _ in range(10)))) == {"t0"}
    clock.advance(timedelta(seconds=89))
    assert await cache.token() == "t0"
    clock.advance(timedelta(seconds=2))  # within the margin: a new one
    assert await cache.token() == "t1"
    assert cache.fetches == 2


async def test_a_refused_token_is_replaced_once_and_the_call_sent_once_more() -> None:
    fetched = 0

    async def fetch() -> tuple[str, float]:
        nonlocal fetched
        fetched += 1
        return f"t{fetched}", 3600.0

    cache = TokenCache(fetch, name="test")
    sent: list[str] = []

    async def call(token: str) -> httpx.Response:
        sent.append(token)
        return httpx.Response(401 if token == "t1" else 200)

    reply = await cache.send(call, lambda r: r.status_code == 401, what="/x")
    assert (reply.status_code, sent) == (200, ["t1", "t2"])

    async def always_refused(token: str) -> httpx.Response:
        sent.append(token)
        return httpx.Response(401)

    reply = await cache.send(always_refused, lambda r: r.status_code == 401, what="/x")
    assert reply.status_code == 401, "refused twice: the caller's error, never a loop"
    assert sent[2:] == ["t2", "t3"]


def test_both_rails_errors_have_one_shape() -> None:
    shape = {"retryable": True, "status": 500, "error_message": "m", "retry_after": 30.0}
    for error in (DarajaError("x", **shape), AirtelError("x", **shape)):  # type: ignore[arg-type]
        assert isinstance(error, ProviderCallError)
        assert (error.retryable, error.status, error.error_message, error.retry_after) == (
            True,
            500,
            "m",
            30.0,
        )
