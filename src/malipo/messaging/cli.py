"""``malipo mail``: the operator's mailbox from the command line (list and show messages)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from malipo.cli_common import settings_or_exit
from malipo.db import Database
from malipo.messaging.mail import get_mail, list_mail
from malipo.messaging.models import MailMessage

mail_app = typer.Typer(help="Operator mail", no_args_is_help=True)

console = Console(stderr=True)


@mail_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(min=1, help="How many messages to show, newest first")] = 50,
    to: Annotated[str | None, typer.Option(help="Only messages to this address")] = None,
) -> None:
    """List queued, sent, stored (no SMTP server) and failed messages, newest first."""
    settings = settings_or_exit()

    async def main() -> list[MailMessage]:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                return await list_mail(session, limit=limit, to=to)
        finally:
            await db.dispose()

    messages = asyncio.run(main())
    table = Table(title=f"Operator mail ({len(messages)} shown)")
    table.add_column("id", no_wrap=True)
    table.add_column("created_at", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("to", overflow="fold")
    table.add_column("subject", overflow="fold")
    for message in messages:
        status = message.status if not message.error else f"{message.status} (error)"
        # Text(): stored values are data, never Rich markup ("[bold]" in a subject stays as typed).
        table.add_row(
            str(message.id),
            message.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            Text(status),
            Text(message.to_address),
            Text(message.subject),
        )
    Console().print(table)


@mail_app.command("show")
def show_command(mail_id: Annotated[str, typer.Argument(metavar="ID", help="The message's id")]) -> None:
    """Print one message's text body (its headers go to stderr, so the body can be piped)."""
    try:
        wanted = uuid.UUID(mail_id)
    except ValueError:
        console.print(f"[red]not a message id:[/red] {mail_id}")
        raise typer.Exit(2) from None
    settings = settings_or_exit()

    async def main() -> MailMessage | None:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                return await get_mail(session, wanted)
        finally:
            await db.dispose()

    message = asyncio.run(main())
    if message is None:
        console.print(f"[red]no message with id[/red] {wanted}")
        raise typer.Exit(1)
    console.print(f"To: {message.to_address}", markup=False, highlight=False)
    console.print(f"Subject: {message.subject}", markup=False, highlight=False)
    console.print(f"Status: {message.status}   Purpose: {message.purpose}", markup=False, highlight=False)
    console.print(f"Created: {message.created_at.isoformat()}", markup=False, highlight=False)
    if message.sent_at is not None:
        console.print(f"Sent: {message.sent_at.isoformat()}", markup=False, highlight=False)
    if message.error:
        console.print(f"Error: {message.error}", markup=False, highlight=False)
    typer.echo(message.text_body, nl=not message.text_body.endswith("\n"))
