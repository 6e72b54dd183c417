from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from malipo.core.logging import redact


@pytest.fixture(autouse=True)
def production_log_format() -> Iterator[None]:
    """Log as production does (plain tracebacks, no local variables, redacted): structlog's dev
    default renders rich tracebacks with locals, a second per failed job."""
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
