"""What the client makes of an acquirer that fails or refuses: whether a request may have been
taken decides whether the domain may retry or fail it (``RailError.not_taken``)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from malipo.providers.base import CardRequestRefused, CardStatus, RailError
from malipo.providers.cardacq.client import CardAcquirerClient
from tests.fixtures.servers import free_port
from tests.providers.cardacq.conftest import API_KEY, Acquirer, card


def failing_client(answer: Callable[[httpx.Request], httpx.Response]) -> CardAcquirerClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return CardAcquirerClient(base_url="http://acquirer.test", api_key=API_KEY, http=http)


def raising(error: type[httpx.HTTPError]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)  # type: ignore[call-arg]

    return answer


async def test_without_the_key_the_acquirer_answers_401_and_nothing_is_taken(
    acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    before = len(acquirer.sim.authorisations)
    for key in ("", "wrong-key"):
        keyless = CardAcquirerClient(base_url=acquirer.url, api_key=key, http=http)
        with pytest.raises(RailError) as refused:
            await keyless.authorise(card())
        assert (refused.value.not_taken, refused.value.retryable) == (True, False)
        assert "unauthorized" in str(refused.value)
        assert not isinstance(refused.value, CardRequestRefused)
        assert (await keyless.query("AUTH-1")).status is CardStatus.UNKNOWN

    raw = await http.get(f"{acquirer.url}/v1/authorisations/AUTH-1")
    assert raw.status_code == 401
    assert len(acquirer.sim.authorisations) == before


async def test_a_post_without_an_idempotency_key_is_refused(
    acquirer: Acquirer, http: httpx.AsyncClient
) -> None:
    answer = await http.post(
        f"{acquirer.url}/v1/authorisations", json={}, headers={"Authorization": f"Bearer {API_KEY}"}
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "idempotency_key_missing"


async def test_an_invalid_authorisation_is_not_sent(acquirer: Acquirer, client: CardAcquirerClient) -> None:
    before = len(acquirer.sim.authorisations)

    with pytest.raises(RailError) as invalid:
        await client.authorise(card(currency="XXX", expiry_month=13))

    assert (invalid.value.not_taken, invalid.value.retryable) == (True, False)
    assert "currency" in str(invalid.value)
    assert "card.expiry_month" in str(invalid.value)
    assert len(acquirer.sim.authorisations) == before


async def test_a_refused_connection_is_not_taken_and_may_be_retried() -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        closed = CardAcquirerClient(base_url=f"http://127.0.0.1:{free_port()}", api_key=API_KEY, http=http)
        with pytest.raises(RailError) as failed:
            await closed.authorise(card())
        queried = await closed.query("AUTH-1")

    assert (failed.value.not_taken, failed.value.retryable) == (True, True)
    assert failed.value.result_code == 96
    assert (queried.status, queried.not_found) == (CardStatus.UNKNOWN, False)
    assert queried.error


@pytest.mark.parametrize("error", [httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_a_connection_never_made_is_not_taken(error: type[httpx.HTTPError]) -> None:
    with pytest.raises(RailError) as failed:
        await failing_client(raising(error)).authorise(card())

    assert (failed.value.not_taken, failed.value.retryable) == (True, True)


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError])
async def test_no_answer_after_sending_may_have_been_taken(error: type[httpx.HTTPError]) -> None:
    with pytest.raises(RailError) as failed:
        await failing_client(raising(error)).authorise(card())

    assert (failed.value.not_taken, failed.value.retryable) == (False, True)


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (403, False), (408, True), (429, True)]
)
async def test_a_refusal_of_the_call_is_not_taken(status: int, retryable: bool) -> None:
    body = {"error": {"code": "invalid_request", "message": "bad", "fields": ["card.number"]}}

    with pytest.raises(RailError) as failed:
        await failing_client(lambda _: httpx.Response(status, json=body)).authorise(card())

    assert (failed.value.not_taken, failed.value.retryable) == (True, retryable)
    assert "card.number" in failed.value.result_desc


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_may_have_been_taken(status: int) -> None:
    with pytest.raises(RailError) as failed:
        await failing_client(lambda _: httpx.Response(status, text="upstream failed")).authorise(card())

    assert (failed.value.not_taken, failed.value.retryable) == (False, True)


@pytest.mark.parametrize("status", [200, 201])
async def test_an_unreadable_answer_may_have_been_taken(status: int) -> None:
    with pytest.raises(RailError) as failed:
        await failing_client(lambda _: httpx.Response(status, json={"status": "what"})).authorise(card())

    assert (failed.value.not_taken, failed.value.retryable) == (False, True)


async def test_an_answer_about_another_authorisation_is_not_an_outcome() -> None:
    other = {
        "id": "auth_1",
        "reference": "SOMEONE-ELSE",
        "status": "authorised",
        "amount": 1,
        "currency": "KES",
    }
    answer = failing_client(lambda _: httpx.Response(201, json=other))

    with pytest.raises(RailError) as failed:
        await answer.authorise(card())
    queried = await answer.query("AUTH-MINE")

    assert failed.value.not_taken is False
    assert queried.status is CardStatus.UNKNOWN


async def test_a_client_without_http_makes_no_call() -> None:
    with pytest.raises(RuntimeError):
        await CardAcquirerClient(base_url="http://acquirer.test", api_key=API_KEY).authorise(card())
