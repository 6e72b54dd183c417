"""Structured logging for malipo: one JSON object per line, secrets scrubbed.

``configure_logging`` sets up structlog *and* the stdlib ``logging`` root (so
uvicorn, SQLAlchemy and friends go through the same processors). Every line
carries the context bound with ``structlog.contextvars.bind_contextvars`` (the
request id), the level, the logger name, an ISO-8601 UTC timestamp under
``ts`` and, for errors, the formatted stack trace under ``exception``.

Just before rendering, :func:`redact` scrubs the event:

* values under sensitive keys (``password``, ``api_key``, ``Authorization``,
  ``mpesa_pin``, ``SecurityCredential`` …) become ``"[REDACTED]"``;
* in every string (the message and the traceback included) card numbers that
  pass the Luhn check are masked to ``411111******1111``, malipo API keys to
  ``mk_live_abcd…[REDACTED]``, ``Bearer``/``Basic`` credentials to
  ``Bearer [REDACTED]``, and passwords in URLs to ``scheme://user:[REDACTED]@host``.

:func:`redact_value` and :func:`redact_text` apply the same rules outside
logging (error replies, stored job errors); :func:`redact_secret` removes one known secret
value (an SMTP password from its server's reply), as a whole value only.

Run uvicorn with ``log_config=None`` (or call :func:`configure_logging` after
it has started): uvicorn's default config gives its loggers their own
plain-text handlers.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "configure_logging",
    "default_log_json",
    "get_logger",
    "is_sensitive_key",
    "redact",
    "redact_secret",
    "redact_text",
    "redact_value",
]

REDACTED = "[REDACTED]"

# Our handler on the root logger carries this name, so reconfiguring replaces it.
_HANDLER_NAME = "malipo.log"
# Loggers that libraries give their own handlers; we route them to the root instead.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_URL_LOGGERS = ("httpx", "httpcore")
# Keys ProcessorFormatter puts in the event dict for its own use; never rewritten.
_FORMATTER_META_KEYS = frozenset({"_record", "_from_structlog"})


# --------------------------------------------------------------------------- keys

# Matched anywhere in the key once lower-cased with separators removed
# ("X-Api-Key" -> "xapikey", "consumer_secret" -> "consumersecret").
_SENSITIVE_SUBSTRINGS = (
    "authorization",
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "cvv",
    "cvc",
    "cardnumber",
    "securitycredential",
    "passkey",
    "cookie",
    "privatekey",
)
# Too short to match inside other words ("shipping", "spinner", "company"), so
# only matched as a whole word part of the key ("pin", "mpesa_pin", "userPin").
_SENSITIVE_PARTS = frozenset({"pin", "pins", "pan", "pwd"})
_KEY_SEPARATORS = re.compile(r"[\s_.\-]+")
_KEY_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Whether the value stored under ``key`` must never be logged."""
    squashed = _KEY_SEPARATORS.sub("", key).lower()
    if any(word in squashed for word in _SENSITIVE_SUBSTRINGS):
        return True
    return any(part.lower() in _SENSITIVE_PARTS for part in _KEY_PARTS.findall(key))


# --------------------------------------------------------------------------- text

