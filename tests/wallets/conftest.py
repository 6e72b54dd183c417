from __future__ import annotations

from tests.customers.conftest import served  # noqa: F401  (the wallet tests' live malipo, as the customers')
