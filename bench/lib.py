"""What bench scripts share: servers in subprocesses, a load generator in another, tables, JSON.

    from bench import lib

    port = lib.free_port()
    with lib.serving([sys.executable, "-m", "malipo.cli", "serve", "--port", str(port)], env, port) as proc:
        result = lib.run_load(f"http://127.0.0.1:{port}/healthz", server_pid=proc.pid)
    lib.print_table([result.as_row("malipo")])
    lib.write_json("my_bench", {"malipo": result})

Every subprocess runs from the repository root with this interpreter, and with
an environment *without* the caller's ``MALIPO_*`` variables (plus the ``env``
given): a benchmark must not pick up a developer's database or settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import LoadResult, Request, encode_body, process_cpu_seconds

__all__ = [
    "RESULTS_DIR",
    "ROOT",
    "LoadResult",
    "Request",
    "ServerError",
    "child_env",
    "free_port",
    "print_table",
    "process_cpu_seconds",
    "run_command",
    "run_load",
    "serving",
    "start_server",
    "stop_server",
    "write_json",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"


class ServerError(RuntimeError):
    """A server that exited, or never became ready; the message ends with its log."""


# --------------------------------------------------------------------------- processes


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment minus ``MALIPO_*`` variables, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALIPO_")}
    base.update(env or {})
    return base


def run_command(argv: list[str], env: Mapping[str, str] | None = None, timeout: float = 300.0) -> str:
    """Run a setup command (a migration, a seed) like the servers are run; return its stdout.

    Raises :class:`RuntimeError` with the end of its output if it fails.
    """
    done = subprocess.run(
        argv, cwd=ROOT, env=child_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise RuntimeError(f"{argv!r} failed with exit code {done.returncode}:\n{output}")
    return done.stdout


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_server(
    argv: list[str],
    env: Mapping[str, str],
    port: int,
    ready_path: str = "/healthz",
    timeout: float = 30.0,
    *,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` and return once ``GET http://host:port/ready_path`` answers 200.

    The server's stdout and stderr go to ``log_path`` (a temporary file by
    default, removed by :func:`stop_server`), never to a pipe nobody reads: a
    server blocked on a full pipe would look slow. Raises :class:`ServerError`
    if the process exits or is not ready within ``timeout`` seconds.
    """
    own_log = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="malipo-bench-server-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=child_env(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    proc.bench_log_path = log_path  # type: ignore[attr-defined]
    proc.bench_own_log = own_log  # type: ignore[attr-defined]

    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while True:
        if proc.poll() is not None:
            message = f"{argv!r} exited with {proc.returncode} before it was ready" + _log_tail(log_path)
            _cleanup_log(proc)
            raise ServerError(message)
        try:
            status = _get_status(host, port, ready_path)
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if status == 200:
                return proc
            last_error = f"HTTP {status}"
        if time.monotonic() > deadline:
            tail = _log_tail(log_path)
            stop_server(proc)
            raise ServerError(f"{argv!r} not ready at {ready_path} after {timeout}s ({last_error})" + tail)
        time.sleep(0.05)


def stop_server(proc: subprocess.Popen[Any], timeout: float = 15.0) -> int | None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _cleanup_log(proc)
    return proc.returncode


