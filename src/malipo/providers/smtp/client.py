"""The SMTP connector: sends one email through an SMTP server with aiosmtplib.

It knows nothing of the database. The server comes from a URL
(``MALIPO_SMTP_URL``)::

    smtp://user:pass@host:587           STARTTLS (the default for smtp://)
    smtps://user:pass@host:465          implicit TLS (also smtp:// on port 465)
    smtp://host:1025?tls=none           plain text, for local test servers only

``?tls=implicit|starttls|none`` overrides the mode picked from the scheme and
port. User names and passwords are percent-decoded (``p%40ss`` is ``p@ss``).

Every failure is an :class:`SmtpError`; the password never appears in an
exception message, a ``repr`` or a log line. A connection that cannot be made
or is not answered is one generic error, whatever the reason (refused, timed
out, unknown host): the text is no port scanner's oracle.

A target with ``allow_private=False`` (a merchant's server) is connected to only
when every address its host resolves to is public: not loopback, private,
link-local, unspecified, multicast, reserved or a cloud metadata address. The
connection goes to the address that was checked, so a DNS answer that changes in
between (rebinding) cannot swap it; TLS still checks the certificate against the
host name.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from malipo.core.logging import get_logger

__all__ = [
    "SmtpDestinationRefused",
    "SmtpError",
    "SmtpTarget",
    "SmtpUrlError",
    "TlsMode",
    "build_message",
    "deliver",
    "parse_smtp_url",
    "private_allowed",
    "send_message",
    "verify_login",
]

log = get_logger("malipo.providers.smtp.client")

TlsMode = Literal["implicit", "starttls", "none"]
_TLS_MODES: frozenset[str] = frozenset({"implicit", "starttls", "none"})
_DEFAULT_PORTS: dict[str, int] = {"implicit": 465, "starttls": 587, "none": 25}
# Replies about credentials: the operator's configuration, fixable, so not a verdict on the message.
_AUTH_CODES = frozenset({530, 534, 535, 538})


class SmtpError(Exception):
    """Sending failed. ``code``/``reply`` hold the server's answer when there was one.

    ``permanent`` is True when the server refused this message for good (a 5xx
    reply to the sender, a recipient or the data, e.g. ``550 mailbox
    unavailable``): sending it again cannot succeed. Connection failures,
    timeouts, 4xx replies and authentication failures are not permanent.
    """

    def __init__(
        self, message: str, *, code: int | None = None, reply: str | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply
        self.permanent = permanent


class SmtpDestinationRefused(SmtpError):
    """The host resolves to an address that is not public, and the target does not allow that."""


class SmtpUrlError(SmtpError, ValueError):
    """The SMTP URL cannot be used. Its message never repeats the URL (it may hold a password)."""


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to send: the parsed ``MALIPO_SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    # Kept out of repr: a target may end up in a log line or a traceback's locals.
    password: str | None = field(default=None, repr=False)
    tls: TlsMode = "starttls"
    # False for a merchant's server: refuse hosts that resolve to non-public addresses. The
    # operator's own MALIPO_SMTP_URL may point anywhere.
    allow_private: bool = True


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse an ``smtp://`` or ``smtps://`` URL (see the module docstring for the forms).

    Raises :class:`SmtpUrlError` for another scheme, no host, a bad port or an
    unknown ``tls`` value; the error message never contains the URL.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise SmtpUrlError("the SMTP URL is malformed (bad port or address)") from None
    scheme = parts.scheme.lower()
    if scheme not in {"smtp", "smtps"}:
        raise SmtpUrlError(f"the SMTP URL must start with smtp:// or smtps://, not {scheme or '(none)'}://")
    if not parts.hostname:
        raise SmtpUrlError("the SMTP URL has no host")
    requested = parse_qs(parts.query).get("tls", [None])[-1]
    tls: str
    if requested is not None:
        if requested.lower() not in _TLS_MODES:
            raise SmtpUrlError("the SMTP URL's tls= must be implicit, starttls or none")
        tls = requested.lower()
    elif scheme == "smtps" or port == 465:
        tls = "implicit"
    else:
        tls = "starttls"
    return SmtpTarget(
        host=parts.hostname,
        port=port or _DEFAULT_PORTS[tls],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=tls,  # type: ignore[arg-type]  # checked against _TLS_MODES above
    )


def build_message(
    *,
    mail_from: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    reply_to: str | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """The RFC 5322 message: text/plain, or multipart/alternative (text, then html) with ``html``."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(usegmt=True)
    domain = email.utils.parseaddr(mail_from)[1].rpartition("@")[2] or None
    message["Message-ID"] = message_id or email.utils.make_msgid(domain=domain)
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


