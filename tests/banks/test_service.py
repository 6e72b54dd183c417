"""The banks registry's rules, on both databases: what the seed holds, reading it, the bank an account
number names, and the operator's changes refused naming the field that is wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from malipo.auth.permissions import default_roles_for
from malipo.banks import service as banks
from malipo.banks.models import Bank
from malipo.banks.seed import KENYAN_BANKS, MOBILE_MONEY_OPERATORS, SEED_BANKS, SIERRA_LEONE_BANKS
from malipo.core.errors import Conflict, MalipoError, NotFound, ValidationFailed
from malipo.db import Database
from malipo.payouts.banks import BANK_CODES

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def _fields(error: MalipoError) -> list[str]:
    return [e.field for e in error.errors]


# -- the seed (no database) ------------------------------------------------------------------


def test_the_seed_follows_the_code_scheme() -> None:
    codes = [bank.code for bank in SEED_BANKS]
    assert len(codes) == len(set(codes))
    assert all(len(code) == 3 and code.isdigit() for code in codes)
    assert {b.code[0] for b in SIERRA_LEONE_BANKS} == {"0"}
    assert {b.code[0] for b in KENYAN_BANKS} == {"1"}
    assert {b.code[0] for b in MOBILE_MONEY_OPERATORS} == {"9"}
    assert {(b.kind, b.rail) for b in SIERRA_LEONE_BANKS} == {("bank", "bankrail")}
    assert {(b.kind, b.rail) for b in KENYAN_BANKS} == {("bank", "mpesa_b2b")}
    assert {(b.kind, b.rail) for b in MOBILE_MONEY_OPERATORS} == {("mobile_money", "mobile_money")}
    for bank in SEED_BANKS:
        assert bank.swift is None or bank.swift[4:6] == bank.country, bank


def test_the_kenyan_banks_are_pay_heros_with_its_codes_kept() -> None:
    assert {b.payhero_code: b.name for b in KENYAN_BANKS} == BANK_CODES
    assert all(b.code == "1" + str(b.payhero_code) for b in KENYAN_BANKS)
    assert next(b for b in KENYAN_BANKS if b.name == "KCB").code == "101"


def test_merchants_read_banks_and_operators_change_them_by_default() -> None:
    assert set(default_roles_for("Banks.Read")) == {
        "SuperAdmin", "CompanyAdmin", "ClientAdmin", "Developer", "ReadOnly",
    }  # fmt: skip
    for change in ("Banks.Create", "Banks.Update"):
        assert set(default_roles_for(change)) == {"SuperAdmin", "CompanyAdmin"}


# -- reading ---------------------------------------------------------------------------------


async def test_a_migrated_database_holds_exactly_the_seed(db: Database) -> None:
    async with db.transaction() as session:
        rows = (await session.scalars(select(Bank).order_by(Bank.code))).all()
    held = [(r.code, r.name, r.swift, r.country, r.kind, r.rail, r.payhero_code, r.active) for r in rows]
    seeded = sorted(
        (b.code, b.name, b.swift, b.country.value, b.kind.value, b.rail.value, b.payhero_code, True)
        for b in SEED_BANKS
    )
    assert held == seeded


async def test_banks_are_listed_by_code_and_filtered(db: Database) -> None:
    async with db.transaction() as session:
        everything = await banks.list_banks(session)
        assert [b.code for b in everything] == sorted(b.code for b in SEED_BANKS)
        sl_banks = await banks.list_banks(session, country="SL", kind="bank")
        assert [b.code for b in sl_banks] == [b.code for b in SIERRA_LEONE_BANKS]
        wallets = await banks.list_banks(session, kind="mobile_money")
        assert [b.name for b in wallets] == [b.name for b in MOBILE_MONEY_OPERATORS]
        assert [b.code for b in await banks.list_banks(session, country="KE", kind="mobile_money")] == [
            "912", "913", "917",
        ]  # fmt: skip
        assert await banks.list_banks(session, active=False) == []
        await banks.update_bank(session, "003", active=False, now=NOW)
        assert [b.code for b in await banks.list_banks(session, active=False)] == ["003"]
        assert "003" not in [b.code for b in await banks.list_banks(session, active=True)]
        for field, value in (("country", "NG"), ("kind", "wallet")):
            with pytest.raises(ValidationFailed) as refused:
                await banks.list_banks(session, **{field: value})
            assert _fields(refused.value) == [field]


async def test_a_bank_is_read_by_its_code(db: Database) -> None:
    async with db.transaction() as session:
        rokel = await banks.get_bank(session, "001")
        assert (rokel.name, rokel.country, rokel.rail) == ("Rokel Commercial Bank", "SL", "bankrail")
        equity = await banks.get_bank(session, "168")
        assert (equity.name, equity.payhero_code, equity.swift) == ("Equity Bank", "68", "EQBLKENA")
        with pytest.raises(NotFound) as missing:
            await banks.get_bank(session, "555")
        assert _fields(missing.value) == ["code"]
        for malformed in ("1", "01", "0001", "abc", "1a2", " 01", "01 ", "\u0661\u0662\u0663", ""):
            with pytest.raises(ValidationFailed) as refused:
                await banks.get_bank(session, malformed)
            assert _fields(refused.value) == ["code"], malformed


async def test_an_account_number_names_its_bank_by_its_first_three_digits(db: Database) -> None:
    async with db.transaction() as session:
        sl = await banks.bank_for_account(session, "0021234567890")
        assert (sl.code, sl.name, sl.country, sl.rail) == (
            "002",
            "Sierra Leone Commercial Bank",
            "SL",
            "bankrail",
        )
        ke = await banks.bank_for_account(session, "1681234567")
        assert (ke.code, ke.name, ke.country, ke.rail, ke.payhero_code) == (
            "168", "Equity Bank", "KE", "mpesa_b2b", "68",
        )  # fmt: skip
        wallet = await banks.bank_for_account(session, "9010761234567")
        assert (wallet.name, wallet.kind) == ("Orange Money SL", "mobile_money")


async def test_an_unknown_prefix_is_refused_naming_it(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(ValidationFailed) as refused:
            await banks.bank_for_account(session, "5551234567")
    assert _fields(refused.value) == ["accountNumber"]
    assert "555" in refused.value.errors[0].message


async def test_an_inactive_banks_account_is_refused(db: Database) -> None:
    async with db.transaction() as session:
        await banks.update_bank(session, "007", active=False, now=NOW)
        with pytest.raises(ValidationFailed) as refused:
            await banks.bank_for_account(session, "0071234567")
        assert _fields(refused.value) == ["accountNumber"]
        assert "007" in refused.value.detail
        assert "not active" in refused.value.detail
        await banks.update_bank(session, "007", active=True, now=NOW)
        assert (await banks.bank_for_account(session, "0071234567")).code == "007"


@pytest.mark.parametrize(
    "account", ["", "001", "12", "001-234567", "0011234567a", "1" * 35, " 0011234", None, 1234]
)
async def test_a_malformed_account_number_is_refused(db: Database, account: Any) -> None:
    async with db.transaction() as session:
        with pytest.raises(ValidationFailed) as refused:
            await banks.bank_for_account(session, account)
    assert _fields(refused.value) == ["accountNumber"]


# -- the operator's changes ------------------------------------------------------------------


async def test_the_operator_adds_a_bank_with_the_usual_rail_of_its_country(db: Database) -> None:
    async with db.transaction() as session:
        sl = await banks.create_bank(
            session, code="014", name="  New Bank (SL) ", country="SL", kind="bank", swift="newbslfr", now=NOW
        )
        ke = await banks.create_bank(
            session, code="180", name="New Bank KE", country="KE", kind="bank", payhero_code="80", now=NOW
        )
        wallet = await banks.create_bank(
            session, code="903", name="QCell Money", country="SL", kind="mobile_money", active=False, now=NOW
        )
    async with db.transaction() as session:
        assert (await banks.get_bank(session, "014")).name == "New Bank (SL)"
        assert (sl.rail, sl.swift, sl.active) == ("bankrail", "NEWBSLFR", True)
        assert (ke.rail, ke.payhero_code) == ("mpesa_b2b", "80")
        assert (wallet.rail, wallet.active) == ("mobile_money", False)
        assert (await banks.bank_for_account(session, "1801234")).name == "New Bank KE"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"code": "14"}, "code"),
        ({"code": "114"}, "code"),  # a Sierra Leone bank's code is 0xx
        ({"code": "914"}, "code"),  # 9xx is for mobile-money operators
        ({"kind": "mobile_money"}, "code"),  # an operator's code is 9xx
        ({"country": "NG"}, "country"),
        ({"kind": "sacco"}, "kind"),
        ({"name": " "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "Bank\u202e"}, "name"),
        ({"swift": "NEWB"}, "swift"),
        ({"swift": "NEWBKENA"}, "swift"),  # a Kenyan BIC for a Sierra Leone bank
        ({"rail": "mobile_money"}, "rail"),  # a bank is not paid on a wallet rail
        ({"rail": "swift"}, "rail"),
        ({"payhero_code": "14"}, "payheroCode"),  # only Kenyan banks have one
        ({"active": "yes"}, "active"),
    ],
)
async def test_a_bad_new_bank_is_refused_naming_the_field(
    db: Database, changes: dict[str, Any], field: str
) -> None:
    given: dict[str, Any] = {"code": "014", "name": "New Bank", "country": "SL", "kind": "bank", **changes}
    async with db.transaction() as session:
        with pytest.raises(ValidationFailed) as refused:
            await banks.create_bank(session, now=NOW, **given)
        assert _fields(refused.value) == [field]
        assert len(await banks.list_banks(session)) == len(SEED_BANKS)


async def test_a_kenyan_banks_code_follows_its_pay_hero_code(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(ValidationFailed) as refused:
            await banks.create_bank(
                session, code="181", name="X", country="KE", kind="bank", payhero_code="80", now=NOW
            )
        assert _fields(refused.value) == ["code"]
        with pytest.raises(ValidationFailed) as refused:
            await banks.create_bank(
                session, code="180", name="X", country="KE", kind="bank", payhero_code="8", now=NOW
            )
        assert _fields(refused.value) == ["payheroCode"]


async def test_a_code_in_use_is_a_conflict(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(Conflict) as taken:
            await banks.create_bank(session, code="001", name="Again", country="SL", kind="bank", now=NOW)
        assert _fields(taken.value) == ["code"]
        assert (await banks.get_bank(session, "001")).name == "Rokel Commercial Bank"


async def test_the_operator_edits_only_the_fields_given(db: Database) -> None:
    later = datetime(2026, 12, 9, tzinfo=UTC)
    async with db.transaction() as session:
        await banks.update_bank(session, "012", name="Keystone Bank Sierra Leone", swift=None, now=later)
    async with db.transaction() as session:
        row = await banks.get_bank(session, "012")
        assert (row.name, row.swift, row.active, row.rail) == (
            "Keystone Bank Sierra Leone",
            None,
            True,
            "bankrail",
        )
        assert row.updated_at == later
        assert row.created_at < later
        await banks.update_bank(session, "012", swift="phbxslfr", rail="mpesa_b2b", now=later)
        assert (row.swift, row.rail) == ("PHBXSLFR", "mpesa_b2b")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"swift": "ABCDKENA"}, "swift"),
        ({"active": None}, "active"),
        ({"rail": "mobile_money"}, "rail"),
        ({"rail": None}, "rail"),
    ],
)
async def test_a_bad_edit_is_refused_naming_the_field_and_changes_nothing(
    db: Database, changes: dict[str, Any], field: str
) -> None:
    async with db.transaction() as session:
        with pytest.raises(ValidationFailed) as refused:
            await banks.update_bank(session, "001", now=NOW, **{"active": False, **changes})
        assert _fields(refused.value) == [field]
        row = await banks.get_bank(session, "001")
        assert (row.name, row.swift, row.active, row.rail) == (
            "Rokel Commercial Bank", "RCBKSLFR", True, "bankrail",
        )  # fmt: skip


async def test_editing_an_unknown_or_malformed_code_is_refused(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(NotFound):
            await banks.update_bank(session, "555", active=False, now=NOW)
        with pytest.raises(ValidationFailed):
            await banks.update_bank(session, "5555", active=False, now=NOW)
