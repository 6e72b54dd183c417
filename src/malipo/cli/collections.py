"""``malipo channels``: a merchant's payment channels from the operator's command line."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.cli.common import USAGE, console, fail, settings_or_exit
from malipo.collections import service as collections
from malipo.collections.c2b import service as c2b
from malipo.collections.c2b.models import C2bRule
from malipo.collections.c2b.tasks import register_channel_urls
from malipo.collections.models import PaymentChannel
from malipo.core.clock import SystemClock
from malipo.core.errors import MalipoError, NotFound, ValidationFailed
from malipo.core.http_client import http_client
from malipo.core.money import Money
from malipo.db import Database
from malipo.identity import clients

channels_app = typer.Typer(
    help="Merchants' payment channels (paybills, tills, bank accounts).", no_args_is_help=True
)

T = TypeVar("T")

ClientOption = Annotated[str, typer.Option("--client", help="The merchant's client id")]
ModeOption = Annotated[str, typer.Option("--mode", help="test (sandbox) or live")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")]


# The service names the API's fields; the command line has flags.
FLAGS = {
    "channel_type": "--type",
    "short_code": "--short-code",
    "account_number": "--account-number",
    "description": "--description",
    "mode": "--mode",
}


def _client_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise fail(f"--client {raw}: not a client id (`malipo clients list` shows them)", USAGE) from None


def _mode(raw: str) -> str:
    if raw not in ("test", "live"):
        raise fail(f"--mode must be test or live, not {raw}", USAGE)
    return raw


def _in_flags(exc: MalipoError) -> str:
    """The refusal in the command line's words: ``--type: must be …``, not ``channel_type: …``."""
    if exc.errors:
        return "; ".join(f"{FLAGS.get(e.field, e.field)}: {e.message}" for e in exc.errors)
    return exc.detail


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction; a refusal (unknown client, bad input) exits 1 with its reason."""
    settings = settings_or_exit(existing=True)

    async def main() -> T:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except ValidationFailed as exc:
        raise fail(_in_flags(exc), USAGE) from None
    except MalipoError as exc:
        raise fail(f"refused: {_in_flags(exc)}") from None


async def _require_client(session: AsyncSession, client_id: uuid.UUID) -> None:
    if await clients.client_by_id(session, client_id) is None:
        raise NotFound(f"no client {client_id} (`malipo clients list` shows them)")


def _as_dict(channel: PaymentChannel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "client_id": str(channel.client_id),
        "mode": channel.mode,
        "channel_type": channel.channel_type,
        "short_code": channel.short_code,
        "account_number": channel.account_number,
        "description": channel.description,
        "is_active": channel.is_active,
    }


def _print(channels: list[PaymentChannel], title: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps([_as_dict(c) for c in channels]))
        return
    table = Table(title=title)
    for column in ("id", "mode", "type", "short code", "account", "description", "active"):
        table.add_column(column, overflow="fold")
    for c in channels:
        # Text(): stored values are data, never Rich markup.
        table.add_row(
            str(c.id), c.mode, c.channel_type, Text(c.short_code), Text(c.account_number or ""),
            Text(c.description), "yes" if c.is_active else "no",
        )  # fmt: skip
    Console().print(table)


@channels_app.command("list")
def list_command(
    client: ClientOption,
    mode: ModeOption = "live",
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Only active or only inactive channels")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List a merchant's channels in one mode (its payments wallet channel is opened if need be)."""
    client_id, wanted = _client_id(client), _mode(mode)

    async def work(session: AsyncSession) -> list[PaymentChannel]:
        await _require_client(session, client_id)
        found, _total = await collections.list_channels(
            session, collections.acting_for(client_id, wanted), is_active=active, page=1, per=10_000,
            now=SystemClock().now(),
        )  # fmt: skip
        return found

    _print(_run(work), f"Payment channels of {client_id} ({wanted})", as_json)


