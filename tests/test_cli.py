"""``make run``'s path: migrate, seed once, serve; probed over real HTTP from outside the process."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


def _env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALIPO_")}
    return {**env, "MALIPO_VAR_DIR": str(var_dir), "MALIPO_LOG_LEVEL": "WARNING", **extra}


def _malipo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "malipo.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_make_run_path_migrates_seeds_once_and_serves(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = _env(var)

    upgraded = _malipo("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (var / "malipo.db").exists()
    secrets_file = var / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600

    first = _malipo("seed-demo", "--if-new", "--json", env=env)
    assert first.returncode == 0, first.stderr
    demo = json.loads(first.stdout)
    assert demo["created"] is True
    assert demo["operator_email"] == "admin@malipo.example"
    assert demo["sandbox_api_key"].startswith("mk_test_")
    assert demo["payhero_api_username"]
    assert demo["payhero_api_password"]

    # A second `make run` seeds nothing and prints no secrets.
    again = _malipo("seed-demo", "--if-new", env=env)
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stderr
    assert demo["operator_password"] not in again.stdout + again.stderr

    # `malipo seed-demo` on an existing demo keeps its objects and rotates the hashed secrets.
    rotated = json.loads(_malipo("seed-demo", "--json", env=env).stdout)
    assert rotated["created"] is False
    assert rotated["merchant_id"] == demo["merchant_id"]
    assert rotated["api_user_id"] == demo["api_user_id"]
    assert rotated["payhero_api_username"] == demo["payhero_api_username"]
    for secret in ("operator_password", "sandbox_api_key", "payhero_api_password", "merchant_admin_password"):
        assert rotated[secret] != demo[secret]

    # No secret is stored in the clear.
    database = (var / "malipo.db").read_bytes() + b"".join(p.read_bytes() for p in var.glob("malipo.db-*"))
    for secret in ("operator_password", "sandbox_api_key", "payhero_api_password"):
        assert rotated[secret].encode() not in database

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)],
        env={**env, "MALIPO_LOG_LEVEL": "INFO"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "malipo serve did not answer within 30 s"
            time.sleep(0.1)

        health = httpx.get(f"{base}/healthz")
        assert health.json() == {"status": "ok"}
        assert health.headers["x-request-id"]

        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["migrations"] == "current"

        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        schema = httpx.get(f"{base}/openapi.json").json()
        assert schema["info"]["title"] == "malipo"
        assert "/healthz" in schema["paths"]

        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'malipo_http_requests_total{method="GET",route="/readyz",status="200"}' in metrics.text
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=20)[0].decode()
    # uvicorn re-raises SIGTERM once it has shut down gracefully, hence -15 rather than 0.
    assert server.returncode in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "worker.stopped" in events, "the in-process worker ran and stopped with the server"
    assert "Application shutdown complete." in events
    assert not [line for line in lines if line["level"] in ("error", "critical")]


def test_readyz_says_not_ready_when_migrations_are_behind(tmp_path: Path, live_server: object) -> None:
    from malipo.app import create_app
    from malipo.config import Settings

    settings = Settings(var_dir=tmp_path / "var", inprocess_worker=False).require_secrets()
    server = live_server(create_app(settings))  # type: ignore[operator]  # a database never migrated
    reply = httpx.get(f"{server.url}/readyz")
    assert reply.status_code == 503
    assert reply.json()["migrations"] == "behind"
    assert reply.json()["status"] == "not_ready"


def test_production_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    env = _env(tmp_path / "var", MALIPO_ENV="production")
    result = _malipo("db", "upgrade", env=env)
    assert result.returncode == 2
    assert "MALIPO_SECRET_KEY" in result.stderr
    assert "MALIPO_ENCRYPTION_KEY" in result.stderr
    assert not (tmp_path / "var" / "secrets.json").exists()


def test_generated_secrets_are_kept_private_and_reused(tmp_path: Path) -> None:
    from malipo.config import Settings

    first = Settings(var_dir=tmp_path / "var").require_secrets()
    second = Settings(var_dir=tmp_path / "var").require_secrets()
    path = tmp_path / "var" / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.secret_key is not None
    assert second.secret_key is not None
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    from_env = Settings(var_dir=tmp_path / "other", secret_key="s" * 40).require_secrets()  # type: ignore[arg-type]
    assert from_env.secret_key is not None
    assert from_env.secret_key.get_secret_value() == "s" * 40
