"""The real ``malipo`` command in a process of its own, as an operator runs it from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

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


def wait_until_serving(server: subprocess.Popen[bytes], base: str, output: Callable[[], str]) -> None:
    """Poll ``base``/healthz until ``malipo serve`` answers (30 s at most); a server that died
    fails with its ``output()``."""
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, output()
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "malipo serve did not answer within 30 s"
        time.sleep(0.1)
