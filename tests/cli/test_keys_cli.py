"""``malipo keys generate``: secrets in the format config.py reads, that production accepts."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from malipo.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _generate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALIPO_")}
    return subprocess.run(
        [sys.executable, "-m", "malipo.cli", "keys", "generate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _parse(stdout: str) -> dict[str, str]:
    pairs = [line.removeprefix("export ").split("=", 1) for line in stdout.splitlines()]
    return dict(pairs)


def test_generate_prints_both_secrets_production_accepts(tmp_path: Path) -> None:
    done = _generate(tmp_path)
    assert done.returncode == 0, done.stderr
    keys = _parse(done.stdout)
    assert sorted(keys) == ["MALIPO_ENCRYPTION_KEY", "MALIPO_SECRET_KEY"]
    assert len(base64.b64decode(keys["MALIPO_ENCRYPTION_KEY"], validate=True)) == 32
    assert len(keys["MALIPO_SECRET_KEY"]) >= 43  # 256 bits or more
    assert list(tmp_path.iterdir()) == []  # nothing written: no var/, no secrets.json

    # Production refuses to start without both secrets; with these it starts, and encrypts.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALIPO_")}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from malipo.config import load_settings; from malipo.core.crypto import encryptor;"
            "s = load_settings(); e = encryptor(); print(e.decrypt(e.encrypt('k')), s.env)",
        ],
        cwd=tmp_path,
        env={**env, "MALIPO_ENV": "production", **keys},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["k", "production"]
    assert list(tmp_path.iterdir()) == []

    again = _parse(_generate(tmp_path).stdout)
    assert again["MALIPO_SECRET_KEY"] != keys["MALIPO_SECRET_KEY"]
    assert again["MALIPO_ENCRYPTION_KEY"] != keys["MALIPO_ENCRYPTION_KEY"]


def test_export_prints_shell_lines(tmp_path: Path) -> None:
    done = _generate(tmp_path, "--export")
    assert done.returncode == 0, done.stderr
    assert [line.split("=")[0] for line in done.stdout.splitlines()] == [
        "export MALIPO_SECRET_KEY",
        "export MALIPO_ENCRYPTION_KEY",
    ]
    # Both are Settings fields, read from these variables.
    assert set(_parse(done.stdout)) == {f"MALIPO_{name.upper()}" for name in ("secret_key", "encryption_key")}
    assert {"secret_key", "encryption_key"} <= set(Settings.model_fields)