async def send_message(
    target: SmtpTarget,
    *,
    mail_from: str,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    reply_to: str | None = None,
    timeout: float = 30,  # noqa: ASYNC109  (aiosmtplib's per-operation timeout, not one for the call)
    message_id: str | None = None,
) -> str:
    """Send one email to ``to`` and return its Message-ID once the server accepted it.

    Logs in when ``target.username`` is set; uses implicit TLS, STARTTLS or
    plain text per ``target.tls``. Raises :class:`SmtpError` on any failure
    (see its ``permanent`` flag); the password is never in its message.
    """
    message = build_message(
        mail_from=mail_from,
        to=to,
        subject=subject,
        text=text,
        html=html,
        reply_to=reply_to,
        message_id=message_id,
    )
    await deliver(target, message, timeout=timeout)
    return str(message["Message-ID"])


async def deliver(
    target: SmtpTarget,
    message: EmailMessage,
    *,
    timeout: float = 30,  # noqa: ASYNC109  (aiosmtplib's per-operation timeout, not one for the call)
) -> str:
    """Send a built message; return the server's reply to it (``250 …``). Raises :class:`SmtpError`."""
    with _as_smtp_error(target):
        sock = await _connect(target, timeout)
        try:
            _refused, reply = await aiosmtplib.send(
                message,
                hostname=target.host,
                sock=sock,
                # No user name (a mailer registered insecure, without credentials): no AUTH at all.
                username=target.username or None,
                password=target.password if target.username else None,
                use_tls=target.tls == "implicit",
                start_tls=target.tls == "starttls",
                timeout=timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            # One recipient per message, so its refusal is the whole answer.
            first = exc.recipients[0] if exc.recipients else None
            code = first.code if first else None
            raise _reply_error(
                "recipient refused", code, first.message if first else "", permanent_ok=True
            ) from None
        except (
            aiosmtplib.SMTPSenderRefused,
            aiosmtplib.SMTPRecipientRefused,
            aiosmtplib.SMTPDataError,
        ) as exc:
            what = "sender refused" if isinstance(exc, aiosmtplib.SMTPSenderRefused) else "message refused"
            raise _reply_error(what, exc.code, exc.message, permanent_ok=True) from None
        finally:
            sock.close()
    log.info("smtp.sent", host=target.host, port=target.port, message_id=message["Message-ID"])
    return " ".join(str(reply).split())


class SmtpClient:
    """One SMTP server as an outgoing mail rail (:class:`malipo.providers.base.Email`)."""

    def __init__(self, target: SmtpTarget, *, timeout: float = 30) -> None:
        self.target = target
        self.timeout = timeout

    async def deliver(self, message: EmailMessage) -> str:
        """Send a built message; the server's reply. Raises :class:`SmtpError`."""
        return await deliver(self.target, message, timeout=self.timeout)


async def verify_login(
    target: SmtpTarget,
    *,
    timeout: float = 15,  # noqa: ASYNC109  (aiosmtplib's per-operation timeout)
) -> None:
    """Connect, secure the connection as ``target.tls`` says, log in, and leave. Raises
    :class:`SmtpError` saying what failed (the password is never in it)."""
    with _as_smtp_error(target):
        sock = await _connect(target, timeout)
    client = aiosmtplib.SMTP(
        hostname=target.host,
        sock=sock,
        use_tls=target.tls == "implicit",
        start_tls=target.tls == "starttls",
        timeout=timeout,
    )
    try:
        with _as_smtp_error(target):
            await client.connect()
            if target.username:
                await client.login(target.username, target.password or "")
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        sock.close()


def private_allowed(setting: bool | None, sandbox: bool) -> bool:
    """Whether a merchant's mailer may reach a non-public address: ``MALIPO_SMTP_ALLOW_PRIVATE``
    (``setting``) when set, else only a mailer registered with a sandbox key."""
    return setting if setting is not None else sandbox


# Cloud metadata services: link-local or unique-local already, named for clarity.
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """Whether ``address`` (an IP literal) is a public unicast address malipo may connect to for a
    merchant: not loopback, private, link-local, unspecified, multicast, reserved or metadata."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return not (
        ip in _METADATA
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or not ip.is_global
    )


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_host_name(host: str) -> bool:
    """Whether ``host`` is an IP address (IPv6 in brackets or not) or a DNS name whose labels are
    1-63 letters, digits or hyphens, 253 characters at most: what a resolver can be asked."""
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
    except ValueError:
        pass
    else:
        return True
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _unreachable(target: SmtpTarget) -> SmtpError:
    # One text for refused, timed out, reset and unknown host alike.
    return SmtpError(f"could not connect to {target.host}:{target.port}, or it did not answer")


async def _connect(
    target: SmtpTarget,
    timeout: float,  # noqa: ASYNC109  (per operation, as aiosmtplib's)
) -> socket.socket:
    """A socket connected to ``target``: to one of the addresses its host resolved to, each of them
    checked first unless the target allows private addresses."""
    loop = asyncio.get_running_loop()
    host = target.host.strip("[]")
    try:
        async with asyncio.timeout(timeout):
            found = await loop.getaddrinfo(host, target.port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):  # UnicodeError: a name IDNA cannot encode
        raise _unreachable(target) from None
    if not found:
        raise _unreachable(target)
    if not target.allow_private and not all(is_public_address(str(info[4][0])) for info in found):
        raise SmtpDestinationRefused(
            f"{target.host} resolves to an address that is not public (loopback, private, link-local "
            "or reserved): a mailer may not use it"
        )
    for family, kind, proto, _name, address in found:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, address)
        except (OSError, TimeoutError):
            sock.close()
            continue
        return sock
    raise _unreachable(target)


@contextmanager
def _as_smtp_error(target: SmtpTarget) -> Iterator[None]:
    """aiosmtplib's and the socket's failures as :class:`SmtpError`, re-raised "from None":
    aiosmtplib's frames hold the password in their locals, and a traceback renderer that shows
    locals would print it. The reply code and text are kept."""
    try:
        yield
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise _reply_error("login refused", exc.code, exc.message, permanent_ok=False) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _reply_error("server error", exc.code, exc.message, permanent_ok=False) from None
    except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectError):
        raise _unreachable(target) from None
    except aiosmtplib.SMTPException as exc:
        raise SmtpError(f"SMTP failure with {target.host}:{target.port}: {exc.message}") from None
    except ssl.SSLError as exc:
        raise SmtpError(f"TLS failure with {target.host}:{target.port}: {exc.reason or exc}") from None
    except OSError:
        raise _unreachable(target) from None


def _reply_error(what: str, code: int | None, reply: str, *, permanent_ok: bool) -> SmtpError:
    reply = " ".join(reply.split())
    # 5xx means "do not try again" unless it is about our own credentials.
    permanent = permanent_ok and code is not None and 500 <= code < 600 and code not in _AUTH_CODES
    shown = f"{what}: {code} {reply}" if code is not None else f"{what}: {reply}"
    return SmtpError(shown, code=code, reply=reply, permanent=permanent)