@contextlib.contextmanager
def serving(
    argv: list[str], env: Mapping[str, str], port: int, ready_path: str = "/healthz", timeout: float = 30.0
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`start_server` … :func:`stop_server` as a ``with`` block."""
    proc = start_server(argv, env, port, ready_path, timeout)
    try:
        yield proc
    finally:
        stop_server(proc)


def _get_status(host: str, port: int, path: str) -> int:
    conn = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    return f"\n--- server output (last {lines} lines) ---\n{tail}" if tail else ""


def _cleanup_log(proc: subprocess.Popen[Any]) -> None:
    path: Path | None = getattr(proc, "bench_log_path", None)
    if path is not None and getattr(proc, "bench_own_log", False):
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- load


def run_load(
    url: str,
    *,
    method: str = "GET",
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    headers: Mapping[str, str] | None = None,
    connections: int = 32,
    duration: float = 10.0,
    warmup: float = 2.0,
    body_factory: str | Callable[[int], Any] | None = None,
    client: str = "raw",
    server_pid: int | None = None,
    rate: float | None = None,
) -> LoadResult:
    """Load ``url`` from a second process (``python -m bench.load``) and return what it measured.

    ``body`` is sent with every request (a dict or list as JSON). For a body per
    request, ``body_factory`` is ``"module:function"`` (or ``"path/file.py:function"``),
    imported in the load process and called with the request index; a function
    object is accepted if it can be imported by that name (a function of the
    running script is found through the script's file). It returns the body or a
    :class:`bench.load.Request` (body, headers, path). ``client`` is ``"raw"`` or
    ``"httpx"`` (see bench/load.py). ``server_pid`` adds the server's CPU use to
    the result, to show which side was saturated. ``rate`` makes the load open-loop: that
    many requests per second in all, each timed from when it was due.
    """
    if body is not None and body_factory is not None:
        raise ValueError("give body or body_factory, not both")
    cmd = [
        sys.executable,
        "-m",
        "bench.load",
        url,
        "--method",
        method,
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--client",
        client,
    ]
    all_headers = dict(headers or {})
    body_file: Path | None = None
    if body is not None:
        data, content_type = encode_body(body)
        if content_type and not any(k.lower() == "content-type" for k in all_headers):
            all_headers["Content-Type"] = content_type
        fd, name = tempfile.mkstemp(prefix="malipo-bench-body-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        body_file = Path(name)
        cmd += ["--body-file", name]
    if body_factory is not None:
        cmd += ["--body-factory", _factory_spec(body_factory)]
    for name, value in all_headers.items():
        cmd += ["--header", f"{name}: {value}"]
    if server_pid is not None:
        cmd += ["--server-pid", str(server_pid)]
    if rate:
        cmd += ["--rate", str(rate)]
    try:
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=warmup + duration + 120,
            check=False,
        )
    finally:
        if body_file is not None:
            body_file.unlink(missing_ok=True)
    if done.stderr:
        sys.stderr.write(done.stderr)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the load generator failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return LoadResult.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _factory_spec(factory: str | Callable[[int], Any]) -> str:
    if isinstance(factory, str):
        return factory
    module = getattr(factory, "__module__", None)
    name = getattr(factory, "__qualname__", None)
    if not module or not name or "<" in name:
        raise ValueError(f"{factory!r} cannot be imported by name in the load process")
    if module == "__main__":
        main_file = getattr(sys.modules["__main__"], "__file__", None)
        if not main_file:
            raise ValueError("a function of an interactive __main__ cannot be sent to the load process")
        return f"{Path(main_file).resolve()}:{name}"
    return f"{module}:{name}"


# --------------------------------------------------------------------------- output


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "0"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any] | LoadResult], title: str | None = None) -> None:
    """Print rows (mappings, or LoadResults) as an aligned text table; numbers right-aligned."""
    dict_rows = [r.as_row(f"#{i + 1}") if isinstance(r, LoadResult) else dict(r) for i, r in enumerate(rows)]
    columns: list[str] = []
    for row in dict_rows:
        columns += [key for key in row if key not in columns]
    cells = [[_format(row.get(col)) for col in columns] for row in dict_rows]
    widths = [max(len(col), *(len(line[i]) for line in cells)) for i, col in enumerate(columns)]
    numeric = [
        all(isinstance(row.get(col), int | float) or row.get(col) is None for row in dict_rows)
        for col in columns
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    if title:
        print(title)
    print(line(columns))
    print(line(["-" * w for w in widths]))
    for row_cells in cells:
        print(line(row_cells))
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, LoadResult):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def write_json(name: str, results: Any) -> Path:
    """Write ``results`` (and where/when they were measured) to bench/results/<name>.json."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    document = {
        "name": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "commit": _git_commit(),
        "results": _jsonable(results),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path
