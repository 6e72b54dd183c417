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
