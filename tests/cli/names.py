"""The ``malipo …`` commands named in the project's text files, and whether each exists."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from malipo.cli import app

# `malipo`, `.venv/bin/malipo` or any absolute …/bin/malipo, as a command word (not a host, a
# database name or a cookie: malipo.example, /malipo, malipo_csrf).
_COMMAND = re.compile(r"(?<![\w@.:/-])(?:\.venv/bin/|/[\w./-]*/bin/)?malipo(?=[ \t]+[a-z])")
_WORD = re.compile(r"[a-z][a-z0-9-]*")


def malipo_commands(text: str) -> list[tuple[str, ...]]:
    """Each command named in ``text`` as its subcommand words (``("db", "upgrade")``): the words
    after ``malipo`` up to the first option, placeholder, operator or end of line."""
    found: list[tuple[str, ...]] = []
    for match in _COMMAND.finditer(text):
        rest = text[match.end() :].split("\n", 1)[0]
        words: list[str] = []
        for token in rest.split():
            if not _WORD.fullmatch(token):
                break
            words.append(token)
        if words and words not in [list(f) for f in found]:
            found.append(tuple(words))
    return found


def run_help(words: tuple[str, ...]) -> tuple[int, str]:
    """``malipo <words> --help``: its exit code and output."""
    result = CliRunner().invoke(app, [*words, "--help"])
    return result.exit_code, result.output


def command_text(text: str) -> str:
    """The parts of a shell-like file that are commands: lines that are not comments (without their
    trailing ``# …``), comment lines indented as examples (``#   malipo db upgrade``), and
    `backtick` spans in any comment. Prose comments (``# malipo under systemd``) are left out."""
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped[1:]
            if body.startswith("  "):
                kept.append(re.sub(r"\s#.*", "", body))
            kept.extend(re.findall(r"`([^`\n]+)`", body))
        else:
            kept.append(re.sub(r"(^|\s)#.*", "", line))
            kept.extend(re.findall(r"`([^`\n]+)`", line))
    return "\n".join(kept)
