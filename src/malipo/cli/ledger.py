"""``malipo ledger``: checks on the books."""

from __future__ import annotations

import asyncio

import typer

from malipo.cli.common import settings_or_exit
from malipo.db import Database
from malipo.ledger.service import verify_ledger

ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)


@ledger_app.command("verify")
def verify() -> None:
    """Prove every journal balances and every account equals the sum of its postings.

    Prints the first discrepancy (and how many there are) and exits 1 if the books do not add up.
    """
    settings = settings_or_exit(existing=True)

    async def main() -> list[str]:
        db = Database.from_settings(settings)
        try:
            async with db.transaction() as session:
                return await verify_ledger(session)
        finally:
            await db.dispose()

    problems = asyncio.run(main())
    if problems:
        typer.echo(f"ledger does NOT add up: {problems[0]}", err=True)
        if len(problems) > 1:
            typer.echo(f"... and {len(problems) - 1} more discrepancies", err=True)
        raise typer.Exit(1)
    typer.echo("ledger OK: every journal balances and every balance equals its postings")