_MIN_CARD_DIGITS = 13
_MAX_CARD_DIGITS = 19
# Nothing shorter can hold a secret we know how to find ("a://:b@c", "Bearer x").
_MIN_INTERESTING_LEN = 7
# Cheap pre-checks: a loose one (any 13 characters of digits, spaces and dashes
# starting with a digit), then the exact one (13 digits, single separators).
_DIGITS_HINT = re.compile(r"[0-9][0-9 -]{12}")
_CARD_HINT = re.compile(r"[0-9](?:[ -]?[0-9]){12}")
# Digit groups joined by single spaces or dashes: "4111 1111 1111 1111", "254712345678".
_DIGIT_CHAIN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_CHAIN_SEPARATOR = re.compile(r"[ -]")
_API_KEY = re.compile(r"(?<![A-Za-z0-9])(mk_(?:live|test)_[A-Za-z0-9]{4})[A-Za-z0-9]{12,}")
_BEARER = re.compile(r"\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_BASIC = re.compile(r"\b(basic)\s+([A-Za-z0-9+/]+={0,2})(?![A-Za-z0-9+/=])", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:)[^\s/?#]+@")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _mask_card(digits: str) -> str:
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def _mask_chain(match: re.Match[str]) -> str:
    """Mask every Luhn-valid card inside one chain of digit groups.

    A card is a whole group or a run of whole groups, 13-19 digits long, so
    "paid 100 4111111111111111" and "4111 1111 1111 1111" are both found, while
    a 17-digit reference that fails Luhn, or a phone number, is left alone.
    """
    chain = match.group()
    if len(chain) < _MIN_CARD_DIGITS:
        return chain
    groups = _CHAIN_SEPARATOR.split(chain)
    if len(groups) == 1:
        if len(chain) <= _MAX_CARD_DIGITS and _luhn_ok(chain):
            return _mask_card(chain)
        return chain
    separators = _CHAIN_SEPARATOR.findall(chain)
    masked = list(groups)
    changed = False
    start = 0
    while start < len(groups):
        # Candidate runs of whole groups from `start`, longest first.
        ends: list[tuple[int, int]] = []
        total = 0
        for end in range(start, len(groups)):
            total += len(groups[end])
            if total > _MAX_CARD_DIGITS:
                break
            ends.append((end, total))
        for end, total in reversed(ends):
            if total < _MIN_CARD_DIGITS:
                break
            digits = "".join(groups[start : end + 1])
            if _luhn_ok(digits):
                hidden = _mask_card(digits)
                offset = 0
                for index in range(start, end + 1):
                    size = len(groups[index])
                    masked[index] = hidden[offset : offset + size]
                    offset += size
                changed = True
                start = end
                break
        start += 1
    if not changed:
        return chain
    pieces = [masked[0]]
    for separator, group in zip(separators, masked[1:], strict=True):
        pieces += (separator, group)
    return "".join(pieces)


def _mask_basic(match: re.Match[str]) -> str:
    credentials = match.group(2)
    # "Basic auth", "basic plan": an ordinary word, not base64 of "user:password".
    if credentials.isalpha() and credentials[1:].islower():
        return match.group()
    return f"{match.group(1)} {REDACTED}"


# "password=hunter2", "api_key: abc", "secret='x'" in free text (exception messages, URLs' queries).
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b((?:[a-z]+[_-])?(?:password|passwd|pwd|secret|token|api[_-]?key|passkey|credential|cvv|pin))"
    r"(['\"]?\s*[=:]\s*)(['\"]?)[^\s'\",;&}]+"
)
_ASSIGNED_HINTS = ("=", ":")


def redact_text(text: str) -> str:
    """``text`` with card numbers, API keys, HTTP credentials, URL passwords and
    ``password=…``-style assignments masked."""
    if len(text) < _MIN_INTERESTING_LEN:
        return text
    # Plain substring tests are far cheaper than one regex with alternatives.
    lowered = text.lower()
    has_api_key = "mk_" in text
    has_bearer = "bearer" in lowered
    has_basic = "basic" in lowered
    has_url = "://" in text
    has_digits = _DIGITS_HINT.search(text) is not None
    has_assignment = any(hint in text for hint in _ASSIGNED_HINTS)
    if not (has_api_key or has_bearer or has_basic or has_url or has_digits or has_assignment):
        return text
    # API keys first: a key made of digits must not be half-masked as a card.
    if has_api_key:
        text = _API_KEY.sub(r"\1…" + REDACTED, text)
    if has_bearer:
        text = _BEARER.sub(r"\1 " + REDACTED, text)
    if has_basic:
        text = _BASIC.sub(_mask_basic, text)
    if has_url:
        text = _URL_PASSWORD.sub(r"\1" + REDACTED + "@", text)
    if has_assignment:
        text = _ASSIGNED_SECRET.sub(r"\1\2\3" + REDACTED, text)
    if has_digits and _CARD_HINT.search(text):
        text = _DIGIT_CHAIN.sub(_mask_chain, text)
    return text


# --------------------------------------------------------------------------- values


