"""Operator mail: queued with the caller's transaction, sent by the worker to a real SMTP server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy import select
from typer.testing import CliRunner

from malipo.cli import messaging as mail_cli
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.core.logging import redact
from malipo.db import Database
from malipo.messaging.mail import MAIL_TEMPLATES, list_mail, queue_email, render
from malipo.messaging.models import MailMessage, MailStatus
from malipo.providers.smtp.client import SmtpTarget, SmtpUrlError, parse_smtp_url
from malipo.worker.models import AttemptOutcome, Job, JobAttempt, JobStatus
from malipo.worker.registry import enqueue
from malipo.worker.runner import Worker
from tests.fixtures.servers import free_port
from tests.fixtures.smtp import SMTP_PASSWORD, SMTP_USER, SmtpServer

WRONG_PASSWORD = "Wr0ng-Pa55-4471"

# The test server takes AUTH over plain text on loopback, which aiosmtpd rightly warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture(autouse=True)
def production_log_format() -> Iterator[None]:
    """Log as production does (plain tracebacks, no local variables, redacted), not structlog's dev
    default, whose rich tracebacks with locals take a second per failed job."""
    saved = structlog.get_config()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    yield
    structlog.configure(**saved)


# -- a real SMTP server ------------------------------------------------------------------------


# -- helpers -----------------------------------------------------------------------------------


async def _queue(db: Database, clock: FrozenClock, **overrides: Any) -> MailMessage:
    fields: dict[str, Any] = {
        "to": "merchant@example.com",
        "subject": "Your malipo portal account",
        "text": "Hello,\nyour account is ready.\n",
        "html": "<p>Hello,</p><p>your account is ready.</p>",
        "purpose": "client_registered",
        **overrides,
    }
    async with db.transaction() as session:
        return await queue_email(session, now=clock.now(), **fields)


async def _mail(db: Database, mail_id: uuid.UUID) -> MailMessage:
    async with db.transaction() as session:
        mail = await session.get(MailMessage, mail_id)
        assert mail is not None
        return mail


async def _jobs(db: Database) -> list[Job]:
    async with db.transaction() as session:
        return list((await session.scalars(select(Job).order_by(Job.created_at, Job.id))).all())


async def _attempts(db: Database, job_id: uuid.UUID) -> list[JobAttempt]:
    async with db.transaction() as session:
        rows = await session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.number)
        )
        return list(rows.all())


async def _run(db: Database, settings: Settings, clock: FrozenClock) -> int:
    worker = Worker(db, settings, clock=clock)
    try:
        return await worker.run_once()
    finally:
        await worker.aclose()


# -- the outbox --------------------------------------------------------------------------------


async def test_mail_queued_in_rolled_back_transaction_leaves_no_message_and_no_job(
    db: Database, clock: FrozenClock
) -> None:
    with pytest.raises(RuntimeError, match="approval failed"):
        async with db.transaction() as session:
            mail = await queue_email(
                session, to="a@example.com", subject="s", text="t", purpose="test", now=clock.now()
            )
            assert mail.status == MailStatus.QUEUED
            raise RuntimeError("approval failed")

    async with db.transaction() as session:
        assert await list_mail(session) == []
    assert await _jobs(db) == []


async def test_queued_mail_is_sent_through_smtp_with_login_and_both_parts(
    db: Database, settings: Settings, clock: FrozenClock, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server()
    settings.smtp_url = SecretStr(server.url())
    mail = await _queue(db, clock)
    [job] = await _jobs(db)
    assert (job.kind, job.payload) == ("mail.send", {"mail_id": str(mail.id)})

    clock.advance(3)
    assert await _run(db, settings, clock) == 1

    [got] = server.handler.received
    assert got.mail_from == "no-reply@malipo.local"
    assert got.rcpt_tos == ["merchant@example.com"]
    message = got.message
    assert message["From"] == settings.mail_from
    assert message["To"] == "merchant@example.com"
    assert message["Subject"] == "Your malipo portal account"
    assert message["Message-ID"] == f"<{mail.id}@malipo.local>"
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None
    assert html_part is not None
    # SMTP carries CRLF line ends; the parser keeps them.
    assert text_part.get_content().replace("\r\n", "\n") == "Hello,\nyour account is ready.\n"
    assert html_part.get_content().strip() == "<p>Hello,</p><p>your account is ready.</p>"

    sent = await _mail(db, mail.id)
    assert (sent.status, sent.sent_at, sent.error) == (MailStatus.SENT, clock.now(), None)
    [job] = await _jobs(db)
    assert job.status == JobStatus.SUCCEEDED

    # A second job for the same message (a redelivered job) sends nothing more.
    async with db.transaction() as session:
        enqueue(session, "mail.send", {"mail_id": str(mail.id)}, now=clock.now())
    assert await _run(db, settings, clock) == 1
    assert len(server.handler.received) == 1
    assert (await _mail(db, mail.id)).sent_at == sent.sent_at


async def test_wrong_smtp_password_is_retried_then_failed_without_leaking_it(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    smtp_server: Callable[..., SmtpServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = smtp_server()
    settings.smtp_url = SecretStr(server.url(password=WRONG_PASSWORD))
    mail = await _queue(db, clock)

    assert await _run(db, settings, clock) == 1
    [job] = await _jobs(db)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert job.run_at > clock.now(), "the retry waits for its backoff"
    [attempt] = await _attempts(db, job.id)
    assert attempt.outcome == AttemptOutcome.FAILED
    assert attempt.error
    assert "535" in attempt.error
    queued = await _mail(db, mail.id)
    assert queued.status == MailStatus.QUEUED
    assert queued.error
    assert "535" in queued.error

    for number in range(2, job.max_attempts + 1):
        clock.advance(job.run_at - clock.now())
        assert await _run(db, settings, clock) == 1, f"attempt {number} should have been due"
        [job] = await _jobs(db)
        assert job.attempts == number
        if number < job.max_attempts:
            assert (await _mail(db, mail.id)).status == MailStatus.QUEUED

    assert (job.status, job.attempts) == (JobStatus.DEAD, 8)
    failed = await _mail(db, mail.id)
    assert failed.status == MailStatus.FAILED
    assert failed.sent_at is None
    assert server.handler.received == []
    errors = [failed.error, job.last_error, *(a.error for a in await _attempts(db, job.id))]
    assert len(errors) == 10
    logs = capsys.readouterr().out
    assert "mail.send_failed" in logs
    assert "job.dead" in logs
    for text in [*errors, logs]:
        assert text
        assert WRONG_PASSWORD not in text
        assert quote(WRONG_PASSWORD, safe="") not in text


async def test_unreachable_smtp_server_schedules_a_retry_and_records_the_error(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    port = free_port()  # bound then released: nothing listens there
    settings.smtp_url = SecretStr(f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}?tls=none")
    mail = await _queue(db, clock)

    assert await _run(db, settings, clock) == 1
    [job] = await _jobs(db)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert job.run_at > clock.now()
    assert job.last_error
    assert f"127.0.0.1:{port}" in job.last_error
    queued = await _mail(db, mail.id)
    assert queued.status == MailStatus.QUEUED
    assert queued.error
    assert f"127.0.0.1:{port}" in queued.error
    assert SMTP_PASSWORD not in queued.error + job.last_error


async def test_permanent_550_refusal_fails_the_mail_at_once(
    db: Database, settings: Settings, clock: FrozenClock, smtp_server: Callable[..., SmtpServer]
) -> None:
    server = smtp_server(refuse_rcpt="550 mailbox unavailable")
    settings.smtp_url = SecretStr(server.url())
    mail = await _queue(db, clock)

    assert await _run(db, settings, clock) == 1
    [job] = await _jobs(db)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)
    assert job.last_error
    assert "550 mailbox unavailable" in job.last_error
    failed = await _mail(db, mail.id)
    assert failed.status == MailStatus.FAILED
    assert failed.error
    assert "550 mailbox unavailable" in failed.error
    assert server.handler.received == []


async def test_without_smtp_url_mail_is_stored_for_the_dev_mailbox(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    assert settings.smtp_url is None
    older = await _queue(db, clock, to="older@example.com", subject="Older")
    clock.advance(1)
    mail = await _queue(db, clock)

    assert await _run(db, settings, clock) == 2
    stored = await _mail(db, mail.id)
    assert (stored.status, stored.sent_at, stored.error) == (MailStatus.STORED, None, None)

    async with db.transaction() as session:
        listed = await list_mail(session)
        only_older = await list_mail(session, to="OLDER@example.com")
        newest = await list_mail(session, limit=1)
    assert [m.id for m in listed] == [mail.id, older.id]
    assert [m.id for m in only_older] == [older.id]
    assert [m.id for m in newest] == [mail.id]

    # The job runs again (redelivered): the message does not change.
    async with db.transaction() as session:
        enqueue(session, "mail.send", {"mail_id": str(mail.id)}, now=clock.now())
    clock.advance(5)
    assert await _run(db, settings, clock) == 1
    again = await _mail(db, mail.id)
    assert (again.status, again.sent_at, again.error) == (MailStatus.STORED, None, None)
    assert all(job.status == JobStatus.SUCCEEDED for job in await _jobs(db))


# -- parsing the SMTP URL ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:pa%40ss@mail.example.com:587",
            SmtpTarget("mail.example.com", 587, "user", "pa@ss", "starttls"),
        ),
        ("smtp://mail.example.com", SmtpTarget("mail.example.com", 587, None, None, "starttls")),
        ("smtps://u:p@mail.example.com", SmtpTarget("mail.example.com", 465, "u", "p", "implicit")),
        ("smtp://u:p@mail.example.com:465", SmtpTarget("mail.example.com", 465, "u", "p", "implicit")),
        ("smtp://127.0.0.1:1025?tls=none", SmtpTarget("127.0.0.1", 1025, None, None, "none")),
        ("smtp://localhost?tls=none", SmtpTarget("localhost", 25, None, None, "none")),
    ],
)
def test_parse_smtp_url_picks_the_tls_mode(url: str, expected: SmtpTarget) -> None:
    assert parse_smtp_url(url) == expected


def test_smtp_target_and_url_errors_never_show_the_password() -> None:
    assert "hunter2" not in repr(parse_smtp_url("smtp://u:hunter2@host:587"))
    for bad in ("http://u:hunter2@host", "smtp://u:hunter2@host:port", "smtp://u:hunter2@host?tls=maybe"):
        with pytest.raises(SmtpUrlError) as caught:
            parse_smtp_url(bad)
        assert "hunter2" not in str(caught.value)


# -- templates ---------------------------------------------------------------------------------

CONTEXT: dict[str, Any] = {
    "client_name": "Acme <script>alert(1)</script>",
    "login_email": "owner@acme.example",
    "temporary_password": "Tmp-7Qx9-pass",
    "portal_url": "https://pay.example.com/portal",
    "reason": "Documents <unreadable> & expired",
    "api_key": "mk_live_AbCdEfGhIjKlMnOpQrStUvWx",
    "mode": "live",
    "api_username": "acme_api",
    "api_password": "Ph-pass-123",
    "reset_url": "https://pay.example.com/portal/reset?token=abc&x=1",
    "name": "Jane <b>Doe</b>",
}


@pytest.mark.parametrize("template", MAIL_TEMPLATES)
def test_every_template_renders_a_subject_and_escapes_html(template: str) -> None:
    subject, text, html = render(template, **CONTEXT)
    assert subject
    assert "\n" not in subject
    assert text.strip()
    assert html.strip()
    assert "<script>" not in html
    assert "<b>Doe" not in html
    if template.startswith("client_"):
        assert "Acme &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "Acme <script>alert(1)</script>" in text  # plain text is not HTML: shown as typed


def test_templates_carry_their_secrets_and_reasons() -> None:
    _subject, text, html = render("api_key_issued", **CONTEXT)
    for secret in ("mk_live_AbCdEfGhIjKlMnOpQrStUvWx", "acme_api", "Ph-pass-123"):
        assert secret in text
        assert secret in html
    assert "live" in text

    _subject, text, _html = render("client_registered", **CONTEXT)
    assert all(v in text for v in ("owner@acme.example", "Tmp-7Qx9-pass", "https://pay.example.com/portal"))

    _subject, text, html = render("client_rejected", **CONTEXT)
    assert "Documents <unreadable> & expired" in text
    assert "Documents &lt;unreadable&gt; &amp; expired" in html

    subject, text, html = render("password_reset", reset_url="https://pay.example.com/r?t=1&x=2")
    assert "password" in subject.lower()
    assert "https://pay.example.com/r?t=1&x=2" in text
    assert "one hour" in text
    assert "ignore" in text
    assert 'href="https://pay.example.com/r?t=1&amp;x=2"' in html


def test_render_refuses_unknown_templates_and_missing_variables() -> None:
    with pytest.raises(ValueError, match="unknown mail template"):
        render("_layout")
    with pytest.raises(jinja2.UndefinedError):
        render("client_rejected", client_name="Acme")  # no reason


# -- the CLI -----------------------------------------------------------------------------------


def test_mail_list_command_shows_stored_messages(
    db_url: str, settings: Settings, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def prepare() -> uuid.UUID:
        db = Database.from_url(db_url)
        try:
            mail = await _queue(db, clock, subject="Welcome to malipo, Acme")
            await _run(db, settings, clock)
            return mail.id
        finally:
            await db.dispose()

    mail_id = asyncio.run(prepare())
    monkeypatch.setenv("MALIPO_DATABASE_URL", db_url)
    monkeypatch.setenv("MALIPO_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("COLUMNS", "200")
    # The command would point the process's logging at the runner's soon-closed stream.
    monkeypatch.setattr("malipo.cli.common.configure_logging", lambda **_kwargs: None)
    runner = CliRunner()

    listed = runner.invoke(mail_cli.mail_app, ["list", "--limit", "5"])
    assert listed.exit_code == 0, listed.output
    assert "Welcome to malipo, Acme" in listed.output
    assert "stored" in listed.output
    assert str(mail_id) in listed.output

    shown = runner.invoke(mail_cli.mail_app, ["show", str(mail_id)])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == "Hello,\nyour account is ready.\n"

    assert runner.invoke(mail_cli.mail_app, ["show", str(uuid.uuid4())]).exit_code == 1
    assert runner.invoke(mail_cli.mail_app, ["list", "--to", "nobody@example.com"]).exit_code == 0
