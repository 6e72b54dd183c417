"""``malipo disburse FILE --name NAME``: submit a batch file to a running malipo, process it, follow
it with a progress bar until every item is final, and print its reconciliation.

It speaks malipo's own API with a merchant's API key (``--key`` or ``MALIPO_API_KEY``), as the
merchant's own scripts would: what it does, any client can. Running the same command again with
the same file and name is safe: the submission and the processing carry Idempotency-Keys made
from the file's content, so they answer the first batch instead of making a second one.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from malipo.cli.common import USAGE, console, fail

FileArgument = Annotated[Path, typer.Argument(help="The batch: a .csv (UTF-8) or .xlsx file", exists=False)]
NameOption = Annotated[str, typer.Option("--name", help="The batch's name")]
UrlOption = Annotated[str, typer.Option("--url", envvar="MALIPO_URL", help="malipo's base URL (MALIPO_URL)")]
KeyOption = Annotated[
    str, typer.Option("--key", envvar="MALIPO_API_KEY", help="The merchant's API key (MALIPO_API_KEY)")
]
PollOption = Annotated[float, typer.Option("--poll", help="Seconds between progress checks")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Give up following after this many seconds")]

BATCHES = "/api/v1/disbursements/batches"
# What the command reports goes to stdout (for a file or a pipe); the progress bar and
# refusals to stderr (``console``).
out = Console()
EXIT_FAILED_ITEMS = 3  # every item final, some failed (retry them with the API)
EXIT_NEEDS_APPROVAL = 4  # submitted; someone else must approve it before it is processed


def _problem(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return f"{reply.status_code} {reply.text[:300]}"
    errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in body.get("errors") or [])
    return f"{reply.status_code} {body.get('detail') or body.get('title')}" + (
        f" ({errors})" if errors else ""
    )


def _check(reply: httpx.Response, what: str) -> dict[str, Any]:
    if reply.status_code >= 400:
        raise fail(f"{what}: {_problem(reply)}")
    body: dict[str, Any] = reply.json()
    return body


def disburse(
    file: FileArgument,
    name: NameOption,
    url: UrlOption = "http://127.0.0.1:8000",
    key: KeyOption = "",
    poll: PollOption = 1.0,
    timeout: TimeoutOption = 24 * 3600.0,
) -> None:
    """Submit FILE as a disbursement batch, process it, and follow it until every item is final;
    then print the reconciliation (paid and fees beside what the ledger booked).

    Exits 0 when every item was paid and the totals tie, 3 when some items failed (they are
    listed: retry them with POST /api/v1/disbursements/batches/{id}/retry), 4 when the batch
    waits for someone else's approval, 1 on any other problem.
    """
    if not key:
        raise fail("--key (or MALIPO_API_KEY): the merchant's API key is needed", USAGE)
    if not file.is_file():
        raise fail(f"{file}: no such file", USAGE)
    content = file.read_bytes()
    digest = hashlib.sha256(content + b"\0" + name.encode()).hexdigest()[:40]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(
        base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(300.0, connect=10.0)
    ) as http:
        try:
            submitted = _check(
                http.post(
                    f"{BATCHES}/upload", files={"file": (file.name, content)}, data={"batchName": name},
                    # The same boundary each run: the same file and name are the same request.
                    headers={"Idempotency-Key": f"disburse-{digest}",
                             "Content-Type": f"multipart/form-data; boundary=malipo-{digest}"},
                ),
                "submit",
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise fail(f"cannot reach malipo at {url}: {exc}") from None
        batch_id = submitted["batchId"]
        out.print(
            f"Batch [bold]{batch_id}[/]: {submitted['acceptedCount']:,} items accepted "
            f"({submitted['totalAmount']} {submitted['currency']}), {submitted['rejectedCount']:,} rejected"
        )
        _print_rejected(submitted["rejected"])
        if submitted["approvalRequired"] and submitted["status"] == "AwaitingApproval":
            out.print(
                "It is over the approval threshold: someone else holding Disbursements.Approve must "
                f"approve it (POST {BATCHES}/{batch_id}/approve); then run this command again."
            )
            raise typer.Exit(EXIT_NEEDS_APPROVAL)
        _check(
            http.post(
                f"{BATCHES}/{batch_id}/process", headers={"Idempotency-Key": f"disburse-process-{batch_id}"}
            ),
            "process",
        )
        batch = _follow(http, batch_id, submitted["acceptedCount"], poll, timeout)
        report = _check(
            http.get(
                f"/api/v1/reports/disbursements/batches/{batch_id}/reconciliation", params={"items": "failed"}
            ),
            "reconciliation",
        )
    _print_reconciliation(batch, report)
    if not report["totals"]["ties"]:
        raise fail("the batch's totals do not tie to the ledger: tell the operator")
    if batch["counts"]["failed"]:
        raise typer.Exit(EXIT_FAILED_ITEMS)


def _follow(http: httpx.Client, batch_id: str, total: int, poll: float, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("Paying", total=total, detail="")
        while True:
            batch = _check(http.get(f"{BATCHES}/{batch_id}"), "progress")
            counts = batch["counts"]
            final = counts["processed"] + counts["failed"]
            detail = (
                f"paid {counts['processed']:,} · failed {counts['failed']:,} · "
                f"in flight {counts['processing']:,}"
            )
            progress.update(task, completed=final, detail=detail)
            if counts["pending"] + counts["processing"] == 0:
                return batch
            if time.monotonic() > deadline:
                raise fail(
                    f"batch {batch_id} still has items in flight after {timeout:.0f} s: "
                    "follow it with the API"
                )
            time.sleep(poll)


def _print_rejected(rejected: list[dict[str, Any]]) -> None:
    if not rejected:
        return
    table = Table(title="Rejected rows", show_lines=False)
    for column in ("row", "field", "reason", "destination"):
        table.add_column(column)
    for row in rejected[:50]:
        table.add_row(str(row["row"]), row["field"], row["reason"], row["destination"])
    out.print(table)
    if len(rejected) > 50:
        out.print(f"… and {len(rejected) - 50:,} more")


def _print_reconciliation(batch: dict[str, Any], report: dict[str, Any]) -> None:
    totals = report["totals"]
    table = Table(title=f"Reconciliation of {batch['batchName']} ({batch['batchId']})")
    table.add_column("")
    table.add_column("items", justify="right")
    table.add_column(batch["currency"], justify="right")
    counts = batch["counts"]
    table.add_row("requested", f"{totals['items']:,}", totals["requested"])
    table.add_row("paid", f"{counts['processed']:,}", totals["paid"])
    table.add_row("failed", f"{counts['failed']:,}", "")
    table.add_row("fees", "", totals["fees"])
    table.add_row("ledger: paid out", "", totals["ledgerPaid"])
    table.add_row("ledger: fees", "", totals["ledgerFees"])
    table.add_row("ties", "", "yes" if totals["ties"] else "[bold red]NO[/]")
    out.print(table)
    failed = [line for line in report["items"] if line["state"] == "Failed"]
    if failed:
        listing = Table(title="Failed items")
        for column in ("row", "itemId", "destination", "requested"):
            listing.add_column(column)
        for line in failed[:50]:
            listing.add_row(str(line["row"]), line["itemId"], line["destination"], line["requested"])
        out.print(listing)
