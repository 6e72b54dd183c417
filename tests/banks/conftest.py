from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from malipo.config import Settings
from tests.pricing.helpers import Gateway, serve


@pytest.fixture
def gateway(settings: Settings, live_server: Any) -> Iterator[Gateway]:
    """malipo on loopback with an operator (CompanyAdmin) and two merchants: the pricing tests' own."""
    served = serve(settings, live_server)
    yield served
    served.http.close()
