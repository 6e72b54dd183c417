"""The load generator: a closed-loop HTTP/1.1 keep-alive client, run in its own process.

    python -m bench.load http://127.0.0.1:8000/healthz -c 32 -d 10 --warmup 2

Each of ``--connections`` connections sends a request, waits for the whole
response, and sends the next one, for ``--warmup`` seconds (not measured) and
then ``--duration`` seconds (measured). It prints one JSON object, a
:class:`LoadResult`, on stdout. Use :func:`bench.lib.run_load` from a bench
script: it runs this module in a second process, so the load generator never
shares an interpreter (or a GIL) with the server it measures.

Two clients:

* ``raw`` (default): a minimal ``asyncio.Protocol`` HTTP/1.1 client on uvloop
  when it is installed. It understands Content-Length and chunked bodies and
  ``Connection: close``; it does not speak TLS, HTTP/2 or redirects.
* ``httpx``: ``httpx.AsyncClient`` with one pooled connection per
  ``--connections``. Several times slower per request: on a small machine it
  saturates its core before the server does (see bench/README.md), so use it
  only for what ``raw`` cannot do (https).

Per-request bodies: ``--body-factory module:function`` (or ``path/to/file.py:function``)
is imported here and called with the request index (0, 1, 2 … across all
connections, warmup included). It returns the body (bytes, str, or a dict/list
sent as JSON) or a :class:`Request` to also set headers or the path.

Counting: a request counts when it *finishes* inside the measured window.
``requests`` counts responses of any status plus exceptions; ``errors`` holds
non-2xx responses by status ("503") and exceptions by class name; ``rps`` is
2xx responses per second. Latency percentiles cover every response (any
status), nearest rank. Being closed-loop, the generator waits for the server:
latencies under saturation are queueing delay at the chosen concurrency, not
what an open stream of arrivals would see.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

# A request still unanswered this long after the window closed is counted as "unfinished".
_GRACE_SECONDS = 5.0
# Pause after a failed connect or a broken connection, so a dead server is not hammered.
_ERROR_PAUSE_SECONDS = 0.01


class Request(NamedTuple):
    """What a body factory may return instead of a bare body."""

    body: bytes | str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] | None = None
    path: str | None = None  # path and query string, replacing the URL's


@dataclass
class LoadResult:
    requests: int  # responses (any status) and exceptions finished inside the measured window
    errors: dict[str, int]  # non-2xx by status ("503"), exceptions by class name, "unfinished"
    rps: float  # 2xx responses per second of the measured window
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    duration_s: float  # the measured window (warmup excluded)
    connections: int
    client: str  # "raw/uvloop", "raw/asyncio", "httpx/asyncio" …
    client_cpu: float | None  # load generator CPU seconds per wall second in the window (1.0 = one core)
    server_cpu: float | None  # the same for --server-pid (Linux only), None if not measured
    other_cpu: float | None = None  # cores busy with anything else on the machine (Linux only)
    # 2xx responses over the whole run, warmup included: what the server did, to check its effects.
    ok_all: int = 0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def ok(self) -> int:
        return self.requests - sum(n for key, n in self.errors.items() if key != "unfinished")

    @property
    def server_us_per_request(self) -> float | None:
        """Server CPU microseconds per 2xx response: steadier than req/s on a busy machine."""
        if self.server_cpu is None or not self.rps:
            return None
        return self.server_cpu / self.rps * 1e6

    def as_row(self, label: str) -> dict[str, Any]:
        """A row for :func:`bench.lib.print_table`."""
        return {
            "target": label,
            "req/s": self.rps,
            "p50 ms": self.p50_ms,
            "p90 ms": self.p90_ms,
            "p99 ms": self.p99_ms,
            "max ms": self.max_ms,
            "requests": self.requests,
            "errors": self.errors,
            "client cpu": self.client_cpu,
            "server cpu": self.server_cpu,
            "other cpu": self.other_cpu,
            "server us/req": self.server_us_per_request,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------- requests


def encode_body(value: Any) -> tuple[bytes, str | None]:
    """``value`` as bytes, and the content type it implies (JSON for dicts and lists)."""
    if value is None:
        return b"", None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), None
    if isinstance(value, str):
        return value.encode(), None
    return json.dumps(value, separators=(",", ":")).encode(), "application/json"


def load_callable(spec: str) -> Callable[[int], Any]:
    """``"package.module:function"`` or ``"path/to/file.py:function"``."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected module:function, got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        loaded = importlib.util.spec_from_file_location(f"_bench_factory_{path.stem}", path)
        if loaded is None or loaded.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


