"""``malipo sim …``: run a rail's simulator on its own, e.g. for a client under development."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

sim_app = typer.Typer(
    help="Run a provider simulator on its own (the same one `malipo serve` mounts).", no_args_is_help=True
)


@sim_app.command("daraja")
def daraja(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8701,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    callback_delay: Annotated[float, typer.Option(help="Seconds before a callback is sent")] = 1.0,
) -> None:
    """Safaricom Daraja (OAuth, STK push and query, B2C, transaction status), with test numbers."""
    from malipo.providers.daraja.simulator import run

    _serve(run, host, port, callback_delay=callback_delay)


@sim_app.command("airtel")
def airtel(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8704,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    callback_url: Annotated[
        str | None, typer.Option(help="The app's callback URL (Airtel's portal setting); unset: none sent")
    ] = None,
    callback_delay: Annotated[float, typer.Option(help="Seconds before the payer answers")] = 1.0,
) -> None:
    """Airtel Money's Open API (OAuth, USSD push and enquiry, disbursement, balance), with test numbers."""
    from malipo.providers.airtel.simulator import run

    _serve(run, host, port, callback_url=callback_url, callback_delay=callback_delay)


@sim_app.command("bank")
def bank(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8702,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    callback_delay: Annotated[float, typer.Option(help="Seconds before a status callback is sent")] = 1.0,
) -> None:
    """The bank rail (ISO 20022 credit transfers and status reports), with test account numbers."""
    from malipo.providers.bankrail.simulator import run

    _serve(run, host, port, callback_delay=callback_delay)


@sim_app.command("cards")
def cards(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8703,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
) -> None:
    """The card acquirer with its 3-D Secure challenge page (ACS), with test card numbers."""
    from malipo.providers.cardacq.simulator import run

    _serve(run, host, port)


def _serve(run: Callable[..., None], host: str, port: int, **options: Any) -> None:
    """Run a simulator's ``run`` logging as `malipo serve` does (MALIPO_LOG_JSON, MALIPO_LOG_LEVEL);
    ``options`` go to the simulator."""
    from malipo.cli.common import log_json, logging_or_exit

    settings = logging_or_exit()
    run(host=host, port=port, log_json=log_json(settings), log_level=settings.log_level, **options)


@sim_app.command("receiver")
def receiver(
    port: Annotated[int, typer.Option(help="Port to listen on")] = 9000,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
) -> None:
    """A callback receiver: answers 200 to any request and prints its method, path, headers and body.

    Use http://127.0.0.1:9000/cb as a payment's callback_url to see what your endpoint would get.
    """
    from malipo.providers.receiver import run

    run(host=host, port=port)
