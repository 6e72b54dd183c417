"""The operator's files: .env.example lists every setting, and the Dockerfile, compose.yaml and
systemd units parse and name only ``malipo`` commands that exist."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from malipo.config import Settings
from tests.cli.names import command_text, malipo_commands, run_help

ROOT = Path(__file__).resolve().parents[1]


def _assert_commands_exist(commands: list[tuple[str, ...]], where: str) -> None:
    assert commands, f"{where} names no malipo command"
    for words in commands:
        code, output = run_help(words)
        assert code == 0, f"{where}: `malipo {' '.join(words)} --help` exited {code}:\n{output}"


# .env.example ------------------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^(?:# )?(MALIPO_[A-Z0-9_]+)=(.*)$")


def _env_example() -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := _ENV_LINE.match(line):
            named.setdefault(match[1], []).append(match[2])
        elif line.strip() and not line.startswith("#"):
            raise AssertionError(f".env.example: not a comment nor NAME=value: {line!r}")
    return named


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    named = _env_example()
    settings = {f"MALIPO_{name.upper()}" for name in Settings.model_fields}
    assert sorted(settings - set(named)) == [], "settings missing from .env.example"
    assert sorted(set(named) - settings) == [], ".env.example names variables malipo does not read"


def test_env_example_defaults_are_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """A commented line with a value states the default: read back, it is the default."""
    for key in list(__import__("os").environ):
        if key.startswith("MALIPO_"):
            monkeypatch.delenv(key)
    defaults = Settings()
    for name, values in _env_example().items():
        for value in values:
            if value == "" or name == "MALIPO_ENV":
                continue
            monkeypatch.setenv(name, value)
            field = name.removeprefix("MALIPO_").lower()
            assert getattr(Settings(), field) == getattr(defaults, field), f".env.example: {name}={value}"
            monkeypatch.delenv(name)


def test_env_example_sets_production_and_leaves_the_secrets_to_keys_generate() -> None:
    text = (ROOT / ".env.example").read_text()
    assert "\nMALIPO_ENV=production\n" in text
    assert "malipo keys generate >> .env" in text
    _assert_commands_exist(malipo_commands(command_text(text)), ".env.example")


# Dockerfile --------------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        pending += line.removesuffix("\\").strip() + " "
        if line.endswith("\\"):
            continue
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword, args.strip()))
        pending = ""
    assert not pending, "Dockerfile ends in a continuation"
    return instructions


_DOCKER_KEYWORDS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def test_dockerfile_parses_runs_as_a_user_and_serves() -> None:
    instructions = _dockerfile()
    keywords = [keyword for keyword, _ in instructions]
    assert set(keywords) <= _DOCKER_KEYWORDS, set(keywords) - _DOCKER_KEYWORDS
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the image runs as root"
    assert users[-1] not in {"root", "0"}
    cmd = [args for keyword, args in instructions if keyword == "CMD"]
    assert len(cmd) == 1
    assert json.loads(cmd[0]) == ["malipo", "serve"]  # exec form: SIGTERM reaches malipo
    assert keywords.index("USER") < keywords.index("CMD")
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "MALIPO_HOST=0.0.0.0" in env  # reachable from outside the container
    installs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "pip install ." in installs
    text = (ROOT / "Dockerfile").read_text()
    _assert_commands_exist(malipo_commands(command_text(text)), "Dockerfile")
    # What the image is built from is in the build context; local state (.env, var/) is not.
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    copied = {source for keyword, args in instructions if keyword == "COPY" for source in args.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "src"}
    assert not ignored & copied
    assert {".env", "var", ".venv"} <= ignored


# compose.yaml ------------------------------------------------------------------------------------


def test_compose_runs_migrations_once_then_api_and_workers_on_postgres_and_redis() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    commands = {name: service.get("command") for name, service in services.items()}
    assert commands["migrate"] == ["malipo", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert commands["api"][:2] == ["malipo", "serve"]
    assert commands["worker"] == ["malipo", "worker"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = services[name]["environment"]
        assert env["MALIPO_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert "@postgres:5432/" in env["MALIPO_DATABASE_URL"]
        assert env["MALIPO_REDIS_URL"].startswith("redis://redis:")
        assert env["MALIPO_ENV"] == "production"
    # The API processes leave the jobs to the workers.
    assert services["api"]["environment"]["MALIPO_INPROCESS_WORKER"] == "false"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    named = [tuple(cmd[1:]) for cmd in commands.values() if cmd and cmd[0] == "malipo"]
    in_comments = malipo_commands(command_text((ROOT / "compose.yaml").read_text()))
    _assert_commands_exist(
        [tuple(w for w in words if not w.startswith("-")) for words in named] + in_comments, "compose.yaml"
    )


# systemd -----------------------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: sections of keys, each with every value it is given."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, equals, value = line.partition("=")
        assert equals, f"{path.name}:{number}: not key=value: {line!r}"
        assert current is not None, f"{path.name}:{number}: a key before any section"
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()), f"{path.name}:{number}: bad key {key!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.mark.parametrize(
    ("unit", "command"), [("malipo.service", "serve"), ("malipo-worker.service", "worker")]
)
def test_systemd_units_parse_and_start_malipo(unit: str, command: str) -> None:
    path = ROOT / "deploy" / unit
    sections = _unit(path)
    assert set(sections) == {"Unit", "Service", "Install"}
    service = sections["Service"]
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/")  # systemd wants an absolute path
    assert argv[0].endswith("/bin/malipo")
    assert argv[1] == command
    assert service["User"] != ["root"]
    assert "Restart" in service
    assert service["EnvironmentFile"]
    assert "MALIPO_ENV=production" in service["Environment"]
    assert sections["Install"]["WantedBy"] == ["multi-user.target"]
    # Commands are in the Exec* lines and the comments' examples; the rest is prose and settings.
    lines = [line for line in path.read_text().splitlines() if line.startswith(("#", "Exec"))]
    _assert_commands_exist(malipo_commands(command_text("\n".join(lines))), unit)
