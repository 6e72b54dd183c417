"""``malipo sim receiver``: a callback receiver for trying malipo by hand.

It answers every request ``200 {"received": true}`` (so malipo records the callback as
delivered and does not retry it) and prints one block per request to stdout: the time, the
method and path, the headers a merchant's endpoint cares about and the body (pretty JSON when
it is JSON, else the text).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Shown when present; the rest (host, accept, content-length …) is noise for this purpose.
HEADERS_OF_INTEREST = (
    "content-type",
    "user-agent",
    "x-malipo-callback-id",
    "x-request-id",
    "x-hub-signature-256",
    "idempotency-key",
)

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def render(method: str, path: str, headers: dict[str, str], body: bytes, *, now: datetime) -> str:
    """The block printed for one request."""
    lines = [f"--- {now.strftime('%Y-%m-%d %H:%M:%S')}Z {method} {path}"]
    for name in HEADERS_OF_INTEREST:
        if name in headers:
            lines.append(f"{name}: {headers[name]}")
    if body:
        try:
            text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            text = body.decode("utf-8", "replace")
        lines.append(text)
    return "\n".join(lines) + "\n"


def create_receiver(out: TextIO | None = None, clock: Callable[[], datetime] | None = None) -> Starlette:
    """The receiver app; it writes to ``out`` (stdout by default)."""

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        now = clock() if clock else datetime.now(UTC)
        stream = out or sys.stdout
        stream.write(render(request.method, path, dict(request.headers), body, now=now))
        stream.flush()
        return JSONResponse({"received": True})

    routes = [Route("/", receive, methods=_METHODS), Route("/{path:path}", receive, methods=_METHODS)]
    return Starlette(routes=routes)


def run(*, host: str, port: int) -> None:
    """Serve the receiver until interrupted; a port already in use is one line and exit 1."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        print(f"malipo receiver: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"malipo receiver on http://{host}:{port}/ (any path): answers 200, prints each request")
    sys.stdout.flush()
    config = uvicorn.Config(create_receiver(), log_config=None, access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