@dataclass
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, path, parts.netloc)


class RequestSource:
    """Produces (path, headers, body) for request number ``index``."""

    def __init__(
        self,
        target: Target,
        method: str,
        headers: dict[str, str],
        body: bytes,
        factory: Callable[[int], Any] | None,
    ) -> None:
        self.target = target
        self.method = method.upper()
        self.headers = headers
        self.body = body
        self.factory = factory
        self.index = 0

    @property
    def static(self) -> bool:
        return self.factory is None

    def next(self) -> tuple[str, dict[str, str], bytes]:
        index = self.index
        self.index += 1
        if self.factory is None:
            return self.target.path, self.headers, self.body
        made = self.factory(index)
        path, headers = self.target.path, self.headers
        if isinstance(made, Request):
            if made.headers:
                headers = {**headers, **made.headers}
            path = made.path or path
            made = made.body
        body, content_type = encode_body(made)
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers = {**headers, "Content-Type": content_type}
        return path, headers, body

    def render(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """The request on the wire (HTTP/1.1, keep-alive)."""
        names = {k.lower() for k in headers}
        lines = [f"{self.method} {path} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {self.target.host_header}")
        if "user-agent" not in names:
            lines.append("User-Agent: malipo-bench")
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
        if body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --------------------------------------------------------------------------- recording


class Recorder:
    """Keeps what finishes inside [warm_end, end]; ``stopping`` tells connections to finish."""

    def __init__(self, warm_end: float, end: float) -> None:
        self.warm_end = warm_end
        self.end = end
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.exceptions: Counter[str] = Counter()
        self.ok_all = 0  # 2xx responses at any time, warmup and grace included
        self.stopping = False

    def response(self, status: int, started: float, finished: float) -> None:
        if 200 <= status < 300:
            self.ok_all += 1
        if self.warm_end <= finished <= self.end:
            self.latencies.append(finished - started)
            self.statuses[status] += 1

    def exception(self, exc: BaseException) -> None:
        if self.warm_end <= time.perf_counter() <= self.end:
            self.exceptions[type(exc).__name__] += 1


# --------------------------------------------------------------------------- raw client


class ProtocolError(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.closed = False
        self.head_only = False
        self._new_response()

    def _new_response(self) -> None:
        self._body_start = -1
        self._status = 0
        self._length = -1  # -1 with _chunked False: the body runs until the server closes
        self._chunked = False
        self._chunk_pos = 0
        self._keep_alive = True

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None:
            self._advance_or_fail()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if self._body_start >= 0 and self._length < 0 and not self._chunked:
            waiter.set_result((self._status, False))  # a body delimited by the close
        else:
            waiter.set_exception(exc or ConnectionResetError("connection closed by the server"))

    # ours

    def send(self, data: bytes, head_only: bool) -> asyncio.Future[tuple[int, bool]]:
        assert self.transport is not None
        waiter: asyncio.Future[tuple[int, bool]] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        self.head_only = head_only
        self.transport.write(data)
        if self.buffer:  # bytes that arrived unasked (or a pipelining server)
            self._advance_or_fail()
        return waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _advance_or_fail(self) -> None:
        try:
            self._advance()
        except (ValueError, IndexError, ProtocolError) as exc:
            self._fail(ProtocolError(f"unparseable response: {exc}"))

    def _advance(self) -> None:
        buf = self.buffer
        if self._body_start < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(buf[:end]))
            self._body_start = self._chunk_pos = end + 4
            if self._status < 200:  # 1xx: an interim response; the real one follows
                del buf[: self._body_start]
                self._new_response()
                self._advance()
                return
        if self._length >= 0:
            total = self._body_start + self._length
            if len(buf) < total:
                return
        elif self._chunked:
            total = self._chunked_end()
            if total < 0:
                return
        else:
            return  # until the server closes
        del buf[:total]
        result = (self._status, self._keep_alive)
        self._new_response()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if not version.startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {lines[0][:60]!r}")
        self._status = int(rest[:3])
        keep_alive = version == b"HTTP/1.1"
        length = -1
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                value = value.lower()
                if b"close" in value:
                    keep_alive = False
                elif b"keep-alive" in value:
                    keep_alive = True
        if self.head_only or self._status in (204, 304) or self._status < 200:
            length, chunked = 0, False
        elif chunked:
            length = -1
        elif length < 0:
            keep_alive = False
        self._length, self._chunked, self._keep_alive = length, chunked, keep_alive

    def _chunked_end(self) -> int:
        """Where the chunked body ends in the buffer, or -1 if it has not all arrived."""
        buf = self.buffer
        pos = self._chunk_pos
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return -1
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                end = buf.find(b"\r\n\r\n", eol)  # after the trailers, if any
                return -1 if end < 0 else end + 4
            nxt = eol + 2 + size + 2
            if len(buf) < nxt:
                return -1
            pos = self._chunk_pos = nxt


class Pacer:
    """An open-loop schedule: request ``i`` is due at ``start + i / rate``, whichever connection sends it.

    Latency is then measured from when the request was due, not from when a free connection got
    to send it, so a server that falls behind shows its queue (no coordinated omission).
    """

    def __init__(self, rate: float, start: float) -> None:
        self.interval = 1.0 / rate
        self.next_due = start

    def take(self) -> float:
        due = self.next_due
        self.next_due += self.interval
        return due


async def _raw_connection(source: RequestSource, rec: Recorder, pacer: Pacer | None = None) -> None:
    loop = asyncio.get_running_loop()
    target = source.target
    head_only = source.method == "HEAD"
    static = source.render(*source.next()) if source.static else b""
    conn: _Connection | None = None
    perf_counter = time.perf_counter
    try:
        while not rec.stopping:
            if conn is None or conn.closed:
                try:
                    _, conn = await loop.create_connection(_Connection, target.host, target.port)
                except OSError as exc:
                    rec.exception(exc)
                    await asyncio.sleep(_ERROR_PAUSE_SECONDS)
                    continue
            data = static or source.render(*source.next())
            started = perf_counter()
            if pacer is not None:
                due = pacer.take()
                if due > started:
                    await asyncio.sleep(due - started)
                started = due
                if rec.stopping:
                    break
            try:
                status, keep_alive = await conn.send(data, head_only)
            except (OSError, ProtocolError) as exc:
                rec.exception(exc)
                conn.close()
                conn = None
                await asyncio.sleep(_ERROR_PAUSE_SECONDS)
                continue
            rec.response(status, started, perf_counter())
            if not keep_alive:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()


# --------------------------------------------------------------------------- httpx client


async def _httpx_run(
    source: RequestSource, rec: Recorder, connections: int
) -> tuple[list[asyncio.Task[None]], asyncio.Task[None]]:
    """The connection tasks, and a task that closes the client once they are done."""
    import httpx  # only this client needs it

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))
    base = f"{source.target.scheme}://{source.target.host_header}"

    async def one() -> None:
        perf_counter = time.perf_counter
        while not rec.stopping:
            path, headers, body = source.next()
            started = perf_counter()
            try:
                response = await client.request(source.method, base + path, headers=headers, content=body)
            except httpx.HTTPError as exc:
                rec.exception(exc)
                await asyncio.sleep(_ERROR_PAUSE_SECONDS)
                continue
            rec.response(response.status_code, started, perf_counter())

    async def all_then_close(tasks: list[asyncio.Task[None]]) -> None:
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await client.aclose()

    tasks = [asyncio.create_task(one()) for _ in range(connections)]
    return tasks, asyncio.create_task(all_then_close(tasks))


