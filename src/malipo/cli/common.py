"""What every ``malipo`` command shares: settings (or a clear refusal), logging, and errors.

An error a user can act on is one line on stderr saying what is wrong and what to do, never
a traceback: exit code 2 for a usage or configuration mistake, 1 for a check or an operation
that failed. ``malipo --debug …`` shows the traceback as well. :class:`MalipoTyper` does this
for every command in one place; commands only call :func:`settings_or_exit`.
"""

from __future__ import annotations

import re
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from malipo.config import ConfigurationError, Settings
from malipo.core.logging import configure_logging, default_log_json, is_sensitive_key

console = Console(stderr=True)

_DRIVER_PREFIX = re.compile(r"^\([\w.]+\)\s*")

USAGE = 2  # the command, its options or the settings are wrong
FAILED = 1  # the command ran and something it checked or did failed

DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
URL_HINT = "use sqlite+aiosqlite:///path/to/malipo.db or postgresql+asyncpg://user:password@host:5432/name"
UPGRADE_HINT = "run `malipo db upgrade` first"


class CliError(Exception):
    """A refusal with one line for the user and its exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _State:
    debug = False


state = _State()


def fail(message: str, code: int = FAILED) -> typer.Exit:
    """Print ``message`` as malipo's one error line and return the Exit to raise."""
    console.print(f"[red]malipo:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class MalipoTyper(typer.Typer):
    """A Typer whose commands' exceptions become one line (and an exit code), not a traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:  # every command's last resort: say what went wrong in one line
            message, code = explain(exc)
            if state.debug:
                traceback.print_exception(exc)
            raise SystemExit(fail(message, code).exit_code) from None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)


def explain(exc: BaseException) -> tuple[str, int]:
    """One line saying what ``exc`` means for the user and what to do, and the exit code."""
    from sqlalchemy.exc import ArgumentError

    if isinstance(exc, CliError):
        return exc.message, exc.code
    if isinstance(exc, ConfigurationError):
        return f"cannot start: {exc}", USAGE
    if isinstance(exc, ValidationError):
        return _settings_problem(exc), USAGE
    for cause in _chain(exc):
        name = type(cause).__name__
        # The driver's own words, without SQLAlchemy's "(sqlalchemy.dialects….Error) " prefix.
        text = _DRIVER_PREFIX.sub("", str(cause).strip().split("\n", 1)[0]) or name
        if isinstance(cause, ArgumentError):
            return f"MALIPO_DATABASE_URL is not a database URL: {URL_HINT}", USAGE
        if isinstance(cause, ModuleNotFoundError) and cause.name:
            return f"MALIPO_DATABASE_URL needs a driver malipo does not use ({cause.name}): {URL_HINT}", USAGE
        if name == "InvalidCatalogNameError" or ("database" in text and "does not exist" in text):
            return f"{text}: create it (createdb <name>) or fix MALIPO_DATABASE_URL", FAILED
        if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
            return f"the database refused the login ({text}): check MALIPO_DATABASE_URL", FAILED
        if isinstance(cause, ConnectionRefusedError | socket.gaierror | TimeoutError):
            return (
                f"cannot connect to the database ({text}): is it running, and is MALIPO_DATABASE_URL right?",
                FAILED,
            )
        if "no such table" in text or name == "UndefinedTableError":
            return f"the database has no malipo tables ({text}): {UPGRADE_HINT}", FAILED
        if isinstance(cause, OSError) and cause.filename:  # a file or directory malipo cannot use
            return f"{cause.filename}: {cause.strerror} (check MALIPO_VAR_DIR and its permissions)", FAILED
        if isinstance(cause, OSError):
            return text, FAILED
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first} (`malipo --debug …` shows the traceback)", FAILED


def _settings_problem(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = "_".join(str(part) for part in error["loc"]).upper()
        given = error.get("input")
        if given is None:
            problems.append(error["msg"])
        elif is_sensitive_key(field):  # never echo a secret, even a malformed one
            problems.append(f"MALIPO_{field}: {error['msg']}")
        else:
            problems.append(f"MALIPO_{field}={given!s}: {error['msg']}")
    return "invalid setting " + "; ".join(problems)


def check_database_url(settings: Settings) -> None:
    """Refuse (exit 2) a database URL malipo cannot use, naming the one it can."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    raw = settings.resolved_database_url
    try:
        url = make_url(raw)
    except ArgumentError:
        raise CliError(f"MALIPO_DATABASE_URL is not a database URL: {URL_HINT}", USAGE) from None
    wanted = DRIVERS.get(url.get_backend_name())
    if wanted is None:
        raise CliError(f"MALIPO_DATABASE_URL: malipo does not support {url.drivername}://; {URL_HINT}", USAGE)
    if url.drivername != wanted:
        fixed = url.set(drivername=wanted).render_as_string(hide_password=True)
        raise CliError(
            f"MALIPO_DATABASE_URL: malipo talks to {url.get_backend_name()} through {wanted}://"
            f" (not {url.drivername}://): write {fixed}",
            USAGE,
        )


def _sqlite_file(settings: Settings) -> Path | None:
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def log_json(settings: Settings) -> bool:
    """``MALIPO_LOG_JSON`` if set; otherwise JSON lines only when stdout is not a terminal."""
    return settings.log_json if "log_json" in settings.model_fields_set else default_log_json()


def logging_or_exit() -> Settings:
    """The settings (secrets not resolved) once logging is configured from them, as every
    command logs: ``MALIPO_LOG_LEVEL``, and :func:`log_json`."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise fail(_settings_problem(exc), USAGE) from None
    try:
        configure_logging(json=log_json(settings), level=settings.log_level)
    except ValueError as exc:
        raise fail(f"MALIPO_LOG_LEVEL: {exc}", USAGE) from None
    return settings


def settings_or_exit(*, existing: bool = False, secrets: bool = True) -> Settings:
    """Load settings and configure logging; exit with the reason if malipo cannot start.

    ``existing=True`` (commands that read or change data, not create it) refuses, rather than
    creates, a SQLite database file or a secrets file that is not there yet. ``secrets=False``
    leaves them for the caller to resolve (``settings.require_secrets()``) once it has reached
    the database, so a command that cannot reach it leaves no secrets file behind.
    """
    settings = logging_or_exit()
    check_database_url(settings)
    if existing:
        database = _sqlite_file(settings)
        if database is not None and not database.exists():
            raise fail(f"no database at {database}: {UPGRADE_HINT}")
        missing = settings.secret_key is None or settings.encryption_key is None
        if missing and settings.env != "production" and not (settings.var_dir / "secrets.json").exists():
            raise fail(
                f"no secrets at {settings.var_dir / 'secrets.json'} (and MALIPO_SECRET_KEY,"
                f" MALIPO_ENCRYPTION_KEY unset): {UPGRADE_HINT}"
            )
    if secrets or settings.env == "production":  # production only reads them: refuse early
        require_secrets(settings)
    return settings


def require_secrets(settings: Settings) -> Settings:
    """``settings.require_secrets()``, or exit 2 saying which secret production lacks."""
    try:
        return settings.require_secrets()
    except ConfigurationError as exc:
        raise fail(f"cannot start: {exc}", USAGE) from None
