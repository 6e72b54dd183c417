"""Pay Hero's own server reads a JSON body whatever the Content-Type; some of its clients rely on it.

Python's py-payhero, for one, posts ``json.dumps(...)`` with ``requests`` and no Content-Type. On
the Pay Hero surface a body without a JSON content type (none, or text/plain) is read as JSON.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from malipo.http.errors import PAYHERO_PREFIXES

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_READ_AS_JSON = (b"", b"text/plain")


class JsonBodyByDefault:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and scope["path"].startswith(PAYHERO_PREFIXES)
        ):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            found = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            if found.split(b";")[0].strip().lower() in _READ_AS_JSON:
                scope = dict(scope, headers=[*headers, (b"content-type", b"application/json")])
        await self.app(scope, receive, send)