# --------------------------------------------------------------------------- run


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields_after_name = stat[stat.rfind(")") + 2 :].split()
    utime, stime = int(fields_after_name[11]), int(fields_after_name[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent not idle since boot (Linux /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            first = fh.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice; guest is inside user.
    ticks = [int(v) for v in first[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def _run(
    source: RequestSource,
    *,
    client: str,
    connections: int,
    duration: float,
    warmup: float,
    server_pid: int | None,
    loop_name: str,
    rate: float | None = None,
) -> LoadResult:
    start = time.perf_counter()
    pacer = Pacer(rate, start) if rate else None
    rec = Recorder(start + warmup, start + warmup + duration)
    if client == "raw":
        if source.target.scheme != "http":
            raise SystemExit("the raw client speaks plain http only; use --client httpx for https")
        tasks = [asyncio.create_task(_raw_connection(source, rec, pacer)) for _ in range(connections)]
        closer = None
    else:
        if pacer is not None:
            raise SystemExit("--rate needs the raw client")
        tasks, closer = await _httpx_run(source, rec, connections)

    # A connection task that raises is a bug in the generator (or a body factory), not a
    # server error: stop at once and show it, rather than measure with fewer connections.
    failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def watch(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not failure.done():
            failure.set_result(task.exception())  # type: ignore[arg-type]

    for task in tasks:
        task.add_done_callback(watch)

    async def wait_until(deadline: float) -> None:
        await asyncio.wait([failure], timeout=max(0.0, deadline - time.perf_counter()))
        if failure.done():
            rec.stopping = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # retrieves every exception
            if closer is not None:
                await closer
            raise failure.result()

    await wait_until(rec.warm_end)
    cpu0, server0, busy0 = time.process_time(), _server_cpu(server_pid), machine_busy_seconds()
    wall0 = time.perf_counter()
    await wait_until(rec.end)
    cpu1, server1, busy1 = time.process_time(), _server_cpu(server_pid), machine_busy_seconds()
    wall1 = time.perf_counter()
    rec.stopping = True

    _, pending = await asyncio.wait(tasks, timeout=_GRACE_SECONDS)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if closer is not None:
        await closer
    if failure.done():
        raise failure.result()

    latencies = sorted(rec.latencies)
    errors: dict[str, int] = {str(s): n for s, n in sorted(rec.statuses.items()) if not 200 <= s < 300}
    errors.update(rec.exceptions)
    if pending:
        errors["unfinished"] = len(pending)
    ok = sum(n for s, n in rec.statuses.items() if 200 <= s < 300)
    wall = wall1 - wall0
    client_cpu = (cpu1 - cpu0) / wall if wall > 0 else None
    server_cpu = (server1 - server0) / wall if server0 is not None and server1 is not None else None
    other_cpu = None
    if busy0 is not None and busy1 is not None and client_cpu is not None and wall > 0:
        other_cpu = max(0.0, (busy1 - busy0) / wall - client_cpu - (server_cpu or 0.0))
    ms = 1000.0
    return LoadResult(
        requests=len(latencies) + sum(rec.exceptions.values()),
        errors=errors,
        rps=ok / duration,
        p50_ms=_percentile(latencies, 0.50) * ms,
        p90_ms=_percentile(latencies, 0.90) * ms,
        p99_ms=_percentile(latencies, 0.99) * ms,
        max_ms=(latencies[-1] if latencies else math.nan) * ms,
        mean_ms=(sum(latencies) / len(latencies) if latencies else math.nan) * ms,
        duration_s=duration,
        connections=connections,
        client=f"{client}/{loop_name}",
        client_cpu=client_cpu,
        server_cpu=server_cpu,
        other_cpu=other_cpu,
        ok_all=rec.ok_all,
    )


def _server_cpu(pid: int | None) -> float | None:
    return None if pid is None else process_cpu_seconds(pid)


def _loop_factory(name: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise
        else:
            return uvloop.new_event_loop, "uvloop"
    return None, "asyncio"


def _parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {raw!r}")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("-X", "--method", default="GET")
    parser.add_argument("-H", "--header", action="append", default=[], type=_parse_header)
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--data", help="request body (a string)")
    body.add_argument("--body-file", type=Path, help="request body (a file's bytes)")
    body.add_argument("--body-factory", help="module:function called with the request index")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    parser.add_argument("--server-pid", type=int, help="also report this process's CPU use")
    parser.add_argument(
        "--rate",
        type=float,
        help="open loop: send this many requests per second in all (latency counts from when each was due)",
    )
    args = parser.parse_args(argv)

    body_bytes = b""
    if args.data is not None:
        body_bytes = args.data.encode()
    elif args.body_file is not None:
        body_bytes = args.body_file.read_bytes()
    factory = load_callable(args.body_factory) if args.body_factory else None
    source = RequestSource(Target.parse(args.url), args.method, dict(args.header), body_bytes, factory)

    loop_factory, loop_name = _loop_factory(args.loop)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(
            _run(
                source,
                client=args.client,
                connections=args.connections,
                duration=args.duration,
                warmup=args.warmup,
                server_pid=args.server_pid,
                loop_name=loop_name,
                rate=args.rate,
            )
        )
    sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    return 0


if __name__ == "__main__":
    # Run bench.load's main, not this __main__ copy of the module, so that a body factory
    # returning bench.load.Request and this code share one Request class.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.load import main as _main

    sys.exit(_main())
