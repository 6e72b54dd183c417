"""Logs read well at a terminal and are JSON elsewhere; a known secret is redacted as a whole value."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from malipo.core.logging import REDACTED, default_log_json, redact_secret
from malipo.email.tasks import _scrub

ROOT = Path(__file__).resolve().parents[2]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_json_defaults_to_true_only_when_stdout_is_not_a_terminal() -> None:
    assert default_log_json(io.StringIO()) is True
    assert default_log_json(_Terminal()) is False


def _upgrade_logs(tmp_path: Path, **extra: str) -> list[str]:
    """What `malipo db upgrade` logs (stderr) when its stdout is a terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALIPO_")}
    env |= {"MALIPO_VAR_DIR": str(tmp_path / "var"), "MALIPO_LOG_LEVEL": "INFO", **extra}
    primary, secondary = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "malipo.cli", "db", "upgrade"],
            env=env, cwd=ROOT, stdout=secondary, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(secondary)
        os.close(primary)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any("Running upgrade" in line for line in lines)
    return lines


def test_at_a_terminal_the_logs_are_readable_lines(tmp_path: Path) -> None:
    lines = _upgrade_logs(tmp_path)
    assert not [line for line in lines if line.lstrip().startswith("{")]
    assert any("[info" in line and "Running upgrade" in line for line in lines)


def test_malipo_log_json_still_chooses_json_at_a_terminal(tmp_path: Path) -> None:
    *logs, result = _upgrade_logs(tmp_path, MALIPO_LOG_JSON="true")
    assert result.startswith("database at revision")
    assert all(json.loads(line)["event"] for line in logs)


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        # The bug: a password of "x" turned an SMTP server's reply into "e[REDACTED]tension".
        ("530 5.7.0 Must issue a STARTTLS command first (extension)", "x",
         "530 5.7.0 Must issue a STARTTLS command first (extension)"),
        ("535 authentication failed for x", "x", f"535 authentication failed for {REDACTED}"),
        ("password hunter2 refused; hunter22 is another", "hunter2",
         f"password {REDACTED} refused; hunter22 is another"),
        ("AUTH PLAIN s3cr3t!", "s3cr3t!", f"AUTH PLAIN {REDACTED}"),
        ("user=a.b+c@d p=a.b+c@d.", "a.b+c@d", f"user={REDACTED} p={REDACTED}."),
        ("nothing to hide", "", "nothing to hide"),
        ("nothing to hide", None, "nothing to hide"),
    ],
)  # fmt: skip
def test_a_known_secret_is_redacted_as_a_whole_value_only(
    text: str, secret: str | None, expected: str
) -> None:
    assert redact_secret(text, secret) == expected


def test_a_mail_error_keeps_its_words_and_loses_the_password() -> None:
    reply = "535 5.7.8 x: bad credentials; the server needs the AUTH extension"
    assert _scrub(reply, "x") == f"535 5.7.8 {REDACTED}: bad credentials; the server needs the AUTH extension"
