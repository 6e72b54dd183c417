"""``malipo clients``: the merchants (clients) on this gateway, to find the id ``--client`` takes."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from malipo.cli.common import settings_or_exit
from malipo.collections import service as collections
from malipo.db import Database
from malipo.identity import clients as identity

clients_app = typer.Typer(help="Merchants (clients): their ids, for --client.", no_args_is_help=True)


async def _clients(db: Database, status: str | None) -> list[dict[str, Any]]:
    async with db.transaction() as session:
        clients = await identity.list_clients(session, status=status)
        channels = await collections.active_channel_counts(session)
        api_users = await identity.active_api_user_counts(session)
    return [
        {
            "id": str(client.id),
            "name": client.name,
            "type": client.type,
            "status": client.status,
            "email": client.email,
            "demo": client.is_demo,
            "live_channels": channels.get((client.id, "live"), 0),
            "test_channels": channels.get((client.id, "test"), 0),
            "api_users": api_users.get(client.id, 0),
            "created_at": client.created_at.isoformat(),
        }
        for client in clients
    ]


@clients_app.command("list")
def list_command(
    status: Annotated[
        str | None, typer.Option(help="Only clients in this status (pending, active, suspended …)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts")] = False,
) -> None:
    """List every client, oldest first: its id (for --client), name, type, status and what it has."""
    settings = settings_or_exit(existing=True)

    async def main() -> list[dict[str, Any]]:
        db = Database.from_settings(settings)
        try:
            return await _clients(db, status)
        finally:
            await db.dispose()

    clients = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(clients))
        return
    table = Table(title=f"Clients ({len(clients)})", box=None, title_justify="left")
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("name", overflow="fold", ratio=1)
    table.add_column("type", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("channels\nlive/test", no_wrap=True, justify="right")
    for client in clients:
        # Text(): stored values are data, never Rich markup.
        table.add_row(
            client["id"], Text(client["name"]), Text(client["type"]), Text(client["status"]),
            f"{client['live_channels']}/{client['test_channels']}",
        )  # fmt: skip
    Console().print(table)
