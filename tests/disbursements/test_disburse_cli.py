"""``malipo disburse FILE --name …`` against a running malipo (a real process speaking its API):
submit, process, follow with a progress bar, print the reconciliation; run twice, one batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from malipo.disbursements.models import DisbursementBatch
from malipo.payouts.models import Payout
from tests.disbursements.helpers import FEE, INITIATOR_INVALID, PAID
from tests.fixtures.world import World, fund_payments

ROOT = Path(__file__).resolve().parents[2]


def _disburse(world: World, file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MALIPO_API_KEY": world.a.test_key, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "malipo.cli", "disburse", str(file), "--name", "December payroll",
         "--url", world.url, "--poll", "0.2", *extra],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
    )  # fmt: skip


async def test_disburse_submits_processes_follows_and_prints_the_reconciliation(
    world: World, tmp_path: Path
) -> None:
    await fund_payments(world, 10_000_00)
    before = await world.balances()
    file = tmp_path / "payroll.csv"
    file.write_text(
        "destination,amount,narration\n"
        f"{PAID},100,Salary\n"
        "0712345678,200,Salary\n"
        f"{INITIATOR_INVALID},300,Salary\n"
        "not-a-phone,400,Salary\n"
    )
    run = _disburse(world, file)
    assert run.returncode == 3, run.stdout + run.stderr  # every item final, one failed
    out = run.stdout
    assert "3 items accepted" in out
    assert "1 rejected" in out
    assert "not-a-phone" in out, "the rejected row is shown"
    assert "Reconciliation of December payroll" in out
    assert "300.00" in out  # paid: 100 + 200
    assert "ties" in out
    assert "yes" in out
    assert INITIATOR_INVALID in out, "the failed item is listed"

    after = await world.balances()
    assert after.payments == (before.payments[0] - 300_00, 0)
    assert after.service == (before.service[0] - 2 * FEE, 0)
    await world.verify_ledger()

    async with world.db.transaction() as session:
        payouts = await session.scalar(select(func.count()).select_from(Payout))
    again = _disburse(world, file)
    assert again.returncode == 3, again.stdout + again.stderr
    async with world.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(DisbursementBatch)) == 1
        assert await session.scalar(select(func.count()).select_from(Payout)) == payouts, "nothing paid twice"


def test_disburse_without_a_key_says_what_is_missing(tmp_path: Path) -> None:
    file = tmp_path / "payroll.csv"
    file.write_text("destination,amount\n254711222333,100\n")
    env = {k: v for k, v in os.environ.items() if k != "MALIPO_API_KEY"} | {"PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "malipo.cli", "disburse", str(file), "--name", "x"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "MALIPO_API_KEY" in run.stdout + run.stderr
