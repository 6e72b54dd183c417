"""Which card acquirer serves a mode, and the simulator mounted inside malipo at /_sim/cards."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from malipo.app import create_app
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.providers.base import CaptureRequest, CardAcquirer, CardRequestRefused, CardStatus
from malipo.providers.cardacq.acs import CODE_THAT_PASSES
from malipo.providers.cardacq.client import CardAcquirerClient
from malipo.providers.registry import card_acquirer_for, live_rails
from tests.providers.cardacq.conftest import card

PUBLIC = "https://pay.example.test"
LIVE_ACQUIRER = "https://acquirer.example.test/api"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"env": "test", "var_dir": tmp_path / "var", "public_url": PUBLIC}
    return Settings(**(values | overrides))


def acquirer_for(settings: Settings, mode: str) -> CardAcquirerClient:
    acquirer = card_acquirer_for(settings, mode)
    assert isinstance(acquirer, CardAcquirer)
    assert isinstance(acquirer, CardAcquirerClient)
    return acquirer


def test_sandbox_always_goes_to_the_simulator(tmp_path: Path) -> None:
    configured = make_settings(
        tmp_path, card_acquirer_base_url=LIVE_ACQUIRER, card_acquirer_api_key="live-key"
    )

    assert acquirer_for(configured, "test").base_url == f"{PUBLIC}/_sim/cards"


def test_live_goes_to_the_configured_acquirer(tmp_path: Path) -> None:
    configured = make_settings(
        tmp_path, card_acquirer_base_url=LIVE_ACQUIRER, card_acquirer_api_key="live-key"
    )

    assert acquirer_for(configured, "live").base_url == LIVE_ACQUIRER
    assert live_rails(configured)["cards"] == LIVE_ACQUIRER
    assert "live-key" not in repr(acquirer_for(configured, "live"))


def test_live_without_an_acquirer_goes_to_the_simulator(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)

    assert acquirer_for(settings, "live").base_url == f"{PUBLIC}/_sim/cards"
    assert live_rails(settings)["cards"] == "simulator"


def test_the_simulator_may_live_elsewhere(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, card_acquirer_simulator_url="http://127.0.0.1:8703")

    assert acquirer_for(settings, "test").base_url == "http://127.0.0.1:8703"
    assert acquirer_for(settings, "live").base_url == "http://127.0.0.1:8703"


def test_an_acquirer_url_without_its_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="MALIPO_CARD_ACQUIRER_API_KEY"):
        make_settings(tmp_path, card_acquirer_base_url=LIVE_ACQUIRER)


async def test_malipo_mounts_the_simulator_with_its_acs_page_on_its_clock(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_url="http://malipo.internal")
    clock = FrozenClock()
    app = create_app(settings, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://malipo.internal", timeout=10.0
    ) as http:
        acquirer = card_acquirer_for(settings, "test", http)
        request = card("4000000000003220", return_url="http://malipo.internal/checkout/return")
        started = await acquirer.authorise(request)
        assert started.acs_url == f"http://malipo.internal/_sim/cards/acs/{started.three_ds_trans_id}"
        page = await http.get(started.acs_url)
        posted = await http.post(started.acs_url, data={"code": CODE_THAT_PASSES})
        pares = httpx.URL(posted.headers["location"]).params["paRes"]
        outcome = await acquirer.complete_challenge(request.reference, pares)
        clock.advance(timedelta(days=7))
        with pytest.raises(CardRequestRefused) as expired:
            await acquirer.capture(CaptureRequest(request.reference, "CAP-1", 100, "KES"))
    await app.state.card_simulator.aclose()

    assert page.status_code == 200
    assert posted.status_code == 303
    assert (outcome.status, outcome.eci) == (CardStatus.APPROVED, "05")
    assert expired.value.reason == "authorisation_expired"
    assert request.reference in app.state.card_simulator.authorisations


def test_no_simulator_is_mounted_when_it_lives_elsewhere(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, card_acquirer_simulator_url="http://127.0.0.1:8703"))

    assert app.state.card_simulator is None
    assert all(getattr(route, "path", "") != "/_sim/cards" for route in app.routes)
