from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.world import Sim, start_sim


@pytest.fixture
def own_sim() -> Iterator[Sim]:
    """A Daraja simulator of the test's own: its statement holds this test's payments only."""
    server, sim = start_sim(stk_expiry=0.3)
    yield sim
    server.__exit__(None, None, None)
