"""Capture, void and refund against the simulator, the 7-day expiry on its clock, and idempotency."""

from __future__ import annotations

from datetime import timedelta

import pytest

from malipo.providers.base import (
    CaptureRequest,
    CardRequestRefused,
    CardState,
    CardStatus,
    RefundRequest,
    VoidRequest,
)
from malipo.providers.cardacq.client import CardAcquirerClient
from tests.providers.cardacq.conftest import Acquirer, card


async def _authorised(client: CardAcquirerClient) -> str:
    request = card()
    assert (await client.authorise(request)).status is CardStatus.APPROVED
    return request.reference


def capture(reference: str, amount: int, capture_id: str = "CAP-1", currency: str = "KES") -> CaptureRequest:
    return CaptureRequest(
        authorisation_reference=reference, capture_id=capture_id, amount=amount, currency=currency
    )


def refund(reference: str, amount: int, refund_id: str) -> RefundRequest:
    return RefundRequest(
        authorisation_reference=reference, refund_id=refund_id, amount=amount, currency="KES"
    )


async def test_a_full_capture_claims_the_whole_hold(client: CardAcquirerClient) -> None:
    reference = await _authorised(client)

    captured = await client.capture(capture(reference, 125000))

    assert (captured.amount, captured.released_amount, captured.state) == (125000, 0, CardState.CAPTURED)
    assert captured.acquirer_reference.startswith("cap_")
    queried = await client.query(reference)
    assert (queried.state, queried.captured_amount) == (CardState.CAPTURED, 125000)


async def test_a_partial_capture_releases_the_rest_and_happens_once(client: CardAcquirerClient) -> None:
    reference = await _authorised(client)

    captured = await client.capture(capture(reference, 100000))
    with pytest.raises(CardRequestRefused) as again:
        await client.capture(capture(reference, 25000, capture_id="CAP-2"))

    assert (captured.amount, captured.released_amount) == (100000, 25000)
    assert again.value.reason == "already_captured"
    assert (await client.query(reference)).captured_amount == 100000


async def test_more_than_authorised_cannot_be_captured(client: CardAcquirerClient) -> None:
    reference = await _authorised(client)

    with pytest.raises(CardRequestRefused) as refused:
        await client.capture(capture(reference, 125001))
    with pytest.raises(CardRequestRefused) as other_currency:
        await client.capture(capture(reference, 100, currency="USD"))

    assert refused.value.reason == "amount_exceeds_authorised"
    assert refused.value.result_code == 13  # ISO 8583: invalid amount
    assert (refused.value.not_taken, refused.value.retryable) == (True, False)
    assert other_currency.value.reason == "currency_mismatch"
    # Refused requests are not remembered: the same capture id may then capture what is allowed.
    assert (await client.capture(capture(reference, 125000))).amount == 125000


async def test_the_same_capture_sent_twice_captures_once(
    client: CardAcquirerClient, acquirer: Acquirer
) -> None:
    reference = await _authorised(client)

    first = await client.capture(capture(reference, 50000, capture_id="CAP-RESENT"))
    second = await client.capture(capture(reference, 50000, capture_id="CAP-RESENT"))

    assert first == second
    assert len(acquirer.sim.authorisations[reference].modifications) == 1


async def test_a_void_releases_the_hold_and_nothing_can_be_captured_after(client: CardAcquirerClient) -> None:
    reference = await _authorised(client)

    voided = await client.void(VoidRequest(authorisation_reference=reference, void_id="VOID-1"))
    with pytest.raises(CardRequestRefused) as refused:
        await client.capture(capture(reference, 1000))

    assert (voided.released_amount, voided.currency, voided.state) == (125000, "KES", CardState.VOIDED)
    assert refused.value.reason == "invalid_state"
    assert (await client.query(reference)).state is CardState.VOIDED


async def test_a_captured_authorisation_cannot_be_voided(client: CardAcquirerClient) -> None:
    reference = await _authorised(client)
    await client.capture(capture(reference, 125000))

    with pytest.raises(CardRequestRefused) as refused:
        await client.void(VoidRequest(authorisation_reference=reference, void_id="VOID-1"))

    assert refused.value.reason == "already_captured"


async def test_refunds_add_up_to_the_captured_amount_and_no_more(client: CardAcquirerClient) -> None:
    reference = await _authorised(client)
    await client.capture(capture(reference, 100000))

    first = await client.refund(refund(reference, 40000, "REF-1"))
    with pytest.raises(CardRequestRefused) as too_much:
        await client.refund(refund(reference, 60001, "REF-2"))
    rest = await client.refund(refund(reference, 60000, "REF-2"))
    with pytest.raises(CardRequestRefused) as nothing_left:
        await client.refund(refund(reference, 1, "REF-3"))

    assert (first.refunded_amount, first.state) == (40000, CardState.PARTIALLY_REFUNDED)
    assert too_much.value.reason == "amount_exceeds_captured"
    assert (rest.refunded_amount, rest.state) == (100000, CardState.REFUNDED)
    assert nothing_left.value.reason == "invalid_state"
    assert (await client.query(reference)).refunded_amount == 100000


async def test_an_uncaptured_authorisation_cannot_be_refunded(client: CardAcquirerClient) -> None:
    reference = await _authorised(client)

    with pytest.raises(CardRequestRefused) as refused:
        await client.refund(refund(reference, 100, "REF-1"))

    assert refused.value.reason == "invalid_state"


async def test_an_authorisation_expires_after_seven_days(
    client: CardAcquirerClient, acquirer: Acquirer
) -> None:
    reference = await _authorised(client)
    later = await _authorised(client)
    started = await client.query(reference)
    assert started.expires_at == acquirer.clock.now() + timedelta(days=7)

    acquirer.clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert (await client.capture(capture(later, 100))).state is CardState.CAPTURED  # still in time
    acquirer.clock.advance(timedelta(seconds=1))
    with pytest.raises(CardRequestRefused) as refused:
        await client.capture(capture(reference, 100))
    with pytest.raises(CardRequestRefused) as void_refused:
        await client.void(VoidRequest(authorisation_reference=reference, void_id="VOID-1"))

    assert refused.value.reason == void_refused.value.reason == "authorisation_expired"
    queried = await client.query(reference)
    assert (queried.status, queried.state) == (CardStatus.APPROVED, CardState.EXPIRED)
    assert (await client.query(later)).state is CardState.CAPTURED  # a capture is not undone


async def test_the_same_authorisation_reference_twice_holds_once(
    client: CardAcquirerClient, acquirer: Acquirer
) -> None:
    request = card()
    before = len(acquirer.sim.authorisations)

    first = await client.authorise(request)
    again = await client.authorise(request)

    assert first == again
    assert first.acquirer_reference is not None
    assert len(acquirer.sim.authorisations) == before + 1
    assert request.reference in acquirer.sim.replays


async def test_a_reference_reused_for_another_card_is_refused(
    client: CardAcquirerClient, acquirer: Acquirer
) -> None:
    request = card()
    await client.authorise(request)

    with pytest.raises(CardRequestRefused) as refused:
        await client.authorise(card("5555555555554444", reference=request.reference))

    assert refused.value.reason == "idempotency_conflict"
    assert acquirer.sim.authorisations[request.reference].last4 == "4242"


async def test_an_unknown_authorisation(client: CardAcquirerClient) -> None:
    queried = await client.query("AUTH-NEVER-SENT")
    with pytest.raises(CardRequestRefused) as refused:
        await client.capture(capture("AUTH-NEVER-SENT", 100))

    assert (queried.status, queried.not_found) == (CardStatus.UNKNOWN, True)
    assert refused.value.reason == "not_found"
