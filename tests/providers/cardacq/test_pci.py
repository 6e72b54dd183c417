"""PCI hygiene of the client and the simulator: the card number never appears in a log line, a
repr, an error's text or the simulator's state, but as BIN and last 4; the CVC and the API key
never at all."""

from __future__ import annotations

import httpx
import pytest
import structlog

from malipo.providers.base import CaptureRequest, RailError
from malipo.providers.cardacq.acs import CODE_THAT_PASSES
from malipo.providers.cardacq.client import CardAcquirerClient
from malipo.providers.cardacq.schemas import AuthorisationRequest
from tests.fixtures.servers import free_port
from tests.providers.cardacq.conftest import Acquirer, answer_challenge, card

PAN = "4000000000003220"
CVV = "987"
MASKED = "400000******3220"


def test_the_request_repr_shows_neither_the_pan_nor_the_cvv() -> None:
    request = card(PAN, cvv=CVV)

    assert PAN not in repr(request)
    assert CVV not in repr(request)
    assert request.reference in repr(request)
    assert request.masked_pan == MASKED


def test_the_wire_model_hides_the_card_number() -> None:
    body = {"reference": "A1", "amount": 100, "currency": "KES",
            "card": {"number": PAN, "expiry_month": 1, "expiry_year": 2030, "cvc": CVV},
            "three_ds": {"return_url": "https://shop.example.test/back"}}  # fmt: skip
    model = AuthorisationRequest.model_validate(body)

    assert PAN not in repr(model) + str(model.model_dump())
    assert CVV not in repr(model)


async def test_the_pan_is_never_logged_nor_kept_by_the_simulator(
    acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    secret_key = "very-secret-card-key-0042"
    acquirer.sim.api_keys = frozenset({*(acquirer.sim.api_keys or ()), secret_key})
    secretive = CardAcquirerClient(base_url=acquirer.url, api_key=secret_key, http=http)
    request = card(PAN, return_url=acquirer.return_url, cvv=CVV)

    with structlog.testing.capture_logs() as logs:
        started = await secretive.authorise(request)
        back = await answer_challenge(http, started, CODE_THAT_PASSES)
        await secretive.complete_challenge(request.reference, back["paRes"])
        await secretive.capture(CaptureRequest(request.reference, "CAP-1", 100, "KES"))
        await secretive.query(request.reference)
        with pytest.raises(RailError) as refused:  # the same reference with another body
            await secretive.authorise(card(PAN, currency="USD", reference=request.reference))
        assert started.acs_url is not None
        page = await http.get(started.acs_url)

    text = repr(logs) + repr(secretive) + repr(acquirer.sim.authorisations) + page.text + str(refused.value)
    assert logs  # the calls were logged at all
    assert MASKED in repr(logs)
    assert PAN not in text
    assert CVV not in repr(logs)
    assert secret_key not in text


async def test_no_error_text_holds_the_pan() -> None:
    errors: list[RailError] = []
    async with httpx.AsyncClient(timeout=5.0) as http:
        closed = CardAcquirerClient(base_url=f"http://127.0.0.1:{free_port()}", api_key="k", http=http)
        for request in (card(PAN), card(PAN, currency="XXX"), card(PAN, expiry_month=0)):
            with structlog.testing.capture_logs() as logs, pytest.raises(RailError) as failed:
                await closed.authorise(request)
            errors.append(failed.value)
            assert PAN not in repr(logs)

    for error in errors:
        chain = [error, error.__cause__, error.__context__]
        text = " ".join(f"{e!s} {e!r}" for e in chain if e is not None) + error.result_desc
        assert PAN not in text