@channels_app.command("add")
def add_command(
    client: ClientOption,
    channel_type: Annotated[str, typer.Option("--type", help="paybill, till or bank")],
    short_code: Annotated[str, typer.Option("--short-code", help="The paybill or till number")],
    description: Annotated[str, typer.Option("--description", help="What the merchant calls it")],
    account_number: Annotated[
        str | None, typer.Option("--account-number", help="The account at the paybill (required for bank)")
    ] = None,
    mode: ModeOption = "live",
    as_json: JsonOption = False,
) -> None:
    """Register a merchant's paybill, till or bank account as a channel; prints its id."""
    client_id, wanted = _client_id(client), _mode(mode)

    async def work(session: AsyncSession) -> PaymentChannel:
        await _require_client(session, client_id)
        return await collections.create_channel(
            session, collections.acting_for(client_id, wanted), channel_type=channel_type.strip().lower(),
            short_code=short_code.strip(), account_number=(account_number or "").strip() or None,
            description=description.strip(), now=SystemClock().now(),
        )  # fmt: skip

    channel = _run(work)
    if as_json:
        typer.echo(json.dumps(_as_dict(channel)))
        return
    typer.echo(channel.id)
    console.print(f"channel {channel.id} added: {channel.channel_type} {channel.short_code} ({channel.mode})")


def _set_active(channel_id: int, active: bool) -> PaymentChannel:
    async def work(session: AsyncSession) -> PaymentChannel:
        channel = await collections.find_channel(session, channel_id)
        return await collections.set_channel_active(session, channel, active, now=SystemClock().now())

    return _run(work)


@channels_app.command("deactivate")
def deactivate_command(
    channel_id: Annotated[int, typer.Argument(metavar="ID", help="The channel's id")],
) -> None:
    """Refuse new collections to a channel (the payments wallet channel stays active)."""
    channel = _set_active(channel_id, False)
    typer.echo(f"channel {channel.id} deactivated")


@channels_app.command("activate")
def activate_command(
    channel_id: Annotated[int, typer.Argument(metavar="ID", help="The channel's id")],
) -> None:
    """Accept collections to a channel again."""
    channel = _set_active(channel_id, True)
    typer.echo(f"channel {channel.id} activated")


@channels_app.command("register-c2b")
def register_c2b_command(
    channel_id: Annotated[int, typer.Argument(metavar="CHANNEL_ID", help="The channel's id")],
    rule: Annotated[
        str, typer.Option("--rule", help="acceptAll, or requireKnownReference (an open payment request's)")
    ] = "acceptAll",
    min_amount: Annotated[str | None, typer.Option("--min", help="Refuse smaller payments (KES)")] = None,
    max_amount: Annotated[str | None, typer.Option("--max", help="Refuse larger payments (KES)")] = None,
    response_type: Annotated[
        str, typer.Option("--response-type", help="Completed or Cancelled: M-Pesa's choice on a timeout")
    ] = "Completed",
    callback_url: Annotated[
        str | None, typer.Option("--callback-url", help="Where each payment is posted (Pay Hero's shape)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set a channel's C2B rules and register its validation and confirmation URLs with Daraja now
    (the same as POST /api/v1/channels/{id}/register-c2b, without waiting for the worker)."""
    if rule not in tuple(C2bRule):
        raise fail(f"--rule must be acceptAll or requireKnownReference, not {rule}", USAGE)
    if response_type not in ("Completed", "Cancelled"):
        raise fail(f"--response-type must be Completed or Cancelled, not {response_type}", USAGE)
    settings = settings_or_exit(existing=True)

    def limit(raw: str | None, flag: str) -> int | None:
        try:
            return None if raw is None else Money.parse(raw, collections.CURRENCY, field=flag).amount
        except ValidationFailed as exc:
            raise fail(f"{flag}: {exc.errors[0].message if exc.errors else exc.detail}", USAGE) from None

    rules = c2b.C2bRules(
        C2bRule(rule), limit(min_amount, "--min"), limit(max_amount, "--max"), response_type, callback_url
    )

    async def work(session: AsyncSession) -> int:
        channel = await collections.find_channel(session, channel_id)
        await c2b.configure_c2b(session, settings, channel, rules, now=SystemClock().now())
        return channel.id

    _run(work)

    async def register() -> bool | None:
        db = Database.from_settings(settings)
        try:
            async with http_client(30.0, connections=2) as http:
                return await register_channel_urls(db, settings, http, SystemClock(), channel_id)
        finally:
            await db.dispose()

    try:
        registered = asyncio.run(register())
    except Exception as exc:  # a refusal Daraja may lift: the worker's queued job tries again
        raise fail(f"Daraja did not answer the registration ({exc}); the worker will retry") from None
    if as_json:
        typer.echo(json.dumps({"channel_id": channel_id, "registered": bool(registered)}))
    elif registered:
        typer.echo(f"channel {channel_id}: C2B URLs registered")
    else:
        raise fail(
            f"channel {channel_id}: Daraja refused the C2B registration "
            f"(see GET /api/v1/channels/{channel_id}/c2b)"
        )
