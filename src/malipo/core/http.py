"""The outgoing HTTP client malipo's worker and simulators share the settings of."""

from __future__ import annotations

import httpx

# Connections kept open per client. httpx keeps 20 by default and closes the rest after each
# burst, so a burst of callbacks or pushes opened and closed connections all the time (a TCP
# handshake each, and httpcore's pool scans every connection per request).
CONNECTIONS = 64


def http_client(timeout: float | httpx.Timeout, *, connections: int = CONNECTIONS) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that keeps up to ``connections`` connections open, and uses no more."""
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )
