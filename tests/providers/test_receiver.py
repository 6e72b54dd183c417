"""``malipo sim receiver``: the README's callback receiver, run as the real command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _start(port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALIPO_")}
    return subprocess.Popen(
        [sys.executable, "-m", "malipo.cli", "sim", "receiver", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_listening(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the receiver did not listen on {port}")


def test_receiver_answers_200_and_prints_each_callback() -> None:
    port = free_port()
    proc = _start(port)
    try:
        _wait_listening(port, proc)
        body = {"forward_url": "http://127.0.0.1/cb", "response": {"ResultCode": 0, "Amount": 1000}}
        got = httpx.post(
            f"http://127.0.0.1:{port}/cb?ref=INV-009",
            json=body,
            headers={"X-Malipo-Callback-Id": "cb_123", "Authorization": "Bearer not-shown"},
        )
        assert got.status_code == 200
        assert got.json() == {"received": True}
        plain = httpx.put(f"http://127.0.0.1:{port}/other", content=b"not json")
        assert plain.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "POST /cb?ref=INV-009" in out, (out, err)
    assert "x-malipo-callback-id: cb_123" in out
    assert "content-type: application/json" in out
    # The JSON body, pretty-printed, follows its headers.
    start = out.index("{", out.index("POST /cb"))
    end = out.index("--- ", start) if "--- " in out[start:] else len(out)
    assert json.loads(out[start:end]) == body
    assert "PUT /other" in out
    assert "not json" in out
    assert "not-shown" not in out  # credentials are no header of interest


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start(port)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert out == ""
    line = f"malipo receiver: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert err.strip().splitlines() == [line]
