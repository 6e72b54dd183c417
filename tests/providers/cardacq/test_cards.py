"""The client against the simulator over real HTTP: what every documented test card does."""

from __future__ import annotations

import pytest

from malipo.providers.base import CardAcquirer, CardState, CardStatus
from malipo.providers.cardacq.client import CardAcquirerClient
from malipo.providers.cardacq.testcards import TEST_CARDS
from tests.providers.cardacq.conftest import Acquirer, card

APPROVED_CARDS = [
    ("4242424242424242", "visa", "07"),
    ("4000056655665556", "visa", "07"),
    ("5555555555554444", "mastercard", "00"),
    ("2223003122003222", "mastercard", "00"),
    ("378282246310005", "amex", "07"),
    ("6011111111111117", "discover", "07"),  # not in the table: any other valid card is approved
]

DECLINED_CARDS = [
    ("4000000000000002", "05", "Do not honour"),
    ("4000000000009995", "51", "Not sufficient funds"),
    ("4000000000009987", "41", "Lost card, pick up"),
    ("4000000000009979", "43", "Stolen card, pick up"),
    ("4000000000000069", "54", "Expired card"),
    ("4000000000000127", "N7", "Incorrect CVC (CVV2 failure)"),
    ("4000000000000119", "96", "System malfunction"),
    ("4100000000000019", "59", "Suspected fraud"),
]

CHALLENGE_CARDS = ["4000000000003220", "4000002760003184", "4000008400001629", "4000008260003178"]


def test_the_client_is_a_card_acquirer(client: CardAcquirerClient) -> None:
    assert isinstance(client, CardAcquirer)
    assert client.name == "cardacq"


def test_every_card_of_the_table_is_tested() -> None:
    tested = {pan for pan, *_ in APPROVED_CARDS + DECLINED_CARDS} | set(CHALLENGE_CARDS)
    tested |= {"4000000000003055", "4000008400001280"}
    assert set(TEST_CARDS) <= tested


@pytest.mark.parametrize(("pan", "brand", "eci"), APPROVED_CARDS)
async def test_an_approved_card_is_authorised_with_an_auth_code(
    client: CardAcquirerClient, acquirer: Acquirer, pan: str, brand: str, eci: str
) -> None:
    request = card(pan)

    outcome = await client.authorise(request)

    assert outcome.status is CardStatus.APPROVED
    assert outcome.state is CardState.AUTHORISED
    assert (outcome.response_code, outcome.response_desc) == ("00", "Approved")
    assert outcome.auth_code is not None
    assert len(outcome.auth_code) == 6
    assert outcome.reference == request.reference
    assert outcome.acquirer_reference == acquirer.sim.authorisations[request.reference].id
    assert (outcome.amount, outcome.currency) == (125000, "KES")
    assert (outcome.brand, outcome.card_bin, outcome.card_last4) == (brand, pan[:6], pan[-4:])
    assert outcome.eci == eci  # no 3-D Secure: not authenticated
    assert outcome.trans_status is None
    assert outcome.acs_url is None


@pytest.mark.parametrize(("pan", "code", "words"), DECLINED_CARDS)
async def test_a_declining_card_is_declined_with_its_iso_code(
    client: CardAcquirerClient, pan: str, code: str, words: str
) -> None:
    outcome = await client.authorise(card(pan))

    assert outcome.status is CardStatus.DECLINED
    assert outcome.state is CardState.DECLINED
    assert (outcome.response_code, outcome.response_desc) == (code, words)
    assert outcome.auth_code is None


async def test_a_number_failing_luhn_is_declined_as_invalid(client: CardAcquirerClient) -> None:
    outcome = await client.authorise(card("4242424242424241"))

    assert (outcome.status, outcome.response_code) == (CardStatus.DECLINED, "14")


async def test_a_card_past_its_expiry_month_is_declined(
    client: CardAcquirerClient, acquirer: Acquirer
) -> None:
    now = acquirer.clock.now()
    last_month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)

    expired = await client.authorise(card(expiry_year=last_month[0], expiry_month=last_month[1]))
    this_month = await client.authorise(card(expiry_year=now.year, expiry_month=now.month))

    assert (expired.status, expired.response_code) == (CardStatus.DECLINED, "54")
    assert this_month.status is CardStatus.APPROVED


@pytest.mark.parametrize("pan", CHALLENGE_CARDS)
async def test_a_challenge_card_asks_for_3ds_with_an_acs_page(
    client: CardAcquirerClient, acquirer: Acquirer, pan: str
) -> None:
    outcome = await client.authorise(card(pan))

    assert outcome.status is CardStatus.CHALLENGE_REQUIRED
    assert outcome.state is CardState.PENDING_3DS
    assert outcome.response_code == "1A"
    assert outcome.trans_status == "C"
    assert outcome.three_ds_trans_id
    assert outcome.acs_url == f"{acquirer.url}/acs/{outcome.three_ds_trans_id}"
    assert outcome.auth_code is None
    assert outcome.eci is None


async def test_a_frictionless_card_is_authenticated_without_a_challenge(client: CardAcquirerClient) -> None:
    outcome = await client.authorise(card("4000000000003055"))

    assert outcome.status is CardStatus.APPROVED
    assert (outcome.trans_status, outcome.eci) == ("Y", "05")
    assert outcome.authentication_value is not None
    assert len(outcome.authentication_value) == 28
    assert outcome.acs_url is None


async def test_a_failed_3ds_lookup_authorises_nothing(client: CardAcquirerClient) -> None:
    outcome = await client.authorise(card("4000008400001280"))

    assert outcome.status is CardStatus.FAILED_3DS
    assert outcome.trans_status == "U"
    assert outcome.auth_code is None


async def test_a_mandated_challenge_is_run_on_any_card_that_supports_3ds(client: CardAcquirerClient) -> None:
    mastercard = await client.authorise(card("5555555555554444", challenge_mandated=True))
    amex = await client.authorise(card("378282246310005", challenge_mandated=True))

    assert mastercard.status is CardStatus.CHALLENGE_REQUIRED
    assert amex.status is CardStatus.APPROVED  # 378282246310005 does not support 3-D Secure
