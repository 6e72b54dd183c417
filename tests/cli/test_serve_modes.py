"""A newcomer's first run on a port of their own: the public URL follows where ``malipo serve``
listens, each credential says its mode (and every Pay Hero reply too), and a taken port is one line.

The server is a real ``malipo serve`` subprocess with no ``MALIPO_PUBLIC_URL``: the built-in Daraja
simulator is reached, and calls back, at the derived URL, so a collection only completes if the
derivation is right.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from malipo.config import Settings
from tests.cli.helpers import ROOT, malipo_env, run_malipo, wait_until_serving
from tests.fixtures.servers import free_port

MODE = "x-malipo-mode"


def _env(var_dir: Path, **extra: str) -> dict[str, str]:
    return malipo_env(var_dir, **{"MALIPO_LOG_JSON": "true", **extra})  # _events reads the JSON log


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@dataclass
class Served:
    base: str
    demo: dict[str, Any]
    log: Path
    env: dict[str, str]

    @property
    def key(self) -> tuple[str, str]:
        return (self.demo["sandbox_api_key"], "")

    @property
    def pair(self) -> tuple[str, str]:
        return (self.demo["payhero_api_username"], self.demo["payhero_api_password"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``make run`` on a port that is not 8000: migrate, seed, ``malipo serve --port P``."""
    tmp = tmp_path_factory.mktemp("served")
    env = _env(tmp / "var")
    assert run_malipo("db", "upgrade", env=env).returncode == 0
    seeded = run_malipo("seed-demo", "--json", env=env)
    assert seeded.returncode == 0, seeded.stderr
    port = free_port()
    assert port != 8000
    log = tmp / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)],
            env={**env, "MALIPO_LOG_LEVEL": "INFO"},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(server, base, log.read_text)
        yield Served(base=base, demo=json.loads(seeded.stdout), log=log, env=env)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_collection_completes_with_the_server_on_its_own_port(served: Served) -> None:
    api = f"{served.base}/api/v2"
    before = httpx.get(f"{api}/wallets", params={"wallet_type": "service_wallet"}, auth=served.key).json()
    reply = httpx.post(
        f"{api}/payments",
        auth=served.key,
        json={
            "amount": 1000,
            "phone_number": "0708374149",
            "provider": "m-pesa",
            "network_code": "63902",
            "external_reference": "INV-PORT",
            "customer_name": "Jane",
        },
    )
    assert reply.status_code == 201, reply.text
    reference = reply.json()["reference"]

    # The worker pushes to the simulator at the derived URL, which calls back there: SUCCESS.
    deadline = time.monotonic() + 30
    while True:
        status = httpx.get(
            f"{api}/transaction-status", params={"reference": reference}, auth=served.key
        ).json()
        if status["status"] != "QUEUED":
            break
        assert time.monotonic() < deadline, f"still QUEUED after 30 s: {status}"
        time.sleep(0.2)
    assert status["status"] == "SUCCESS", status

    payments = httpx.get(f"{api}/wallets", params={"wallet_type": "payment_wallet"}, auth=served.key).json()
    after = httpx.get(f"{api}/wallets", params={"wallet_type": "service_wallet"}, auth=served.key).json()
    assert payments["available_balance"] == 1000
    assert (
        after["available_balance"] == before["available_balance"] - 15
    )  # 1.5 % fee, from the service wallet
    verified = run_malipo("ledger", "verify", env=served.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.slow
def test_startup_logs_the_public_url_in_use_and_the_rails(served: Served) -> None:
    started = [e for e in _events(served.log) if e["event"] == "app.started"]
    assert len(started) == 1
    assert started[0]["public_url"] == served.base
    assert started[0]["public_url_from"] == "the listening address"
    assert started[0]["live"] == []
    assert set(started[0]["simulated"]) >= {"mpesa", "sms", "whatsapp"}


@pytest.mark.slow
def test_every_pay_hero_reply_names_its_mode(served: Served) -> None:
    api = f"{served.base}/api/v2"
    # The Pay Hero pair is live mode: its service wallet starts empty.
    live = httpx.get(f"{api}/wallets", params={"wallet_type": "service_wallet"}, auth=served.pair)
    assert live.status_code == 200
    assert live.headers[MODE] == "live"
    assert live.json()["available_balance"] == 0
    # The key is sandbox mode: its service wallet starts with the demo's KES 10,000.
    sandbox = httpx.get(f"{api}/wallets", params={"wallet_type": "service_wallet"}, auth=served.key)
    assert sandbox.headers[MODE] == "sandbox"
    assert sandbox.json()["available_balance"] > 0
    # Errors too, once the caller is known; /mailer as well.
    wrong = httpx.get(f"{api}/wallets", params={"wallet_type": "nope"}, auth=served.pair)
    assert wrong.status_code == 400
    assert wrong.headers[MODE] == "live"
    bad_body = httpx.post(f"{api}/payments", json={"amount": 0}, auth=served.key)
    assert bad_body.status_code == 400
    assert bad_body.headers[MODE] == "sandbox"
    mailer = httpx.post(f"{served.base}/mailer/send", json={}, auth=served.key)
    assert mailer.status_code == 400
    assert mailer.headers[MODE] == "sandbox"
    # A caller not known has no mode; the native API does not use the header.
    unknown = httpx.get(f"{api}/wallets", auth=(served.demo["payhero_api_username"], "wrong"))
    assert unknown.status_code == 401
    assert MODE not in unknown.headers
    native = httpx.get(f"{served.base}/api/v1/me", headers={"authorization": f"Bearer {served.key[0]}"})
    assert MODE not in native.headers


def test_serve_on_a_taken_port_exits_with_one_line_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_malipo("serve", "--port", str(port), env=_env(tmp_path / "var", MALIPO_LOG_LEVEL="INFO"))
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines  # no startup log, no worker, no traceback
    assert str(port) in lines[0]
    assert "in use" in lines[0]
    assert "--port" in lines[0]


def test_seed_demo_names_both_modes_and_their_wallets(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path / "var", MALIPO_PORT=str(port))
    assert run_malipo("db", "upgrade", env=env).returncode == 0
    table = run_malipo("seed-demo", env={**env, "COLUMNS": "80"})
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "LIVE mode" in text
    assert "SANDBOX mode" in text
    live, sandbox = text.index("LIVE mode"), text.index("SANDBOX mode")
    # Each credential sits in its mode's section, whole (not folded) so it can be copied.
    demo = json.loads(run_malipo("seed-demo", "--json", env=env).stdout)
    assert demo["public_url"] == f"http://127.0.0.1:{port}"
    assert demo["live_service_wallet"] == "KES 0.00"
    assert demo["sandbox_service_wallet"] == "KES 10000.00"
    assert demo["live_payments_wallet"] == demo["sandbox_payments_wallet"] == "KES 0.00"
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") >= 3}
    assert "KES 10000.00" in rows["sandbox_service_wallet"]
    assert "KES 0.00" in rows["live_service_wallet"]
    assert rows["sandbox_api_key"].split("│")[2].strip().startswith("mk_test_")
    assert live < text.index("payhero_api_password") < sandbox < text.index("sandbox_api_key")
    assert f"http://127.0.0.1:{port}" in text

    again = run_malipo("seed-demo", "--json", "--if-new", env=env)
    assert json.loads(again.stdout) == {"created": False}


def test_the_public_url_follows_host_and_port_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MALIPO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MALIPO_PORT", "8123")
    assert Settings().public_url == "http://127.0.0.1:8123"
    monkeypatch.setenv("MALIPO_HOST", "0.0.0.0")
    settings = Settings()
    assert settings.public_url == "http://127.0.0.1:8123"
    settings.listen_on("::", 8124)  # `serve --host :: --port 8124`
    assert settings.public_url == "http://127.0.0.1:8124"
    settings.listen_on("::1", 8125)
    assert settings.public_url == "http://[::1]:8125"

    monkeypatch.setenv("MALIPO_PUBLIC_URL", "https://pay.example.com/")
    explicit = Settings()
    explicit.listen_on("0.0.0.0", 9000)
    assert explicit.public_url == "https://pay.example.com"
    assert not explicit.public_url_derived
