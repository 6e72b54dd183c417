from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from malipo.config import Settings
from tests.customers.helpers import Served, serve


@pytest.fixture
def served(settings: Settings, live_server: Any) -> Iterator[Served]:
    """malipo on loopback over this test's database (SQLite or PostgreSQL), merchants A and B."""
    world = serve(settings, live_server)
    yield world
    world.client.close()
