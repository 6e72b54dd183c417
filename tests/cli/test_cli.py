"""``make run``'s path: migrate, seed once, serve; probed over real HTTP from outside the process."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.cli.helpers import ROOT, malipo_env, run_malipo, wait_until_serving
from tests.fixtures.databases import CI, PG_ADMIN_DSN, _async_url, _with_database
from tests.fixtures.servers import free_port


@pytest.mark.slow
def test_make_run_path_migrates_seeds_once_and_serves(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = malipo_env(var)

    upgraded = run_malipo("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (var / "malipo.db").exists()
    secrets_file = var / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600

    first = run_malipo("seed-demo", "--if-new", "--json", env=env)
    assert first.returncode == 0, first.stderr
    demo = json.loads(first.stdout)
    assert demo["created"] is True
    assert demo["operator_email"] == "admin@malipo.example"
    assert demo["sandbox_api_key"].startswith("mk_test_")
    assert demo["payhero_api_username"]
    assert demo["payhero_api_password"]
    assert demo["sandbox_payment_link"].endswith("/pay/demo-shop")

    # A second `make run` seeds nothing and prints no secrets.
    again = run_malipo("seed-demo", "--if-new", env=env)
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stderr
    assert demo["operator_password"] not in again.stdout + again.stderr

    # `malipo seed-demo` on an existing demo keeps its objects and rotates the hashed secrets.
    rotated = json.loads(run_malipo("seed-demo", "--json", env=env).stdout)
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
        wait_until_serving(server, base, lambda: server.stdout.read().decode() if server.stdout else "")

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
    assert server.returncode == 0, "a graceful stop on SIGTERM exits 0"
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
    env = malipo_env(tmp_path / "var", MALIPO_ENV="production")
    result = run_malipo("db", "upgrade", env=env)
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


# -- errors: one line, an exit code, and nothing created --------------------------------------

MISSING_PG_DATABASE = _with_database(PG_ADMIN_DSN, f"malipo_missing_{uuid.uuid4().hex[:12]}")
UPGRADE_FIRST = "run `malipo db upgrade` first"


def _nothing_listening() -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/malipo"


CLI_ERRORS = [
    # Read-only commands on a fresh directory refuse to create a database or a secrets file.
    pytest.param(["ledger", "verify"], {}, 1, UPGRADE_FIRST, id="ledger-verify-no-database"),
    pytest.param(["mail", "list"], {}, 1, UPGRADE_FIRST, id="mail-list-no-database"),
    pytest.param(["clients", "list"], {}, 1, UPGRADE_FIRST, id="clients-list-no-database"),
    pytest.param(["db", "current"], {}, 1, UPGRADE_FIRST, id="db-current-no-database"),
    pytest.param(["seed-demo", "--json"], {}, 1, UPGRADE_FIRST, id="seed-demo-no-database"),
    pytest.param(["mail", "show", str(uuid.UUID(int=1))], {}, 1, UPGRADE_FIRST, id="mail-show-no-database"),
    pytest.param(
        ["channels", "list", "--client", str(uuid.UUID(int=1))], {}, 1, UPGRADE_FIRST,
        id="channels-list-no-database",
    ),
    pytest.param(
        ["db", "upgrade"], {"MALIPO_DATABASE_URL": "garbage"}, 2, "postgresql+asyncpg://", id="url-garbage"
    ),
    pytest.param(
        ["db", "upgrade"], {"MALIPO_DATABASE_URL": "postgresql://malipo:pw@127.0.0.1/malipo"}, 2,
        "write postgresql+asyncpg://malipo:***@127.0.0.1/malipo", id="url-without-asyncpg",
    ),
    pytest.param(
        ["db", "upgrade"], {"MALIPO_DATABASE_URL": "mysql://a@b/c"}, 2, "does not support mysql://",
        id="url-unsupported-database",
    ),
    pytest.param(
        ["db", "upgrade"], {"MALIPO_DATABASE_URL": _async_url(MISSING_PG_DATABASE)}, 1, "does not exist",
        id="pg-database-missing",
    ),
    pytest.param(
        ["db", "upgrade"], {"MALIPO_DATABASE_URL": _nothing_listening()}, 1, "cannot connect to the database",
        id="pg-nothing-listening",
    ),
    pytest.param(["serve"], {"MALIPO_PORT": "abc"}, 2, "MALIPO_PORT=abc", id="port-not-a-number"),
    pytest.param(["db", "upgrade"], {"MALIPO_LOG_LEVEL": "LOUD"}, 2, "LOG_LEVEL", id="log-level-unknown"),
    pytest.param(["mail", "show", "zz"], {}, 2, "not a message id: zz", id="mail-show-not-an-id"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "extra_env", "code", "says"), CLI_ERRORS)
def test_a_cli_error_is_one_line_with_its_exit_code_and_creates_nothing(
    tmp_path: Path, args: list[str], extra_env: dict[str, str], code: int, says: str
) -> None:
    if extra_env.get("MALIPO_DATABASE_URL") == _async_url(MISSING_PG_DATABASE):
        _require_postgres()
    var = tmp_path / "var"
    result = run_malipo(*args, env=malipo_env(var, **extra_env))
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("malipo: ")
    assert says in lines[0]
    assert result.stdout == ""
    assert not var.exists(), f"created {sorted(p.name for p in var.rglob('*'))}"


def test_debug_shows_the_traceback_under_the_one_line(tmp_path: Path) -> None:
    env = malipo_env(tmp_path / "var", MALIPO_DATABASE_URL=_nothing_listening())
    quiet = run_malipo("db", "upgrade", env=env)
    debug = run_malipo("--debug", "db", "upgrade", env=env)
    assert quiet.returncode == debug.returncode == 1
    assert "Traceback" not in quiet.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert "ConnectionRefusedError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


def _require_postgres() -> None:
    async def probe() -> None:
        await (await asyncpg.connect(PG_ADMIN_DSN, timeout=5)).close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError) as exc:
        if CI:
            raise
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: {exc}")


def test_version_and_completion(tmp_path: Path) -> None:
    env = malipo_env(tmp_path / "var")
    version = run_malipo("--version", env=env)
    assert version.returncode == 0
    assert version.stdout.strip() == f"malipo {importlib.metadata.version('malipo')}"
    # Typer's own completion, for the installed `malipo` command.
    script = Path(sys.executable).with_name("malipo")
    completion = subprocess.run(
        [str(script), "--show-completion", "bash"], env=env, capture_output=True, text=True, timeout=60
    )
    assert completion.returncode == 0, completion.stderr
    assert "complete -o default -F _malipo_completion malipo" in completion.stdout
    assert not (tmp_path / "var").exists()


# -- what an operator runs on a fresh install ----------------------------------------------------


async def _queue_mail(var: Path, **fields: str) -> None:
    import malipo.models  # noqa: F401  (every table, for the foreign keys)
    from malipo.config import Settings
    from malipo.core.clock import SystemClock
    from malipo.db import Database
    from malipo.email.service import queue_email

    db = Database.from_settings(Settings(var_dir=var).require_secrets())
    try:
        async with db.transaction() as session:
            await queue_email(session, purpose="password_reset", now=SystemClock().now(), **fields)  # type: ignore[arg-type]
    finally:
        await db.dispose()


async def test_an_operator_finds_clients_and_mail_from_the_command_line(tmp_path: Path) -> None:
    var = tmp_path / "var"
    env = malipo_env(var, MALIPO_LOG_LEVEL="INFO")

    upgraded = run_malipo("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Running upgrade" in upgraded.stderr  # what the migrations did is logged …
    assert "Context impl" not in upgraded.stderr  # … but not Alembic's chatter on every command
    assert "Will assume" not in upgraded.stderr
    current = run_malipo("db", "current", env=env)
    assert current.returncode == 0
    assert "Context impl" not in current.stderr

    demo = json.loads(run_malipo("seed-demo", "--if-new", "--json", env=env).stdout)
    assert demo["created"] is True
    again = run_malipo("seed-demo", "--if-new", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"created": False}

    # `malipo clients list` shows the id that --client takes.
    listed = run_malipo("clients", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [client] = json.loads(listed.stdout)
    assert (client["id"], client["name"], client["status"]) == (
        demo["merchant_id"],
        "Demo Merchant",
        "Active",
    )
    assert (client["live_channels"], client["test_channels"], client["api_users"]) == (0, 0, 1)
    table = run_malipo("clients", "list", env={**env, "COLUMNS": "80"})
    assert demo["merchant_id"] in table.stdout, "the whole id, never cut short at 80 columns"
    assert max(len(line) for line in table.stdout.splitlines()) <= 80

    added = run_malipo("channels", "add", "--client", client["id"], "--type", "cheque", "--short-code",
                       "123456", "--description", "Shop", env=env)  # fmt: skip
    assert added.returncode == 2
    assert added.stderr.strip() == "malipo: --type: must be paybill, till or bank"
    channels = run_malipo("channels", "list", "--client", client["id"], "--mode", "test", "--json", env=env)
    assert [c["channel_type"] for c in json.loads(channels.stdout)] == ["wallet"]
    assert json.loads(run_malipo("clients", "list", "--json", env=env).stdout)[0]["test_channels"] == 1

    # `malipo mail list` fits 80 columns with each whole id, and prints JSON for scripts.
    to = "someone.with.a.rather.long.address@example-merchant.co.ke"
    await _queue_mail(var, to=to, subject="Reset your password [bold]now[/bold]", text="Hello,\nthe link.\n")
    mail = run_malipo("mail", "list", "--json", env=env)
    assert mail.returncode == 0, mail.stderr
    [message] = json.loads(mail.stdout)
    assert (message["to"], message["subject"], message["status"]) == (
        to, "Reset your password [bold]now[/bold]", "queued"
    )  # fmt: skip
    readable = run_malipo("mail", "list", env={**env, "COLUMNS": "80"})
    assert message["id"] in readable.stdout
    assert f"to {to}: Reset your password [bold]now[/bold]" in readable.stdout
    shown = run_malipo("mail", "show", message["id"], env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "Hello,\nthe link.\n"  # the body alone on stdout, for a pipe
    assert shown.stderr.endswith(f"Subject: Reset your password [bold]now[/bold]\nStatus: queued   Purpose: "
                                 f"password_reset\nCreated: {message['created_at']}\n\n")  # fmt: skip


def test_the_readme_commands_table_lists_every_command() -> None:
    import typer.main

    from malipo.cli import app

    section = (ROOT / "README.md").read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]

    def paths(command: object, prefix: str) -> list[str]:
        children = getattr(command, "commands", None)
        if not children:
            return [prefix]
        return [p for name, child in children.items() for p in paths(child, f"{prefix} {name}")]

    commands = paths(typer.main.get_command(app), "malipo")
    assert len(commands) > 10
    missing = [command for command in commands if f"`{command}" not in section]
    assert missing == []
