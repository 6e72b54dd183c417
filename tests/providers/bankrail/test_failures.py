"""What the client makes of a rail that fails: whether a transfer may have been taken decides
whether the domain may retry or fail it (``RailError.not_taken``)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from malipo.providers.bankrail.client import BankRailClient
from malipo.providers.base import RailError, Status
from tests.fixtures.servers import free_port
from tests.providers.bankrail.conftest import API_KEY, transfer


def failing_client(answer: Callable[[httpx.Request], httpx.Response]) -> BankRailClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return BankRailClient(
        base_url="http://rail.test", api_key=API_KEY, public_url="http://malipo.test", http=http
    )


def raising(error: type[httpx.HTTPError]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)  # type: ignore[call-arg]

    return answer


async def test_a_refused_connection_is_not_taken_and_may_be_retried() -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        closed = BankRailClient(
            base_url=f"http://127.0.0.1:{free_port()}",
            api_key=API_KEY,
            public_url="http://malipo.test",
            http=http,
        )
        with pytest.raises(RailError) as failed:
            await closed.send_transfer(transfer())
        queried = await closed.query_transfer("E2E-1")

    assert (failed.value.not_taken, failed.value.retryable) == (True, True)
    assert queried.status is Status.UNKNOWN
    assert queried.error is not None
    assert not queried.not_found, "unreachable is not 'never arrived'"


@pytest.mark.parametrize("error", [httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_a_connection_never_made_is_not_taken(error: type[httpx.HTTPError]) -> None:
    with pytest.raises(RailError) as failed:
        await failing_client(raising(error)).send_transfer(transfer())

    assert (failed.value.not_taken, failed.value.retryable) == (True, True)


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError])
async def test_no_answer_after_sending_may_have_been_taken(error: type[httpx.HTTPError]) -> None:
    with pytest.raises(RailError) as failed:
        await failing_client(raising(error)).send_transfer(transfer())

    assert failed.value.not_taken is False
    assert failed.value.retryable is True  # a resend is a duplicate at worst, never a second payment


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (403, False), (422, False), (408, True), (429, True)],
)
async def test_a_refusal_is_not_taken(status: int, retryable: bool) -> None:
    body = {"Err": {"Cd": "INVALID_REQUEST", "Desc": "bad creditor", "Flds": ["CdtTrfTxInf.CdtrAcct"]}}

    with pytest.raises(RailError) as failed:
        await failing_client(lambda _: httpx.Response(status, json=body)).send_transfer(transfer())

    assert (failed.value.not_taken, failed.value.retryable) == (True, retryable)
    assert "CdtTrfTxInf.CdtrAcct" in failed.value.result_desc


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_may_have_been_taken(status: int) -> None:
    with pytest.raises(RailError) as failed:
        await failing_client(lambda _: httpx.Response(status, text="upstream failed")).send_transfer(
            transfer()
        )

    assert (failed.value.not_taken, failed.value.retryable) == (False, True)


@pytest.mark.parametrize("status", [200, 201, 409])
async def test_an_unreadable_answer_may_have_been_taken(status: int) -> None:
    answer = failing_client(lambda _: httpx.Response(status, json={"TxInfAndSts": {"TxSts": "WHAT"}}))

    with pytest.raises(RailError) as failed:
        await answer.send_transfer(transfer())

    assert failed.value.not_taken is False


async def test_an_answer_about_another_transfer_is_not_an_acceptance() -> None:
    other = {
        "GrpHdr": {"MsgId": "M1", "CreDtTm": "2026-01-01T00:00:00Z"},
        "TxInfAndSts": {"OrgnlEndToEndId": "SOMEONE-ELSE", "TxSts": "ACSC"},
    }
    answer = failing_client(lambda _: httpx.Response(201, json=other))

    with pytest.raises(RailError) as failed:
        await answer.send_transfer(transfer())
    queried = await answer.query_transfer("E2E-MINE")

    assert failed.value.not_taken is False
    assert queried.status is Status.UNKNOWN


@pytest.mark.parametrize(
    "answer",
    [
        lambda _: httpx.Response(500, text="down"),
        lambda _: httpx.Response(200, text="<html>maintenance</html>"),
        lambda _: httpx.Response(401, json={"Err": {"Cd": "UNAUTHORIZED"}}),
    ],
)
async def test_a_query_without_a_status_report_is_unknown(
    answer: Callable[[httpx.Request], httpx.Response],
) -> None:
    outcome = await failing_client(answer).query_transfer("E2E-1")

    assert outcome.status is Status.UNKNOWN
    assert outcome.end_to_end_id == "E2E-1"
    assert outcome.error


async def test_a_client_without_http_only_parses_callbacks() -> None:
    parser = BankRailClient(base_url="http://rail.test", api_key=API_KEY, public_url="http://malipo.test")

    with pytest.raises(RuntimeError):
        await parser.send_transfer(transfer())