def redact_secret(text: str, secret: str | None) -> str:
    """``text`` with each whole occurrence of ``secret`` replaced by ``[REDACTED]``.

    Whole: not inside a longer word or number. A password of ``x`` hides ``x`` in ``user x
    refused`` but leaves ``extension`` as it is; a match inside a word is not the secret.
    """
    if not secret:
        return text
    before = r"(?<![A-Za-z0-9])" if secret[0].isalnum() else ""
    after = r"(?![A-Za-z0-9])" if secret[-1].isalnum() else ""
    return re.sub(f"{before}{re.escape(secret)}{after}", REDACTED, text)


def redact_value(value: Any) -> Any:
    """A scrubbed copy of ``value``; nested dicts, lists, tuples and sets are walked.

    The caller's objects are never modified. Strings go through
    :func:`redact_text`, values under sensitive keys become ``"[REDACTED]"``,
    ``None``, bools and numbers are returned as they are. Any other object is
    returned as is unless its ``repr`` (what a log renderer would print) holds
    a secret, in which case the scrubbed ``repr`` is returned instead.
    """
    return _redact(value, set())


_SCALARS = (bool, int, float)
_CONTAINERS = (dict, list, tuple, set, frozenset, Mapping)
_MAPPINGS = (dict, Mapping)


def _redact(value: Any, active: set[int]) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, _CONTAINERS):
        if id(value) in active:
            return "[CIRCULAR]"
        active.add(id(value))
        try:
            return _redact_container(value, active)
        finally:
            active.discard(id(value))
    try:
        shown = repr(value)
    except Exception:
        return value  # the renderer will fail on it as well, with nothing shown
    scrubbed = redact_text(shown)
    return value if scrubbed == shown else scrubbed


def _redact_container(value: Any, active: set[int]) -> Any:
    if isinstance(value, _MAPPINGS):
        return _redact_mapping(value, active)
    items = [_redact(item, active) for item in value]
    if isinstance(value, list):
        return items
    if isinstance(value, tuple):
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return frozenset(items) if isinstance(value, frozenset) else set(items)


def _redact_mapping(
    mapping: Mapping[Any, Any], active: set[int], keep: frozenset[str] = frozenset()
) -> dict[Any, Any]:
    scrubbed: dict[Any, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            scrubbed[key] = _redact(value, active)
        elif key in keep:
            scrubbed[key] = value
        elif is_sensitive_key(key):
            scrubbed[redact_text(key)] = REDACTED
        else:
            scrubbed[redact_text(key)] = _redact(value, active)
    return scrubbed


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: a scrubbed copy of ``event_dict`` (see :func:`redact_value`)."""
    return _redact_mapping(event_dict, {id(event_dict)}, _FORMATTER_META_KEYS)


# --------------------------------------------------------------------------- setup


def _parse_level(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return number


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def default_log_json(stream: TextIO | None = None) -> bool:
    """JSON lines unless a person is watching: ``MALIPO_LOG_JSON``'s default when it is unset.

    At a terminal (``stream``, default ``sys.stdout``, is a TTY) logs are readable console lines;
    piped to a file or a log collector they are one JSON object per line.
    """
    return not _is_tty(stream if stream is not None else sys.stdout)


def configure_logging(*, json: bool = True, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send structlog and stdlib logging to ``stream`` (default ``sys.stderr``), scrubbed.

    ``json=True`` writes one JSON object per line; ``json=False`` a readable
    console line. Safe to call again: the previous handler is replaced, not
    duplicated, and loggers obtained earlier with :func:`get_logger` follow.
    """
    root_level = _parse_level(level)
    target = stream if stream is not None else sys.stderr

    # Shared by our events and by records from plain `logging` loggers.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact,
    ]
    # Redaction runs before the record reaches `logging`, so no handler (ours or
    # an error tracker's) ever sees the unscrubbed event.
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        context_class=dict,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: module-level loggers must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )

    renderer: Processor
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_tty(target),
            timestamp_key="ts",
            exception_formatter=structlog.dev.plain_traceback,
        )
    handler = logging.StreamHandler(target)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(root_level)

    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for own in list(library.handlers):
            library.removeHandler(own)
        library.propagate = True
    # httpx logs every request's full URL at INFO, and malipo's outgoing URLs carry secrets
    # (callback tokens in CallBackURLs, merchants' webhook URLs): warnings only.
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(max(root_level, logging.WARNING))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger backed by the stdlib logger ``name`` (the caller's module if None)."""
    return structlog.stdlib.get_logger(name)
