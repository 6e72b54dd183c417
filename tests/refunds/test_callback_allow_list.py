"""MALIPO_DARAJA_CALLBACK_ALLOW: off by default; when set, every /callbacks/daraja/... route
refuses (403, nothing changes) a source outside it; behind a proxy the address is the right-most
entry of MALIPO_TRUSTED_PROXY_HEADER only."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from malipo.config import Settings
from malipo.http.callback_sources import allowed_networks, is_allowed, source_address
from tests.fixtures.world import CANCELLED, PAYS, StartMalipo, eventually
from tests.refunds.test_refunds import ask_refund, collected, final_refund

SAFARICOM = "196.201.212.0/22"
PATHS = tuple(
    f"/callbacks/daraja/{{t}}{suffix}"
    for suffix in ("", "/result", "/timeout", "/status", "/reversal", "/balance")
)


async def test_off_by_default_the_simulators_callbacks_settle(start_malipo: StartMalipo) -> None:
    world = await start_malipo()
    reference = await collected(world, 100)
    assert (await world.collection(reference)).status == "SUCCESS"


async def test_an_address_outside_the_list_is_refused_on_every_daraja_route(
    start_malipo: StartMalipo,
) -> None:
    world = await start_malipo(daraja_callback_allow=SAFARICOM)
    for path in PATHS:
        reply = await world.http.post(path.format(t="sometoken"), json={"Result": {}})
        assert reply.status_code == 403, (path, reply.text)
        assert reply.json()["code"] == "callback_source_refused"
    # The simulator (on loopback) is refused too: its STK result never settles the collection.
    reference = await world.queued(100, CANCELLED)

    async def refused() -> bool:
        tried = [d for d in list(world.sim.sim.deliveries) if d.url.startswith(world.url) and d.attempts >= 1]
        pushed = world.sim.push_for(reference)
        return bool(
            pushed
            and any(
                d.body["Body"]["stkCallback"]["CheckoutRequestID"] == pushed.checkout_request_id
                for d in tried
                if "Body" in d.body
            )
        )

    await eventually(refused, "the simulator to try its callback")
    collection = await world.collection(reference)
    assert collection.status == "SENT", "a refused callback changes nothing"
    assert collection.result_code is None


async def test_loopback_allowed_lets_the_whole_refund_flow_through(start_malipo: StartMalipo) -> None:
    world = await start_malipo(daraja_callback_allow=f"{SAFARICOM}, 127.0.0.0/8, ::1/128")
    reference = await collected(world, 100, PAYS)
    reply = await ask_refund(world, reference)
    assert reply.status_code == 201, reply.text
    assert (await final_refund(world, reply.json()["id"]))["status"] == "completed"


async def test_behind_a_proxy_only_the_right_most_forwarded_address_counts(start_malipo: StartMalipo) -> None:
    world = await start_malipo(daraja_callback_allow=SAFARICOM, trusted_proxy_header="X-Forwarded-For")
    url = "/callbacks/daraja/unknown-token/reversal"
    allowed = await world.http.post(url, json={}, headers={"X-Forwarded-For": "10.1.2.3, 196.201.214.200"})
    assert allowed.status_code == 404, "past the allow-list, to the token check"
    spoofed = await world.http.post(url, json={}, headers={"X-Forwarded-For": "196.201.214.200, 10.1.2.3"})
    assert spoofed.status_code == 403
    missing = await world.http.post(url, json={})
    assert missing.status_code == 403, "no header from the proxy: no address to trust"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("196.201.214.200", True), ("196.201.215.255", True), ("196.201.216.1", False),
        ("::ffff:196.201.212.1", True), ("not-an-ip", False), (None, False),
    ],
)  # fmt: skip
def test_addresses_are_matched_against_the_networks(address: str | None, allowed: bool) -> None:
    assert is_allowed(address, allowed_networks(SAFARICOM)) is allowed
    assert is_allowed(address, allowed_networks("")) is True, "an empty list allows every address"


def test_a_bad_network_in_the_setting_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not-a-network"):
        Settings(daraja_callback_allow="196.201.212.0/22,not-a-network")


class _Request:
    def __init__(self, headers: dict[str, str], peer: str) -> None:
        self.headers = Headers(headers)
        self.client = type("C", (), {"host": peer})()


def test_the_source_is_the_peer_unless_a_proxy_header_is_trusted() -> None:
    request = _Request({"X-Forwarded-For": "1.1.1.1, 2.2.2.2"}, "127.0.0.1")
    assert source_address(request, Settings()) == "127.0.0.1"  # type: ignore[arg-type]
    trusted = Settings(trusted_proxy_header="X-Forwarded-For")
    assert source_address(request, trusted) == "2.2.2.2"  # type: ignore[arg-type]
