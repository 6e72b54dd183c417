"""Requests are counted per route: FastAPI's own pages are routes, a path nothing serves is not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import REGISTRY

from tests.fixtures.servers import LiveServer

DOC_PAGES = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


def _count(route: str, status: str = "200") -> float:
    labels = {"method": "GET", "route": route, "status": status}
    return REGISTRY.get_sample_value("malipo_http_requests_total", labels) or 0.0


def test_the_documentation_pages_are_counted_as_their_routes_not_unmatched(
    tmp_path: Path, live_server: Callable[[object], LiveServer]
) -> None:
    from malipo.app import create_app
    from malipo.config import Settings

    settings = Settings(var_dir=tmp_path / "var", inprocess_worker=False).require_secrets()
    server = live_server(create_app(settings))
    before = {path: _count(path) for path in DOC_PAGES}
    unmatched_200 = _count("<unmatched>")
    unmatched_404 = _count("<unmatched>", "404")

    for path in DOC_PAGES:
        assert httpx.get(f"{server.url}{path}").status_code == 200, path
    assert httpx.get(f"{server.url}/no/such/page").status_code == 404

    assert {path: _count(path) - before[path] for path in DOC_PAGES} == dict.fromkeys(DOC_PAGES, 1.0)
    assert _count("<unmatched>") == unmatched_200
    assert _count("<unmatched>", "404") == unmatched_404 + 1
