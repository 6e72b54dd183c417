"""The Airtel Money client and rail against the Airtel simulator in process (httpx.ASGITransport),
its callback to a receiver over real HTTP, the callback parser, the PIN, the registry and the
settings."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.providers import registry
from malipo.providers.airtel import codes
from malipo.providers.airtel.callbacks import parse_payout_callback, parse_push_callback
from malipo.providers.airtel.client import AirtelClient, AirtelError, AirtelLoginFailed, surely_not_taken
from malipo.providers.airtel.connection import simulator_credentials
from malipo.providers.airtel.mobile_money import AirtelMobileMoney, major_units, national_msisdn
from malipo.providers.airtel.pin import InvalidPinKey, encrypt_pin, load_public_key
from malipo.providers.airtel.sandbox import SANDBOX_PIN, SANDBOX_PIN_PRIVATE_KEY, SANDBOX_PIN_PUBLIC_KEY
from malipo.providers.airtel.signing import callback_hash
from malipo.providers.airtel.simulator import AirtelSimulator
from malipo.providers.base import (
    MalformedCallback,
    NotSupported,
    PayoutStatusQuery,
    PhonePayment,
    ProviderUnavailable,
    PushRequest,
    RailError,
    Status,
)
from tests.fixtures.servers import LiveServer

SIM = "http://airtel.sim"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"env": "test", "var_dir": tmp_path, "airtel_simulator_url": SIM}
    return Settings(**(values | overrides)).require_secrets()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def sim(clock: FrozenClock) -> AsyncIterator[AirtelSimulator]:
    simulator = AirtelSimulator(credentials={"app": "secret"}, clock=clock)
    yield simulator
    await simulator.aclose()


@pytest.fixture
async def http(sim: AirtelSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app)) as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient, clock: FrozenClock) -> AirtelClient:
    return AirtelClient(base_url=SIM, client_id="app", client_secret="secret", country="KE", currency="KES",
                        http=http, clock=clock)  # fmt: skip


def _pin() -> str:
    return encrypt_pin(SANDBOX_PIN, load_public_key(SANDBOX_PIN_PUBLIC_KEY))


# -- OAuth ----------------------------------------------------------------------------------


async def test_the_token_is_kept_until_shortly_before_it_expires(
    client: AirtelClient, sim: AirtelSimulator, clock: FrozenClock
) -> None:
    await client.collect(transaction_id="T1", msisdn="733123456", amount=10, reference="Order 1")
    await client.collection_status("T1")
    assert sim.token_hits == 1
    clock.advance(149)
    await client.collection_status("T1")
    assert sim.token_hits == 1, "180 s tokens are kept until 30 s before they expire"
    clock.advance(2)
    await client.collection_status("T1")
    assert sim.token_hits == 2


async def test_a_refused_token_is_fetched_again_once(client: AirtelClient, sim: AirtelSimulator) -> None:
    await client.access_token()
    sim.expire_tokens()
    reply = await client.collect(transaction_id="T2", msisdn="733123456", amount=10, reference="Order 2")
    assert reply.status is not None
    assert reply.status.response_code == "DP00800001006"
    assert sim.token_hits == 2
    assert sim.requests["collect"] == 2, "the refused call, then the same call once more"


async def test_a_token_refused_twice_is_an_error_not_a_loop() -> None:
    hits: list[str] = []

    async def token(_request: Request) -> JSONResponse:
        hits.append("token")
        return JSONResponse({"access_token": f"t{len(hits)}", "expires_in": 180, "token_type": "bearer"})

    async def refused(_request: Request) -> JSONResponse:
        hits.append("collect")
        body = {"error_description": "The access token is invalid or has expired", "error": "invalid_token"}
        return JSONResponse(body, status_code=403)  # the mock's status for it; 401 is the same to us

    app = Starlette(routes=[Route("/auth/oauth2/token", token, methods=["POST"]),
                            Route("/merchant/v1/payments/", refused, methods=["POST"])])  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app)) as http:
        client = AirtelClient(base_url=SIM, client_id="a", client_secret="b", country="KE", currency="KES",
                              http=http)  # fmt: skip
        with pytest.raises(AirtelError) as caught:
            await client.collect(transaction_id="T3", msisdn="733123456", amount=10, reference="x")
    assert caught.value.status == 403
    assert hits == ["token", "collect", "token", "collect"]
    assert "t1" not in str(caught.value)


async def test_wrong_credentials_are_a_login_failure_nothing_was_sent(http: httpx.AsyncClient) -> None:
    client = AirtelClient(base_url=SIM, client_id="app", client_secret="wrong", country="KE", currency="KES",
                          http=http)  # fmt: skip
    with pytest.raises(AirtelLoginFailed) as caught:
        await client.collect(transaction_id="T4", msisdn="733123456", amount=10, reference="x")
    assert surely_not_taken(caught.value)
    assert caught.value.result_code == "invalid_client"
    assert "wrong" not in str(caught.value)


# -- collections ----------------------------------------------------------------------------


async def test_a_push_then_its_enquiry(client: AirtelClient, sim: AirtelSimulator) -> None:
    reply = await client.collect(
        transaction_id="T5", msisdn="733123456", amount=Decimal("10.5"), reference="x"
    )
    assert reply.status is not None
    assert reply.status.success is True
    await asyncio.sleep(0.02)  # the simulated payer acts after callback_delay (0)
    answer = await client.collection_status("T5")
    assert (answer.transaction.status, answer.transaction.id) == ("TS", "T5")
    assert answer.transaction.airtel_money_id
    assert sim.pushes["T5"].amount == Decimal("10.5")


async def test_the_push_checks(client: AirtelClient, http: httpx.AsyncClient) -> None:
    with pytest.raises(AirtelError) as with_country_code:
        await client.collect(transaction_id="T6", msisdn="254733123456", amount=10, reference="x")
    assert with_country_code.value.result_code == "ESB000033"
    assert surely_not_taken(with_country_code.value)
    await client.collect(transaction_id="T7", msisdn="733123456", amount=10, reference="x")
    with pytest.raises(AirtelError) as duplicate:
        await client.collect(transaction_id="T7", msisdn="733123456", amount=10, reference="x")
    assert duplicate.value.result_code == codes.DUPLICATE_ID
    assert not surely_not_taken(duplicate.value), "Airtel has one with this id: ask, never send again"
    token = await client.access_token()
    no_country = await http.post(
        f"{SIM}/merchant/v1/payments/", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert (no_country.status_code, no_country.json()["status_code"]) == (400, "ROUTER110")


async def test_the_rail_maps_each_collection_outcome(tmp_path: Path, clock: FrozenClock) -> None:
    settings = _settings(tmp_path)
    sim = AirtelSimulator(credentials=dict([simulator_credentials(settings)]), clock=clock, push_expiry=60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app)) as http:
        rail = AirtelMobileMoney(settings, "test", http)
        for reference, phone in (("PAID", "254733123456"), ("POOR", "254733000001"), ("PIN", "254733000002"),
                                 ("SILENT", "254733000003"), ("LOST", "254733000004")):  # fmt: skip
            accepted = await rail.push_collection(PushRequest(reference, 100_00, phone, "unused-token"))
            assert accepted.provider_reference == reference
        await asyncio.sleep(0.02)
        paid = await rail.query_push("PAID")
        assert (paid.status, paid.result_code, paid.receipt) == (
            Status.SUCCEEDED,
            0,
            sim.pushes["PAID"].receipt,
        )
        poor = await rail.query_push("POOR")
        assert (poor.status, poor.result_code) == (Status.FAILED, codes.NOT_ENOUGH_BALANCE)
        assert "DP00800001007" in poor.result_desc
        assert (await rail.query_push("PIN")).result_code == codes.WRONG_PIN
        silent = await rail.query_push("SILENT")
        assert (silent.status, silent.result_code) == (Status.PENDING, codes.NO_ANSWER)
        clock.advance(61)
        expired = await rail.query_push("SILENT")
        assert (expired.status, expired.result_code) == (Status.FAILED, codes.NO_ANSWER)
        assert (await rail.query_push("LOST")).status == Status.SUCCEEDED
        assert (await rail.query_push("NOSUCH")).status == Status.UNKNOWN
        assert sim.pushes["PAID"].msisdn == "733123456"
        assert sim.pushes["PAID"].amount == 100
        await sim.aclose()


# -- disbursements --------------------------------------------------------------------------


def test_the_pin_is_encrypted_under_the_key_and_only_its_private_half_reads_it() -> None:
    first, second = _pin(), _pin()
    assert first != second, "PKCS#1 v1.5 padding is random"
    key = serialization.load_pem_private_key(SANDBOX_PIN_PRIVATE_KEY.encode(), password=None)
    assert key.decrypt(base64.b64decode(first), padding.PKCS1v15()) == SANDBOX_PIN.encode()  # type: ignore[union-attr]
    pem = (
        load_public_key(SANDBOX_PIN_PUBLIC_KEY)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert load_public_key(pem).key_size == 1024
    with pytest.raises(InvalidPinKey):
        load_public_key("not a key")


async def test_the_rail_pays_phones(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    sim = AirtelSimulator(credentials=dict([simulator_credentials(settings)]), disbursement_funds=1000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app)) as http:
        rail = AirtelMobileMoney(settings, "test", http)

        def payment(our_id: str, phone: str, amount: int = 200_00) -> PhonePayment:
            return PhonePayment(
                reference=f"R-{our_id}", amount=amount, phone=phone, our_id=our_id, callback_token="x"
            )

        paid = await rail.pay_phone(payment("P1", "254733123456"))
        assert paid.provider_reference == "P1"
        assert paid.outcome is not None
        assert (paid.outcome.status, paid.outcome.our_id) == (Status.SUCCEEDED, "P1")
        assert paid.outcome.receipt == sim.disbursements["P1"].receipt
        assert sim.disbursement_funds == 800
        for our_id, phone in (("P2", "254733000011"), ("P3", "254733000012")):
            with pytest.raises(RailError) as refused:
                await rail.pay_phone(payment(our_id, phone))
            assert (refused.value.not_taken, refused.value.retryable) == (True, False)
            assert refused.value.result_code == codes.PAYOUT_FAILED
        with pytest.raises(RailError) as too_much:
            await rail.pay_phone(payment("P4", "254733123456", amount=900_00))
        assert "DP00900001007" in too_much.value.result_desc
        later = await rail.pay_phone(payment("P5", "254733000014"))
        assert later.outcome is None, "in progress: the enquiry decides"
        await asyncio.sleep(0.02)
        answer = await rail.query_payout(PayoutStatusQuery(query_id="P5", attempt=1, callback_token="x"))
        assert answer.completed
        assert answer.outcome.our_id == "P5"
        unknown = await rail.query_payout(PayoutStatusQuery(query_id="NOPE", attempt=2, callback_token="x"))
        assert (unknown.completed, unknown.failed, unknown.attempt) == (False, False, 2)
        balance = await rail.balance()
        assert balance.amounts == {"KES": 600_00}, "1,000 less the two paid"
        with pytest.raises(NotSupported):
            await rail.reverse(None)  # type: ignore[arg-type]
        await sim.aclose()


async def test_a_wrong_pin_fails_the_payout(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    sim = AirtelSimulator(credentials=dict([simulator_credentials(settings)]), pin="9999")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app)) as http:
        rail = AirtelMobileMoney(settings, "test", http)
        with pytest.raises(RailError) as refused:
            await rail.pay_phone(PhonePayment("R", 100_00, "254733123456", "P9", "x"))
        assert refused.value.not_taken
        assert "Incorrect Encrypted Pin" in refused.value.result_desc
        assert sim.disbursements == {}
        await sim.aclose()


async def test_live_payouts_need_the_pin_settings(tmp_path: Path) -> None:
    settings = _settings(tmp_path, airtel_base_url="https://openapiuat.airtel.africa", airtel_client_id="id",
                         airtel_client_secret="secret")  # fmt: skip
    rail = AirtelMobileMoney(settings, "live", httpx.AsyncClient())
    with pytest.raises(RailError) as refused:
        await rail.pay_phone(PhonePayment("R", 100_00, "254733123456", "P1", "x"))
    assert refused.value.not_taken
    assert "MALIPO_AIRTEL_PIN_PUBLIC_KEY" in refused.value.result_desc


# -- the callback ---------------------------------------------------------------------------


def _body(**transaction: Any) -> bytes:
    return json.dumps({"transaction": transaction}).encode()


def test_the_callback_parser() -> None:
    paid = parse_push_callback(
        _body(id="REF1", message="Paid KES 100", status_code="TS", airtel_money_id="MP210603.1234.L06941"),
        currency="KES",
    )
    assert (paid.status, paid.result_code, paid.our_reference, paid.provider_reference) == (
        Status.SUCCEEDED, 0, "REF1", "REF1",
    )  # fmt: skip
    assert (paid.receipt, paid.amount, paid.states_payment) == ("MP210603.1234.L06941", None, False)
    with_amount = parse_push_callback(_body(id="REF1", status_code="TS", amount="100.00"), currency="KES")
    assert (with_amount.amount, with_amount.states_payment) == (100_00, True)
    signed = json.dumps({"transaction": {"id": "REF1", "status_code": "TF", "message": "Incorrect Pin",
                                         "airtel_money_id": ""}, "hash": "zITV="}).encode()  # fmt: skip
    failed = parse_push_callback(signed, currency="KES")
    assert (failed.status, failed.result_code, failed.receipt) == (Status.FAILED, codes.WRONG_PIN, None)
    assert parse_push_callback(_body(id="R", status_code="TIP"), currency="KES").status == Status.PENDING
    payout = parse_payout_callback(_body(id="P1", status_code="TS", airtel_money_id="CI1"), currency="KES")
    assert (payout.our_id, payout.receipt, payout.status) == ("P1", "CI1", Status.SUCCEEDED)
    for bad in (b"[]", b"{}", _body(id="", status_code="TS"), _body(id="R"), b"not json"):
        with pytest.raises(MalformedCallback):
            parse_push_callback(bad, currency="KES")


async def test_the_simulator_calls_back_the_apps_url_over_http(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    async def receive(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({})

    with LiveServer(Starlette(routes=[Route("/cb", receive, methods=["POST"])])) as server:
        sim = AirtelSimulator(callback_url=f"{server.url}/cb", callback_backoff=0.01)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(sim.app)) as http:
            client = AirtelClient(
                base_url=SIM, client_id="a", client_secret="b", country="KE", currency="KES", http=http
            )
            await client.collect(transaction_id="C1", msisdn="733000001", amount=5, reference="x")
            await client.collect(transaction_id="C2", msisdn="733000004", amount=5, reference="x")  # lost
            for _ in range(200):
                if received:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        await sim.aclose()
    assert received == [{"transaction": {"id": "C1", "message": "Not enough balance", "status_code": "TF",
                                         "airtel_money_id": ""}}]  # fmt: skip


# -- edges, registry and settings -----------------------------------------------------------


def test_numbers_and_amounts_at_the_edge() -> None:
    assert national_msisdn("254733000001", "KE") == "733000001"
    assert national_msisdn("256700123123", "UG") == "700123123"
    assert major_units(100_00, "KES") == 100
    assert major_units(100_50, "KES") == Decimal("100.50")


def test_the_registry_serves_airtel_and_still_refuses_tkash(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert isinstance(registry.mobile_money_for(settings, "63903", "live"), AirtelMobileMoney)
    assert registry.require_mobile_network("63903") == "airtel"
    with pytest.raises(ProviderUnavailable, match=r"T-Kash \(63907\) is not available yet"):
        registry.mobile_money_for(settings, "63907", "test")
    assert registry.live_rails(settings)["airtel"] == "simulator"
    live = _settings(tmp_path, airtel_base_url="https://openapi.airtel.africa", airtel_client_id="id",
                     airtel_client_secret="s")  # fmt: skip
    assert registry.live_rails(live)["airtel"] == "https://openapi.airtel.africa"


def test_each_callback_address_settles_only_its_own_modes(tmp_path: Path) -> None:
    def token(settings: Settings, *, simulator: bool) -> str:
        return registry.airtel_callback_path(settings, simulator=simulator).rsplit("/", 1)[1]

    unset = _settings(tmp_path)
    assert registry.airtel_callback_modes(unset, token(unset, simulator=True)) == {"test", "live"}
    assert registry.airtel_callback_modes(unset, token(unset, simulator=False)) == set()
    assert registry.airtel_callback_modes(unset, "guess") == set()
    live = _settings(tmp_path, airtel_base_url="https://openapi.airtel.africa", airtel_client_id="id",
                     airtel_client_secret="s")  # fmt: skip
    assert registry.airtel_callback_modes(live, token(live, simulator=True)) == {"test"}
    assert registry.airtel_callback_modes(live, token(live, simulator=False)) == {"live"}
    assert registry.airtel_callback_url(live).startswith(live.public_url + "/callbacks/airtel/")


@pytest.mark.parametrize(
    "values",
    [
        {"airtel_base_url": "https://openapi.airtel.africa"},
        {"airtel_base_url": "https://openapi.airtel.africa", "airtel_client_id": "id"},
        {"airtel_pin_public_key": SANDBOX_PIN_PUBLIC_KEY},
        {"airtel_disbursement_pin": "1234"},
    ],
)
def test_settings_refuse_half_an_airtel_configuration(tmp_path: Path, values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="MALIPO_AIRTEL_"):
        Settings(env="test", var_dir=tmp_path, **values)


def test_secrets_stay_out_of_reprs(tmp_path: Path) -> None:
    settings = _settings(tmp_path, airtel_client_secret="s3cr3t-value", airtel_disbursement_pin="4321",
                         airtel_pin_public_key=SANDBOX_PIN_PUBLIC_KEY)  # fmt: skip
    assert "s3cr3t-value" not in repr(settings)
    assert "4321" not in repr(settings)


def test_each_callback_address_takes_the_hash_its_key_makes(tmp_path: Path) -> None:
    """The simulator's address needs the simulator's signature; Airtel's needs one only with
    callback authentication on (``MALIPO_AIRTEL_CALLBACK_KEY``), and then under that key."""

    def token(settings: Settings, *, simulator: bool) -> str:
        return registry.airtel_callback_path(settings, simulator=simulator).rsplit("/", 1)[1]

    transaction = {"id": "ABC123", "message": "paid", "status_code": "TS", "airtel_money_id": "MP1"}
    plain = json.dumps({"transaction": transaction}).encode()

    def signed(key: bytes, **spacing: Any) -> bytes:
        return json.dumps(
            {"transaction": transaction, "hash": callback_hash(transaction, key)}, **spacing
        ).encode()

    off = _settings(tmp_path, airtel_base_url="https://openapi.airtel.africa", airtel_client_id="id",
                    airtel_client_secret="s")  # fmt: skip
    assert registry.airtel_callback_authentic(off, token(off, simulator=False), plain)
    simulator_key = registry.airtel_simulator_callback_key(off)
    assert not registry.airtel_callback_authentic(off, token(off, simulator=True), plain)
    assert registry.airtel_callback_authentic(off, token(off, simulator=True), signed(simulator_key))

    on = _settings(tmp_path, airtel_base_url="https://openapi.airtel.africa", airtel_client_id="id",
                   airtel_client_secret="s", airtel_callback_key="portal-private-key")  # fmt: skip
    airtel = token(on, simulator=False)
    assert not registry.airtel_callback_authentic(on, airtel, plain)
    assert not registry.airtel_callback_authentic(on, airtel, signed(simulator_key))
    assert registry.airtel_callback_authentic(on, airtel, signed(b"portal-private-key"))
    assert registry.airtel_callback_authentic(
        on, airtel, signed(b"portal-private-key", separators=(", ", ": "))
    ), "the same transaction however it is spaced"
    as_received = b'{ "transaction" : {"id":"ABC123" ,"status_code":"TS"}, "hash": "%s" }'
    raw = b'{"id":"ABC123" ,"status_code":"TS"}'
    raw_hash = base64.b64encode(hmac.digest(b"portal-private-key", raw, hashlib.sha256))
    assert registry.airtel_callback_authentic(on, airtel, as_received % raw_hash), "over the bytes as sent"
    for broken in (b"not json", b'{"transaction": 1, "hash": "%%%"}', b'{"hash": "AAAA"}', b"[]"):
        assert not registry.airtel_callback_authentic(on, airtel, broken)
    assert "portal-private-key" not in repr(on)
