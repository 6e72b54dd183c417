"""``malipo mail``: the operator's mailbox from the command line (list and show messages)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

import typer
from rich.console import Console

from malipo.cli.common import USAGE, fail, settings_or_exit
from malipo.db import Database
from malipo.email.models import MailMessage
from malipo.email.service import get_mail, list_mail

mail_app = typer.Typer(help="Operator mail", no_args_is_help=True)

console = Console(stderr=True)


def _as_dict(message: MailMessage) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "created_at": message.created_at.isoformat(),
        "status": message.status,
        "purpose": message.purpose,
        "to": message.to_address,
        "subject": message.subject,
        "sent_at": message.sent_at.isoformat() if message.sent_at is not None else None,
        "error": message.error,
        "client_id": str(message.client_id) if message.client_id is not None else None,
    }


@mail_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(min=1, help="How many messages to show, newest first")] = 50,
    to: Annotated[str | None, typer.Option(help="Only messages to this address")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")] = False,
) -> None:
    """List queued, sent, stored (no SMTP server) and failed messages, newest first."""
    settings = settings_or_exit(existing=True)

    async def main() -> list[MailMessage]:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                return await list_mail(session, limit=limit, to=to)
        finally:
            await db.dispose()

    messages = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps([_as_dict(message) for message in messages]))
        return
    # Two lines a message, to fit 80 columns: the whole id (for `malipo mail show`), when and
    # the status, then the address and the subject. Plain text: stored values are never markup.
    console.print(f"Operator mail: {len(messages)} shown, newest first", highlight=False)
    for message in messages:
        status = message.status if not message.error else f"{message.status} (error: see mail show)"
        typer.echo(f"{message.id}  {message.created_at:%Y-%m-%d %H:%M} UTC  {status}")
        typer.echo(f"    to {message.to_address}: {message.subject}")


@mail_app.command("show")
def show_command(mail_id: Annotated[str, typer.Argument(metavar="ID", help="The message's id")]) -> None:
    """Print one message's text body (its headers go to stderr, so the body can be piped)."""
    try:
        wanted = uuid.UUID(mail_id)
    except ValueError:
        raise fail(f"not a message id: {mail_id} (`malipo mail list` shows them)", USAGE) from None
    settings = settings_or_exit(existing=True)

    async def main() -> MailMessage | None:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                return await get_mail(session, wanted)
        finally:
            await db.dispose()

    message = asyncio.run(main())
    if message is None:
        raise fail(f"no message with id {wanted} (`malipo mail list` shows them)")
    console.print(f"To: {message.to_address}", markup=False, highlight=False)
    console.print(f"Subject: {message.subject}", markup=False, highlight=False)
    console.print(f"Status: {message.status}   Purpose: {message.purpose}", markup=False, highlight=False)
    console.print(f"Created: {message.created_at.isoformat()}", markup=False, highlight=False)
    if message.sent_at is not None:
        console.print(f"Sent: {message.sent_at.isoformat()}", markup=False, highlight=False)
    if message.error:
        console.print(f"Error: {message.error}", markup=False, highlight=False)
    console.print()  # the headers end at a blank line, as in a message
    typer.echo(message.text_body, nl=not message.text_body.endswith("\n"))
