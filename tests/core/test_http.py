"""The shared outgoing HTTP client: at most ``connections`` requests in flight, the rest wait,
and every request gives its turn back however it ends."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from malipo.core.http_client import http_client
from tests.fixtures.servers import LiveServer


class _Counting:
    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.app = Starlette(routes=[Route("/", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> PlainTextResponse:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.005)
        self.now -= 1
        return PlainTextResponse(f"ok {(await request.json())['n']}")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_requests_beyond_the_connections_wait_their_turn_and_all_are_answered() -> None:
    server = _Counting()
    with LiveServer(server.app) as live:
        async with http_client(10.0, connections=4) as client:
            replies = await asyncio.gather(*(client.post(live.url, json={"n": n}) for n in range(200)))
            assert [r.text for r in replies] == [f"ok {n}" for n in range(200)]
            assert server.most <= 4

            async def after_failures() -> set[int]:
                # Failures give their turn back too: a refused connection, then a streamed
                # reply closed before it was read.
                for _ in range(6):
                    with pytest.raises(httpx.ConnectError):
                        await client.post(f"http://127.0.0.1:{_closed_port()}/", json={})
                for _ in range(6):
                    async with client.stream("POST", live.url, json={"n": 0}):
                        pass
                replies = await asyncio.gather(*(client.post(live.url, json={"n": n}) for n in range(8)))
                return {r.status_code for r in replies}

            # A turn lost would leave fewer than 4 and, after 12 of them, none: this would hang.
            assert await asyncio.wait_for(after_failures(), timeout=10) == {200}


async def _drop_after_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A peer that reads the whole request, then closes the connection without a reply."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    await reader.readexactly(length)
    writer.close()


async def test_a_peer_that_took_the_request_and_dropped_the_connection_is_not_a_connect_error() -> None:
    """malipo's rails send again only after a connect error (the rail never had the request): a
    request that went out and got no reply must not look like one, or a payment could go twice."""
    server = await asyncio.start_server(_drop_after_reading, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, http_client(5.0, connections=2) as client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.post(f"http://127.0.0.1:{port}/pay", json={"amount": 100})
        assert not isinstance(raised.value, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        # Whereas nothing listening is a connect error: the request never went out.
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{_closed_port()}/pay", json={"amount": 100})


async def test_requests_waiting_for_a_connection_do_not_time_out() -> None:
    """A burst far beyond the connections waits its turn, however long the queue: only the time on
    a connection counts against the timeout (a simulator's burst of callbacks must not fail)."""

    async def slow(request: Request) -> PlainTextResponse:
        await asyncio.sleep(0.05)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", slow, methods=["POST"])])
    with LiveServer(app) as live:
        # 40 requests of 50 ms over 2 connections queue for ~1 s: twice the whole timeout.
        async with http_client(httpx.Timeout(0.5), connections=2) as client:
            replies = await asyncio.gather(*(client.post(live.url, json={}) for _ in range(40)))
    assert {reply.status_code for reply in replies} == {200}
