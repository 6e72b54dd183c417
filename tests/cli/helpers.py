"""The real ``malipo`` command in a process of its own, as an operator runs it from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its ``MALIPO_`` settings, plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MALIPO_")}, **extra}


def malipo_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment with ``var_dir`` for the database and secrets; quiet unless ``extra`` says."""
    return clean_env(**{"MALIPO_VAR_DIR": str(var_dir), "MALIPO_LOG_LEVEL": "WARNING", **extra})


def run_malipo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m malipo.cli *args`` from the repository root; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "malipo.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
