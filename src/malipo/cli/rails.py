"""``malipo rail-balances``: ask every rail for its balance now, then print the newest answers."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
from rich.table import Table

from malipo.cli.common import settings_or_exit
from malipo.core.clock import SystemClock
from malipo.core.http_client import http_client
from malipo.core.money import Money
from malipo.db import Database
from malipo.railbalances import service
from malipo.railbalances.models import RailBalance


def rail_balances(
    refresh: Annotated[bool, typer.Option(help="Ask the rails now (else print what is stored)")] = True,
    wait: Annotated[float, typer.Option(help="Seconds to wait for answers that come by callback")] = 20.0,
) -> None:
    """Ask each rail (M-Pesa shortcodes, Airtel) for its balance in each mode and print the newest
    answers. Daraja answers at malipo's callback URL, so the gateway (`malipo serve`) must be up
    and reachable at MALIPO_PUBLIC_URL for its answers to arrive."""
    settings = settings_or_exit(existing=True)

    async def main() -> list[tuple[RailBalance, RailBalance | None]]:
        db = Database.from_settings(settings)
        try:
            if refresh:
                async with http_client(30.0) as http:
                    asked = set(await service.ask_all(db, settings, http, SystemClock()))
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline:
                    async with db.transaction() as session:
                        open_ = [
                            r
                            for r in await service.latest(session)
                            if r.id in asked and r.status == service.ASKED
                        ]
                    if not open_:
                        break
                    await asyncio.sleep(0.25)
            async with db.transaction() as session:
                rows = await service.latest(session)
                return [
                    (row, row if row.status == service.ANSWERED else await service.latest_answered(
                        session, row.mode, row.rail, row.party))
                    for row in rows
                ]  # fmt: skip
        finally:
            await db.dispose()

    found = asyncio.run(main())
    table = Table(title="Rail balances")
    for column in ("mode", "rail", "party", "status", "account", "available", "asked", "answered"):
        table.add_column(column)
    for row, answered in found:
        accounts = (answered.accounts if answered is not None else None) or [
            {"name": "-", "currency": "", "amounts": []}
        ]
        for account in accounts:
            amounts = account["amounts"]
            available = Money(int(amounts[0]), account["currency"]).format() if amounts else "-"
            table.add_row(
                row.mode, row.rail, row.party,
                row.status + (f" {row.result_code}" if row.status == "failed" else ""),
                f"{account['name']} {account['currency']}".strip(), available,
                f"{row.asked_at:%Y-%m-%d %H:%M:%S}",
                f"{answered.answered_at:%Y-%m-%d %H:%M:%S}" if answered and answered.answered_at else "-",
            )  # fmt: skip
    from rich.console import Console

    Console().print(table)
    if not found:
        typer.echo("no balance asked yet")
