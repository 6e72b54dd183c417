"""The outgoing HTTP client malipo's worker and simulators share.

httpx keeps 20 connections open by default and closes the rest after each burst, so a burst of
callbacks or pushes opened and closed connections all the time (a TCP handshake each). And
httpcore's pool looks at every waiting request each time a connection frees: with thousands of
requests waiting for a few connections that is quadratic, and a process can spend all its CPU
there; and before each request it checks every idle connection with a ``select`` call, so
each connection kept open costs a little on every request. So a client here keeps
``connections`` connections open and lets at most that many requests into the pool; the
others wait on a semaphore, which costs nothing per waiter. Few connections suit a peer on the
same machine or network (a simulator: 8); a provider a second away needs as many as requests
in flight (``MALIPO_HTTP_CONNECTIONS`` for the worker).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

CONNECTIONS = 32


class _Slot(httpx.AsyncByteStream):
    """A response body that gives its request's slot back when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, slots: asyncio.Semaphore) -> None:
        self._stream = stream
        self._slots: asyncio.Semaphore | None = slots

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._slots is not None:
                self._slots.release()
                self._slots = None


class _Bounded(httpx.AsyncBaseTransport):
    def __init__(self, transport: httpx.AsyncBaseTransport, limit: int) -> None:
        self._transport = transport
        self._slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._slots.acquire()
        try:
            response = await self._transport.handle_async_request(request)
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Slot(response.stream, self._slots),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


def http_client(timeout: float | httpx.Timeout, *, connections: int = CONNECTIONS) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` keeping up to ``connections`` connections open, with at most that
    many requests in flight (the rest wait their turn)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        timeout=timeout, transport=_Bounded(httpx.AsyncHTTPTransport(limits=limits), connections)
    )
