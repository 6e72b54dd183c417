"""The README runs as written: every ```sh block parses (``bash -n``) and every ``malipo`` command
it names, in a block or in `inline code`, exists (``--help`` exits 0). Files it links to exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli.names import command_text, malipo_commands, run_help

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


_SHELL = {"sh", "bash", "shell"}


def _shell_blocks() -> list[tuple[int, str]]:
    """(line number, text) of each fenced shell block."""
    return [
        (README.count("\n", 0, match.start()) + 1, match[2])
        for match in _BLOCK.finditer(README)
        if match[1] in _SHELL
    ]


def _inline_code() -> str:
    prose = _BLOCK.sub("", README)
    return "\n".join(re.findall(r"`([^`\n]+)`", prose))


def test_the_readme_has_shell_blocks_to_check() -> None:
    assert len(_shell_blocks()) >= 10
    # Commands in a block of another language would escape the checks below: label them sh.
    for match in _BLOCK.finditer(README):
        if match[1] not in _SHELL:
            commands = re.findall(r"^\s*(?:curl|malipo|\.venv/bin/malipo|export) .*", match[2], re.MULTILINE)
            assert commands == [], f"commands in a ```{match[1]} block: label it sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize(("line", "block"), _shell_blocks(), ids=lambda value: str(value)[:12])
def test_each_shell_block_parses_with_bash_n(line: int, block: str) -> None:
    checked = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, f"README.md:{line}: the sh block does not parse:\n{checked.stderr}"


def test_every_malipo_command_the_readme_names_exists() -> None:
    named = malipo_commands(command_text("\n".join(block for _, block in _shell_blocks())))
    named += [words for words in malipo_commands(_inline_code()) if words not in named]
    assert ("serve",) in named  # the scan finds commands at all
    assert ("sim", "receiver") in named
    assert ("keys", "generate") in named
    missing = []
    for words in named:
        code, output = run_help(words)
        if code != 0:
            missing.append(f"malipo {' '.join(words)}: --help exited {code}: {output.strip()[-200:]}")
    assert missing == []


def test_local_links_point_at_files_in_the_repository() -> None:
    for target in re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", README):
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"README links outside the repository: {target}"
        assert path.exists(), f"README links to a missing file: {target}"
    assert "../shared" not in README
