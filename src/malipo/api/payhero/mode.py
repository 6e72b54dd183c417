"""``X-Malipo-Mode``: which world a Pay Hero reply comes from.

The same routes serve live mode (the API user's Pay Hero pair, or a live key) and sandbox mode
(a ``mk_test_`` key): separate wallets, channels and transactions. Every reply on ``/api/v2`` and
``/mailer`` whose caller is known, errors included, says which: ``live`` or ``sandbox``. A reply to
a caller not yet known (a wrong password, no credentials) carries no mode.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from malipo.http.errors import PAYHERO_PREFIXES
from malipo.identity.models import KeyMode
from malipo.identity.principals import Principal

MODE_HEADER = b"x-malipo-mode"
_MODE_NAMES = {KeyMode.LIVE: b"live", KeyMode.TEST: b"sandbox"}


class ModeHeader:
    """Pure ASGI; reads the principal the route's guard keeps on the request (``admit``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PAYHERO_PREFIXES):
            await self.app(scope, receive, send)
            return
        state: dict[str, object] = scope.setdefault("state", {})

        async def send_with_mode(message: Message) -> None:
            if message["type"] == "http.response.start":
                principal = state.get("principal")
                if isinstance(principal, Principal):
                    headers = [*message.get("headers", ()), (MODE_HEADER, _MODE_NAMES[principal.mode])]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_mode)
