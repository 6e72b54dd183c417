"""The ``malipo`` command: serve, worker, db, seed-demo, and the groups of the other modules."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import socket
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from malipo.cli.collections import channels_app
from malipo.cli.common import MalipoTyper, console, require_secrets, settings_or_exit, state
from malipo.cli.disburse import disburse
from malipo.cli.identity import clients_app
from malipo.cli.keys import keys_app
from malipo.cli.ledger import ledger_app
from malipo.cli.messaging import mail_app
from malipo.cli.providers import sim_app
from malipo.cli.rails import rail_balances
from malipo.cli.reconcile import reconcile
from malipo.core.clock import SystemClock
from malipo.db import Database

app = MalipoTyper(
    help="malipo: a self-hosted payment gateway.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(clients_app, name="clients")
app.add_typer(channels_app, name="channels")
app.add_typer(ledger_app, name="ledger")
app.add_typer(mail_app, name="mail")
app.add_typer(sim_app, name="sim")
app.add_typer(keys_app, name="keys")
app.command("rail-balances")(rail_balances)
app.command("reconcile")(reconcile)
app.command("disburse")(disburse)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("malipo")
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"malipo {_version()}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    """malipo: a self-hosted payment gateway."""
    state.debug = debug


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: MALIPO_HOST]")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on, 0 for any free one [default: MALIPO_PORT]")
    ] = None,
) -> None:
    """Serve the API, pages and (unless MALIPO_INPROCESS_WORKER=false) the outbox worker.

    Without MALIPO_PUBLIC_URL, callback URLs and links in mails follow the port it listens on.
    SIGTERM stops it gracefully within MALIPO_SHUTDOWN_GRACE_SECONDS.
    """
    from malipo.app import create_app, stop_taking_work
    from malipo.cli.server import GracefulServer
    from malipo.config import local_url
    from malipo.core.logging import get_logger

    settings = settings_or_exit()
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    # Listen before anything starts (the app, its worker): a taken port is one line, exit 1.
    sock = _listen(host, port)
    settings.listen_on(host, sock.getsockname()[1])
    get_logger("malipo.serve").info(
        "serve.listening", url=local_url(settings.host, settings.port), public_url=settings.public_url
    )
    application = create_app(settings)
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        access_log=False,  # the request middleware logs each request, with its id
        log_config=None,  # keep the JSON logging configured above
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,  # then requests are cut short
    )
    server = GracefulServer(config, on_signal=lambda: stop_taking_work(application))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` and listening, or exit 1 with one line saying why not."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not 0 <= port <= 65535:
        typer.echo(
            f"malipo serve: port {port} is not a port (0 to 65535); pass --port or set MALIPO_PORT", err=True
        )
        raise typer.Exit(2)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait TIME_WAIT out
        if family == socket.AF_INET6 and host in ("::", "[::]"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # :: takes IPv4 as well
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = (
                f"port {port} is already in use (another malipo serve?): stop that process,"
                " or choose another port with --port or MALIPO_PORT"
            )
        elif exc.errno == errno.EACCES:
            reason = f"not allowed to listen on port {port}: use a port above 1023 (--port or MALIPO_PORT)"
        elif exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            reason = (
                f"{host} is not an address of this machine: use --host or MALIPO_HOST (127.0.0.1, 0.0.0.0)"
            )
        else:
            reason = f"{exc.strerror or exc}"
        typer.echo(f"malipo serve: cannot listen on {where}: {reason}", err=True)
        raise typer.Exit(1) from None
    sock.set_inheritable(True)
    return sock


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once [default: MALIPO_WORKER_CONCURRENCY]")
    ] = None,
) -> None:
    """Run an outbox worker alone (start any number of them; SIGTERM stops one gracefully)."""
    from malipo.worker.registry import load_job_modules
    from malipo.worker.runner import Worker

    settings = settings_or_exit()
    load_job_modules(settings.job_modules)

    async def main() -> None:
        db = Database.from_settings(settings)
        runner = Worker(db, settings, concurrency=concurrency)
        db.on_jobs_committed(runner.wake)
        db.notify_outbox = db.dialect == "postgresql"  # and the other workers
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.request_stop)
        try:
            await runner.run()
        finally:
            await db.dispose()

    # uvloop where installed (uvicorn[standard] brings it, as `malipo serve` runs on it): the
    # worker is mostly socket I/O, which asyncio's own loop does at several times the CPU.
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
            loop_runner.run(main())


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Migrate the database to the latest schema (creates a SQLite file if needed)."""
    from malipo.migrate import current_revision, upgrade

    settings = settings_or_exit(secrets=False)

    async def main() -> str | None:
        db = Database.from_settings(settings)
        try:
            async with db.engine.connect():
                pass  # reachable: only now is a first run's secrets file worth writing
            require_secrets(settings)
            await upgrade(db.engine, revision)
            return await current_revision(db.engine)
        finally:
            await db.dispose()

    console.print(f"database at revision [bold]{asyncio.run(main())}[/bold]")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and the code's head."""
    from malipo.migrate import current_revision, head_revision

    settings = settings_or_exit(existing=True)

    async def main() -> str | None:
        db = Database.from_settings(settings)
        try:
            return await current_revision(db.engine)
        finally:
            await db.dispose()

    current, head = asyncio.run(main()), head_revision()
    typer.echo(f"current: {current}\nhead:    {head}")
    if current != head:
        raise typer.Exit(1)


