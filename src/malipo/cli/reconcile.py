"""``malipo reconcile --date D``: reconcile a day's books against the rails and print the report."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from malipo.cli.common import USAGE, console, fail, settings_or_exit
from malipo.core.money import Money

DateOption = Annotated[
    str, typer.Option("--date", help="The day to reconcile, YYYY-MM-DD (the last 48 hours)")
]
ModeOption = Annotated[str, typer.Option("--mode", help="live (default) or test (sandbox)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report's totals and exceptions as JSON")]


def reconcile(day: DateOption, mode: ModeOption = "live", as_json: JsonOption = False) -> None:
    """Reconcile DAY against the rails: settle collections left without an answer, pull M-Pesa's
    statement and ask Airtel about open items, match them to malipo's records, book money that
    arrived with no record into suspense, and store the report (rerunning a day updates it).

    Exits 1 when a rail's part could not be reconciled (M-Pesa keeps 48 hours only), or when the
    totals do not tie to the ledger."""
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        raise fail(f"--date {day}: not a date (YYYY-MM-DD)", USAGE) from None
    if mode not in ("live", "test"):
        raise fail(f"--mode must be live or test, not {mode}", USAGE)
    # Imported here: the other commands start without the domains.
    from malipo.core.clock import SystemClock
    from malipo.db import Database
    from malipo.reconciliation import service
    from malipo.reconciliation.models import ItemKind
    from malipo.worker.registry import BatchContext, load_job_modules

    settings = settings_or_exit(existing=True)
    load_job_modules(settings.job_modules)

    async def main() -> service.RunResult:
        db = Database.from_settings(settings)
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
                return await service.reconcile_day(
                    BatchContext(db, SystemClock(), settings, http), wanted, mode
                )
        finally:
            await db.dispose()

    result = asyncio.run(main())
    run = result.run
    exceptions = [i for i in result.items if i.kind != ItemKind.MATCHED]
    if as_json:
        out: dict[str, Any] = {
            "date": wanted.isoformat(),
            "mode": mode,
            "status": run.status,
            "notes": run.notes,
        }
        out["totals"] = run.totals
        out["exceptions"] = [
            {"id": str(i.id), "kind": i.kind, "rail": i.rail, "receipt": i.receipt,
             "railAmount": i.rail_amount, "malipoAmount": i.malipo_amount, "status": i.status}
            for i in exceptions
        ]  # fmt: skip
        typer.echo(json.dumps(out, indent=2))
    else:
        _print(run.totals, exceptions)
    for rail, note in run.notes.items():
        console.print(f"[red]{rail}: not reconciled:[/red] {note}", highlight=False, soft_wrap=True)
    ties = all(figures["ledger"]["ties"] for figures in run.totals.values())
    if not ties:
        console.print("[red]the report does NOT tie to the ledger[/red]")
    if run.notes or not ties:
        raise typer.Exit(1)


def _print(totals: dict[str, Any], exceptions: list[Any]) -> None:
    for currency, figures in totals.items():

        def money(minor: int, currency: str = currency) -> str:
            return Money(minor, currency).format()

        table = Table(title=f"Reconciliation totals, {currency}")
        for column in ("kind", "count", "rail", "malipo"):
            table.add_column(column)
        for key in ("matched", "missingInMalipo", "missingAtRail", "amountMismatch"):
            entry = figures[key]
            table.add_row(key, str(entry["count"]), money(entry["railAmount"]), money(entry["malipoAmount"]))
        console.print(table)
        ledger = figures["ledger"]
        console.print(
            f"rail total {money(figures['railTotal'])}, malipo total {money(figures['malipoTotal'])}; "
            f"ledger clearing {money(ledger['clearingIn'])} against {money(ledger['expected'])}: "
            + ("ties" if ledger["ties"] else "does NOT tie")
        )
    for item in exceptions:
        amount = item.rail_amount if item.rail_amount is not None else item.malipo_amount
        console.print(f"{item.id} {item.kind} {item.rail} {item.receipt or '-'} {amount} {item.status}")
