"""Payment channels on the native API (/api/v1/channels) and the ``malipo channels`` command.

API keys act in their key's mode, a merchant's portal users on live; another merchant's
channel is a 404; the payments wallet channel cannot be deactivated; a deactivated channel
refuses new collections until it is activated again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from malipo.config import Settings
from tests.cli.helpers import clean_env, run_malipo
from tests.pricing.helpers import Gateway, Merchant, serve


@pytest.fixture
def gateway(settings: Settings, live_server: Any) -> Iterator[Gateway]:
    """malipo on loopback (no worker) over this test's database; merchants A and B, an operator."""
    served = serve(settings, live_server)
    yield served
    served.http.close()


def _create(gateway: Gateway, merchant: Merchant, **body: Any) -> dict[str, Any]:
    reply = gateway.call(
        "POST", "/api/v1/channels", merchant.key,
        json={"channelType": "paybill", "shortCode": "522522", "description": "KCB paybill"} | body,
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def _list(gateway: Gateway, caller: Any, **params: Any) -> dict[str, Any]:
    reply = gateway.call("GET", "/api/v1/channels", caller, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()  # type: ignore[no-any-return]


def test_a_merchant_registers_lists_and_reads_its_channels(gateway: Gateway) -> None:
    a = gateway.a
    paybill = _create(gateway, a, accountNumber="1280006242")
    assert {k: v for k, v in paybill.items() if k not in ("id", "createdAt", "updatedAt")} == {
        "channelType": "paybill", "transactionType": "CustomerPayBillOnline", "mode": "test",
        "shortCode": "522522", "accountNumber": "1280006242", "description": "KCB paybill", "isActive": True,
        "balance": None, "currency": None,
    }  # fmt: skip
    till = _create(gateway, a, channelType="till", shortCode=" 174379 ", description="Shop till")
    assert (till["shortCode"], till["transactionType"], till["accountNumber"]) == (
        "174379",
        "CustomerBuyGoodsOnline",
        None,
    )
    bank = _create(gateway, a, channelType="bank", shortCode="247247", accountNumber="0110123456789")

    listed = _list(gateway, a.key)
    assert listed["total"] == 4
    assert (listed["page"], listed["pageSize"]) == (1, 20)
    # Oldest first; the wallet channel was opened by the first listing.
    *own, wallet = listed["channels"]
    assert [c["id"] for c in own] == [paybill["id"], till["id"], bank["id"]]
    assert (wallet["channelType"], wallet["isActive"], wallet["mode"]) == ("wallet", True, "test")
    assert (wallet["balance"], wallet["currency"]) == ("500.00", "KES")  # A's sandbox payments wallet
    assert wallet["shortCode"] == str(wallet["id"])
    paged = _list(gateway, a.key, page=2, pageSize=3)
    assert [c["id"] for c in paged["channels"]] == [wallet["id"]]

    read = gateway.call("GET", f"/api/v1/channels/{till['id']}", a.key)
    assert read.status_code == 200, read.text
    assert read.json() == till

    # The portal user acts on live: the sandbox channels are not there, a live wallet channel is.
    live = _list(gateway, a.admin)
    assert [(c["channelType"], c["mode"]) for c in live["channels"]] == [("wallet", "live")]
    assert gateway.call("GET", f"/api/v1/channels/{till['id']}", a.admin).status_code == 404
    made_live = gateway.call(
        "POST", "/api/v1/channels", a.admin,
        json={"channelType": "till", "shortCode": "5551234", "description": "Live till"},
    )  # fmt: skip
    assert made_live.status_code == 201, made_live.text
    assert made_live.json()["mode"] == "live"
    # The Pay Hero surface sees the same channels.
    payhero = gateway.call("GET", "/api/v2/payment_channels", a.key).json()
    assert [c["id"] for c in payhero["payment_channels"]] == [c["id"] for c in listed["channels"]]


def test_a_deactivated_channel_refuses_collections_until_activated(gateway: Gateway) -> None:
    a = gateway.a
    channel = _create(gateway, a)
    path = f"/api/v1/channels/{channel['id']}"
    for _twice in range(2):
        off = gateway.call("POST", f"{path}/deactivate", a.key)
        assert off.status_code == 200, off.text
        assert off.json()["isActive"] is False
    assert [c["id"] for c in _list(gateway, a.key, isActive="false")["channels"]] == [channel["id"]]
    assert channel["id"] not in [c["id"] for c in _list(gateway, a.key, isActive="true")["channels"]]

    pay = {"amount": 100, "phone_number": "0711222333", "channel_id": channel["id"]}
    refused = gateway.call("POST", "/api/v2/payments", a.key, json=pay)
    assert refused.status_code == 400, refused.text
    assert "not active" in refused.json()["error_message"]

    on = gateway.call("POST", f"{path}/activate", a.key)
    assert on.status_code == 200, on.text
    assert on.json()["isActive"] is True
    accepted = gateway.call("POST", "/api/v2/payments", a.key, json=pay)
    assert accepted.status_code == 201, accepted.text


def test_the_payments_wallet_channel_cannot_be_deactivated(gateway: Gateway) -> None:
    [wallet] = _list(gateway, gateway.a.key)["channels"]
    assert wallet["channelType"] == "wallet"
    refused = gateway.call("POST", f"/api/v1/channels/{wallet['id']}/deactivate", gateway.a.key)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "wallet_channel"
    assert "cannot be deactivated" in problem["detail"]
    assert gateway.call("GET", f"/api/v1/channels/{wallet['id']}", gateway.a.key).json()["isActive"] is True
    # Activating it is harmless.
    assert gateway.call("POST", f"/api/v1/channels/{wallet['id']}/activate", gateway.a.key).status_code == 200


def test_another_merchants_channel_is_not_found(gateway: Gateway) -> None:
    a, b = gateway.a, gateway.b
    channel = _create(gateway, a)
    for method, suffix in (("GET", ""), ("POST", "/deactivate"), ("POST", "/activate")):
        reply = gateway.call(method, f"/api/v1/channels/{channel['id']}{suffix}", b.key)
        assert reply.status_code == 404, (method, suffix, reply.text)
    assert channel["id"] not in [c["id"] for c in _list(gateway, b.key)["channels"]]
    after = gateway.call("GET", f"/api/v1/channels/{channel['id']}", a.key).json()
    assert after == channel  # untouched
    # Nor can B collect into it.
    pay = {"amount": 100, "phone_number": "0711222333", "channel_id": channel["id"]}
    assert gateway.call("POST", "/api/v2/payments", b.key, json=pay).status_code == 404
    # The operator is not a channel caller.
    assert gateway.call("GET", "/api/v1/channels", gateway.operator).status_code == 403


def test_bad_channel_input_is_422_naming_the_field(gateway: Gateway) -> None:
    good = {"channelType": "paybill", "shortCode": "522522", "description": "KCB"}
    cases: list[tuple[dict[str, Any], str]] = [
        (good | {"channelType": "wallet"}, "channelType"),
        (good | {"channelType": "mpesa"}, "channelType"),
        (good | {"shortCode": "52a522"}, "shortCode"),
        (good | {"shortCode": "1234"}, "shortCode"),
        (good | {"shortCode": 522522}, "shortCode"),
        (good | {"description": "  "}, "description"),
        (good | {"accountNumber": "x" * 41}, "accountNumber"),
        (good | {"channelType": "bank"}, "accountNumber"),
        (good | {"colour": "red"}, "colour"),
        ({k: v for k, v in good.items() if k != "shortCode"}, "shortCode"),
    ]
    for body, field in cases:
        reply = gateway.call("POST", "/api/v1/channels", gateway.a.key, json=body)
        assert reply.status_code == 422, (body, reply.text)
        assert field in [e["field"] for e in reply.json()["errors"]], (body, reply.json())
    for path, params, field in (
        ("/api/v1/channels/abc", {}, "id"),
        ("/api/v1/channels/0", {}, "id"),
        ("/api/v1/channels", {"isActive": "maybe"}, "isActive"),
        ("/api/v1/channels", {"pageSize": 1000}, "pageSize"),
    ):
        reply = gateway.call("GET", path, gateway.a.key, params=params)
        assert reply.status_code == 422, (path, params, reply.text)
        assert field in [e["field"] for e in reply.json()["errors"]], reply.json()
    assert gateway.call("GET", "/api/v1/channels/999999", gateway.a.key).status_code == 404
    assert _list(gateway, gateway.a.key)["total"] == 1  # only the wallet channel


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli(*args)``: run ``malipo …`` in this process against the test's database."""
    import malipo.cli
    import malipo.cli.common

    # Logging setup would point the process's handlers at the runner's captured (then closed) stream.
    monkeypatch.setattr(malipo.cli.common, "configure_logging", lambda **_kwargs: None)
    env = _cli_env(settings)

    def run(*args: str) -> Any:
        return CliRunner().invoke(malipo.cli.app, list(args), env=env)

    return run


def _cli_env(settings: Settings) -> dict[str, str]:
    return {
        "MALIPO_DATABASE_URL": settings.resolved_database_url,
        "MALIPO_VAR_DIR": str(settings.var_dir),
        "MALIPO_LOG_LEVEL": "WARNING",
        "MALIPO_INPROCESS_WORKER": "false",
    }


def test_malipo_channels_add_list_and_deactivate(gateway: Gateway, cli: Any) -> None:
    client = str(gateway.a.client_id)
    added = cli(
        "channels", "add", "--client", client, "--type", "bank", "--short-code", "247247",
        "--account-number", "0110123456789", "--description", "Equity", "--mode", "test",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    channel_id = int(added.stdout.strip())
    # The merchant's sandbox key sees it.
    seen = gateway.call("GET", f"/api/v1/channels/{channel_id}", gateway.a.key)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["channelType"], seen.json()["accountNumber"]) == ("bank", "0110123456789")

    listed = cli("channels", "list", "--client", client, "--mode", "test", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["channel_type"], r["is_active"]) for r in rows] == [("bank", True), ("wallet", True)]
    assert [
        r["channel_type"] for r in json.loads(cli("channels", "list", "--client", client, "--json").stdout)
    ] == [
        "wallet"  # live, the default
    ]
    table = cli("channels", "list", "--client", client, "--mode", "test")
    assert table.exit_code == 0, table.output
    assert "247247" in table.stdout

    off = cli("channels", "deactivate", str(channel_id))
    assert off.exit_code == 0, off.output
    assert f"channel {channel_id} deactivated" in off.stdout
    assert gateway.call("GET", f"/api/v1/channels/{channel_id}", gateway.a.key).json()["isActive"] is False
    inactive = json.loads(
        cli("channels", "list", "--client", client, "--mode", "test", "--inactive", "--json").stdout
    )
    assert [r["id"] for r in inactive] == [channel_id]

    wallet_id = rows[1]["id"]
    refused = cli("channels", "deactivate", str(wallet_id))
    assert refused.exit_code == 1
    assert "cannot be deactivated" in refused.stderr


def test_malipo_channels_refuses_bad_input(gateway: Gateway, cli: Any) -> None:
    client = str(gateway.a.client_id)
    add = ("channels", "add", "--description", "Till")
    till = ("--type", "till", "--short-code", "123456")
    cases: list[tuple[tuple[str, ...], int, str]] = [
        # The flags are named, not the API's fields (channel_type …).
        ((*add, "--client", client, "--type", "mpesa", "--short-code", "123456"), 2, "--type: "),
        ((*add, "--client", client, "--type", "till", "--short-code", "12"), 2, "--short-code: "),
        ((*add, "--client", client, "--type", "bank", "--short-code", "247247"), 2, "--account-number: "),
        ((*add, "--client", client, *till, "--mode", "prod"), 2, "--mode"),
        ((*add, "--client", "not-a-uuid", *till), 2, "not a client id"),
        ((*add, "--client", str(uuid.uuid4()), *till), 1, "no client"),
        (("channels", "deactivate", "999999"), 1, "no payment channel 999999"),
    ]
    for args, code, message in cases:
        result = cli(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
    assert [
        r["channel_type"] for r in json.loads(cli("channels", "list", "--client", client, "--json").stdout)
    ] == ["wallet"]


def test_malipo_channels_is_a_command_of_the_installed_cli(gateway: Gateway) -> None:
    """The real entry point, in its own process, as an operator runs it."""
    args = ["channels", "list", "--client", str(gateway.b.client_id), "--json"]
    result = run_malipo(*args, env=clean_env(**_cli_env(gateway.settings)))
    assert result.returncode == 0, result.stderr
    assert [(r["channel_type"], r["mode"]) for r in json.loads(result.stdout)] == [("wallet", "live")]