@db_app.command("revision")
def db_revision(message: Annotated[str, typer.Option("-m", "--message")]) -> None:
    """(Developers) Autogenerate a migration from the models against an up-to-date database."""
    from malipo.migrate import autogenerate

    settings = settings_or_exit()

    async def main() -> None:
        db = Database.from_settings(settings)
        try:
            await autogenerate(db.engine, message)
        finally:
            await db.dispose()

    asyncio.run(main())


@app.command("seed-demo")
def seed_demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object, for scripts")] = False,
    if_new: Annotated[
        bool, typer.Option("--if-new", help="Do nothing if the demo data exists (what `make run` uses)")
    ] = False,
) -> None:
    """Create a demo operator and merchant; print their credentials, live and sandbox, and wallets.

    On a second run the demo objects are kept and their secrets, stored hashed,
    are rotated and printed again.
    """
    from malipo.seed import demo_exists
    from malipo.seed import seed_demo as run_seed

    settings = settings_or_exit(existing=True)

    async def main() -> dict[str, object] | None:
        db = Database.from_settings(settings)
        try:
            if if_new and await demo_exists(db):
                return None
            return (await run_seed(db, SystemClock(), public_url=settings.public_url)).as_dict()
        finally:
            await db.dispose()

    result = asyncio.run(main())
    if result is None and as_json:
        typer.echo(json.dumps({"created": False}))
        return
    if result is None:
        console.print(
            "Demo data already exists. [bold]malipo seed-demo[/bold] rotates its secrets"
            " and prints them again."
        )
        return
    if as_json:
        typer.echo(json.dumps(result))
        return
    Console().print(_demo_table(result))


# The first-run table's sections: the rows of each mode, under a line that says how it is used.
_DEMO_SECTIONS = (
    (
        "LIVE mode",
        'the Pay Hero pair: -u "$USERNAME:$PASSWORD"',
        ("payhero_api_username", "payhero_api_password", "live_service_wallet", "live_payments_wallet"),
    ),
    (
        "SANDBOX mode",
        'the key: -u "$KEY:" on /api/v2, Bearer on /api/v1',
        ("sandbox_api_key", "sandbox_service_wallet", "sandbox_payments_wallet"),
    ),
)


def _demo_table(result: dict[str, object]) -> Table:
    """The first-run table: the demo's objects, then each mode's credentials and wallets."""
    table = Table(
        title="malipo demo credentials (shown once: secrets are stored hashed)",
        caption=(
            "Live and sandbox are separate: wallets, channels, transactions. Every /api/v2\n"
            "and /mailer reply names its mode in X-Malipo-Mode. M-Pesa, SMS and WhatsApp\n"
            "run on the built-in simulators in both until a provider is configured."
        ),
        caption_justify="left",
        show_header=False,
    )
    table.add_column("what", no_wrap=True)
    table.add_column("value", overflow="fold")
    in_sections = {key for _, _, keys in _DEMO_SECTIONS for key in keys}
    for key, value in result.items():
        if key not in in_sections:
            table.add_row(key, str(value))
    for title, how, keys in _DEMO_SECTIONS:
        table.add_section()
        table.add_row(f"[bold]{title}[/bold]", f"[bold]{how}[/bold]")
        for key in keys:
            table.add_row(key, str(result[key]))
    return table
