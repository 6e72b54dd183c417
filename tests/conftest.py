from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from tests.fixtures.servers import LiveServer

pytest_plugins = [
    "tests.fixtures.databases",  # before browser, which imports it
    "tests.fixtures.browser",
    "tests.fixtures.smtp",
    "tests.fixtures.world",
]

hypothesis_settings.register_profile("malipo", deadline=None, print_blob=True)
hypothesis_settings.load_profile("malipo")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Settings for a test: its own var dir and database, the worker off unless asked."""
    return Settings(
        env="test",
        var_dir=tmp_path / "var",
        database_url=db_url,
        inprocess_worker=False,
        log_json=True,
        reconciliation_daily=False,  # the tests of the daily run turn it on
    ).require_secrets()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def db(db_url: str, settings: Settings) -> AsyncIterator[Database]:
    """The test's database, with its settings loaded (the encryption key among them), as the app has."""
    database = Database.from_url(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def live_server() -> Iterator[Callable[[object], LiveServer]]:
    """Start an ASGI app on a free loopback port: ``server = live_server(app)``; stopped after the test."""
    started: list[LiveServer] = []

    def start(app: object) -> LiveServer:
        server = LiveServer(app).__enter__()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)
