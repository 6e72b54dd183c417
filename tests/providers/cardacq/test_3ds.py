"""The 3-D Secure challenge over HTTP as the payer's browser goes through it: the ACS page, its
one-time code, the 303 back to the merchant with the paRes, and complete_challenge."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from malipo.providers.base import CardRequestRefused, CardState, CardStatus
from malipo.providers.cardacq.acs import CODE_THAT_FAILS, CODE_THAT_PASSES, PARES_VALIDITY
from malipo.providers.cardacq.client import CardAcquirerClient
from tests.providers.cardacq.conftest import Acquirer, answer_challenge, card

CHALLENGE = "4000000000003220"


def _payload(pares: str) -> dict[str, object]:
    body = pares.partition(".")[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def _resigned(pares: str, **changes: object) -> str:
    """The paRes with its payload changed and its old signature kept (a forgery)."""
    signature = pares.partition(".")[2]
    payload = _payload(pares) | changes
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{forged}.{signature}"


async def test_the_right_code_authenticates_and_the_authorisation_is_approved(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    request = card(CHALLENGE, return_url=acquirer.return_url)
    started = await client.authorise(request)

    page = await http.get(started.acs_url or "")
    assert "KES 1250.00" in page.text
    assert "Visa •••• 3220" in page.text
    assert CHALLENGE not in page.text
    back = await answer_challenge(http, started, CODE_THAT_PASSES)
    assert back["session"] == "cs_1"  # the merchant's own query is kept
    assert back["reference"] == request.reference
    outcome = await client.complete_challenge(request.reference, back["paRes"])

    assert outcome.status is CardStatus.APPROVED
    assert outcome.state is CardState.AUTHORISED
    assert outcome.response_code == "00"
    assert outcome.auth_code is not None
    assert (outcome.trans_status, outcome.eci) == ("Y", "05")
    assert outcome.authentication_value is not None
    assert len(outcome.authentication_value) == 28
    assert outcome.acquirer_reference == started.acquirer_reference
    assert (await client.query(request.reference)).state is CardState.AUTHORISED


async def test_a_mastercard_authenticated_by_challenge_carries_eci_02(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    request = card("5555555555554444", return_url=acquirer.return_url, challenge_mandated=True)
    started = await client.authorise(request)

    back = await answer_challenge(http, started, CODE_THAT_PASSES)
    outcome = await client.complete_challenge(request.reference, back["paRes"])

    assert (outcome.status, outcome.trans_status, outcome.eci) == (CardStatus.APPROVED, "Y", "02")


async def test_the_browser_following_redirects_lands_on_the_return_url(
    client: CardAcquirerClient, acquirer: Acquirer
) -> None:
    request = card(CHALLENGE, return_url=acquirer.return_url)
    started = await client.authorise(request)

    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as browser:
        landed = await browser.post(started.acs_url or "", data={"code": CODE_THAT_PASSES})

    assert str(landed.url).startswith(acquirer.return_url.partition("?")[0])
    assert landed.history[0].status_code == 303
    outcome = await client.complete_challenge(request.reference, landed.json()["paRes"])
    assert outcome.status is CardStatus.APPROVED


@pytest.mark.parametrize(
    ("code", "action"), [(CODE_THAT_FAILS, "verify"), ("999999", "verify"), ("", "cancel")]
)
async def test_a_wrong_code_or_cancel_fails_3ds(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient, code: str, action: str
) -> None:
    request = card(CHALLENGE, return_url=acquirer.return_url)
    started = await client.authorise(request)

    back = await answer_challenge(http, started, code, action)
    outcome = await client.complete_challenge(request.reference, back["paRes"])

    assert outcome.status is CardStatus.FAILED_3DS
    assert outcome.state is CardState.FAILED_3DS
    assert outcome.trans_status == "N"
    assert (outcome.auth_code, outcome.authentication_value) == (None, None)


@pytest.mark.parametrize(("pan", "code"), [("4000008400001629", "05"), ("4000008260003178", "51")])
async def test_an_issuer_may_decline_after_authentication(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient, pan: str, code: str
) -> None:
    request = card(pan, return_url=acquirer.return_url)
    started = await client.authorise(request)

    back = await answer_challenge(http, started, CODE_THAT_PASSES)
    outcome = await client.complete_challenge(request.reference, back["paRes"])

    assert (outcome.status, outcome.response_code) == (CardStatus.DECLINED, code)
    assert outcome.trans_status == "Y"


async def test_a_tampered_pares_is_refused_and_changes_nothing(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    request = card(CHALLENGE, return_url=acquirer.return_url)
    started = await client.authorise(request)
    back = await answer_challenge(http, started, CODE_THAT_FAILS)
    assert _payload(back["paRes"])["ts"] == "N"

    forged = _resigned(back["paRes"], ts="Y", eci="05")
    with pytest.raises(CardRequestRefused) as refused:
        await client.complete_challenge(request.reference, forged)
    with pytest.raises(CardRequestRefused) as garbage:
        await client.complete_challenge(request.reference, "not-a-pares")

    assert refused.value.reason == garbage.value.reason == "invalid_pares"
    assert (refused.value.not_taken, refused.value.retryable) == (True, False)
    assert (await client.query(request.reference)).state is CardState.PENDING_3DS
    # The real paRes still completes it (the forgery was not remembered under its key).
    outcome = await client.complete_challenge(request.reference, back["paRes"])
    assert outcome.status is CardStatus.FAILED_3DS


async def test_a_pares_of_another_authorisation_is_refused(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    mine, theirs = (
        card(CHALLENGE, return_url=acquirer.return_url),
        card(CHALLENGE, return_url=acquirer.return_url),
    )
    await client.authorise(mine)
    other = await client.authorise(theirs)
    back = await answer_challenge(http, other, CODE_THAT_PASSES)

    with pytest.raises(CardRequestRefused) as refused:
        await client.complete_challenge(mine.reference, back["paRes"])

    assert refused.value.reason == "invalid_pares"


async def test_completing_twice_with_the_same_pares_answers_the_same(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    request = card(CHALLENGE, return_url=acquirer.return_url)
    back = await answer_challenge(http, await client.authorise(request), CODE_THAT_PASSES)

    first = await client.complete_challenge(request.reference, back["paRes"])
    again = await client.complete_challenge(request.reference, back["paRes"])

    assert first == again
    assert first.status is CardStatus.APPROVED


async def test_the_acs_page_answers_once(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    started = await client.authorise(card(CHALLENGE, return_url=acquirer.return_url))
    await answer_challenge(http, started, CODE_THAT_PASSES)

    again = await http.get(started.acs_url or "")
    reposted = await http.post(started.acs_url or "", data={"code": CODE_THAT_PASSES})
    unknown = await http.get(f"{acquirer.url}/acs/no-such-transaction")

    assert (again.status_code, reposted.status_code, unknown.status_code) == (410, 410, 404)


async def test_a_pares_too_old_is_refused(
    client: CardAcquirerClient, acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    request = card(CHALLENGE, return_url=acquirer.return_url)
    back = await answer_challenge(http, await client.authorise(request), CODE_THAT_PASSES)

    acquirer.clock.advance(PARES_VALIDITY)
    with pytest.raises(CardRequestRefused) as refused:
        await client.complete_challenge(request.reference, back["paRes"])

    assert refused.value.reason == "pares_expired"
