"""Imports every module that declares tables, so ``Base.metadata`` is complete.

Alembic and the schema test read the metadata from here; a new domain's
``models`` module is added to this list.
"""

from malipo.core import idempotency_models
from malipo.customers import models as customer_models
from malipo.db import Base
from malipo.identity import models as identity_models
from malipo.ledger import models as ledger_models
from malipo.messaging import models as messaging_models
from malipo.worker import models as worker_models

__all__ = [
    "Base",
    "customer_models",
    "idempotency_models",
    "identity_models",
    "ledger_models",
    "messaging_models",
    "worker_models",
]
