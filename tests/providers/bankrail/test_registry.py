"""Which bank rail serves a mode, and the simulator mounted inside malipo at /_sim/bank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from malipo.app import create_app
from malipo.config import Settings
from malipo.providers.bankrail.client import BankRailClient
from malipo.providers.base import BankTransfer, Status
from malipo.providers.registry import bank_transfer_for, live_rails
from tests.providers.bankrail.conftest import transfer

PUBLIC = "https://pay.example.test"
LIVE_RAIL = "https://rail.example.test/iso"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"env": "test", "var_dir": tmp_path / "var", "public_url": PUBLIC}
    return Settings(**(values | overrides))


def rail_for(settings: Settings, mode: str) -> BankRailClient:
    rail = bank_transfer_for(settings, mode)
    assert isinstance(rail, BankTransfer)
    assert isinstance(rail, BankRailClient)
    return rail


def test_sandbox_always_goes_to_the_simulator(tmp_path: Path) -> None:
    configured = make_settings(tmp_path, bank_rail_base_url=LIVE_RAIL, bank_rail_api_key="live-key")

    assert rail_for(configured, "test").base_url == f"{PUBLIC}/_sim/bank"


def test_live_goes_to_the_configured_rail(tmp_path: Path) -> None:
    configured = make_settings(tmp_path, bank_rail_base_url=LIVE_RAIL, bank_rail_api_key="live-key")

    assert rail_for(configured, "live").base_url == LIVE_RAIL
    assert live_rails(configured)["bank"] == LIVE_RAIL


def test_live_without_a_rail_goes_to_the_simulator(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)

    assert rail_for(settings, "live").base_url == f"{PUBLIC}/_sim/bank"
    assert live_rails(settings)["bank"] == "simulator"


def test_the_simulator_may_live_elsewhere(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, bank_rail_simulator_url="http://127.0.0.1:8702")

    assert rail_for(settings, "test").base_url == "http://127.0.0.1:8702"


def test_a_rail_url_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="MALIPO_BANK_RAIL_API_KEY"):
        make_settings(tmp_path, bank_rail_base_url=LIVE_RAIL)


def test_the_settlement_account_fits_an_account_id(tmp_path: Path) -> None:
    assert make_settings(tmp_path).bank_settlement_account == "SIMULATOR-SETTLEMENT-0001"
    with pytest.raises(ValidationError, match="bank_settlement_account"):
        make_settings(tmp_path, bank_settlement_account="A" * 35)


async def test_malipo_mounts_the_simulator_that_sandbox_transfers_reach(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_url="http://malipo.internal", bank_rail_simulator_delay=60.0)
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), timeout=10.0) as http:
        rail = bank_transfer_for(settings, "test", http)
        request = transfer()
        accepted = await rail.send_transfer(request)
        queried = await rail.query_transfer(request.end_to_end_id)
    await app.state.bank_simulator.aclose()

    assert accepted.outcome.status is Status.PENDING
    assert queried.status is Status.PENDING  # the callback (and settlement) is a minute away
    assert request.end_to_end_id in app.state.bank_simulator.transfers


def test_no_simulator_is_mounted_when_it_lives_elsewhere(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, bank_rail_simulator_url="http://127.0.0.1:8702"))

    assert app.state.bank_simulator is None
    assert all(getattr(route, "path", "") != "/_sim/bank" for route in app.routes)
