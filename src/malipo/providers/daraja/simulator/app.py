"""The Daraja simulator app: every API's handlers in one :class:`DarajaSimulator`, and the
entry points (``create_simulator_app``, ``run``, ``main``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from malipo.core.clock import Clock
from malipo.core.logging import configure_logging, get_logger
from malipo.providers.daraja.simulator.c2b import C2bHandlers
from malipo.providers.daraja.simulator.commands import CommandHandlers
from malipo.providers.daraja.simulator.outcomes import DEFAULT_PORT
from malipo.providers.daraja.simulator.payments import PaymentHandlers
from malipo.providers.daraja.simulator.statement import StatementHandlers
from malipo.providers.daraja.simulator.status import StatusHandlers
from malipo.providers.daraja.simulator.stk import StkHandlers

log = get_logger("malipo.providers.daraja.simulator")


class DarajaSimulator(
    StkHandlers, PaymentHandlers, StatusHandlers, C2bHandlers, CommandHandlers, StatementHandlers
):
    """The state and handlers behind the simulator app; see the module docstring for behaviour.

    ``credentials`` maps consumer keys to secrets (``None``: any non-empty pair is accepted).
    ``passkeys`` maps STK shortcodes to passkeys, on top of the public sandbox pair; an unlisted
    shortcode takes any passkey unless ``strict_passkeys`` ("Merchant does not exist").
    ``initiators`` maps B2C initiator names to security credentials (``None``: any non-empty).
    """

    def _routes(self) -> list[Route]:
        return [
            *super()._routes(),
            Route("/oauth/v1/generate", self._oauth, methods=["GET"]),
            Route("/mpesa/stkpush/v1/processrequest", self._stk_push, methods=["POST"]),
            Route("/mpesa/stkpushquery/v1/query", self._stk_query, methods=["POST"]),
            Route("/mpesa/b2c/v3/paymentrequest", self._b2c, methods=["POST"]),
            Route("/mpesa/b2b/v1/paymentrequest", self._b2b, methods=["POST"]),
            Route("/mpesa/transactionstatus/v1/query", self._transaction_status, methods=["POST"]),
            Route("/mpesa/reversal/v1/request", self._reversal, methods=["POST"]),
            Route("/mpesa/accountbalance/v1/query", self._account_balance, methods=["POST"]),
        ]


# --------------------------------------------------------------------------- entry points


def create_simulator_app(
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
) -> Starlette:
    """A Daraja simulator as an ASGI app; ``app.state.simulator`` is its :class:`DarajaSimulator`."""
    return DarajaSimulator(
        callback_delay=callback_delay,
        credentials=credentials,
        passkeys=passkeys,
        strict_passkeys=strict_passkeys,
        initiators=initiators,
        token_ttl=token_ttl,
        stk_expiry=stk_expiry,
        b2c_funds=b2c_funds,
        b2b_funds=b2b_funds,
        callback_attempts=callback_attempts,
        callback_backoff=callback_backoff,
        callback_timeout=callback_timeout,
        clock=clock,
    ).app


def run(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_json: bool = False, log_level: str = "INFO",
    **options: Any,
) -> None:  # fmt: skip
    """Serve the simulator until interrupted; ``options`` go to :func:`create_simulator_app`."""
    configure_logging(json=log_json, level=log_level)
    log.info("daraja_sim.starting", host=host, port=port)
    uvicorn.run(create_simulator_app(**options), host=host, port=port, log_config=None, access_log=False)


def main(port: int = DEFAULT_PORT) -> None:
    """``malipo sim daraja --port``: the simulator on loopback with a 1 s callback delay."""
    run(port=port, callback_delay=1.0)
