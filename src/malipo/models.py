"""Imports every module that declares tables, so ``Base.metadata`` is complete.

Alembic and the schema test read the metadata from here; a new domain's
``models`` module is added to this list.
"""

from malipo.banks import models as bank_models
from malipo.cards import models as card_models
from malipo.checkout import models as checkout_models
from malipo.collections import models as collection_models
from malipo.collections.c2b import models as c2b_models
from malipo.customers import models as customer_models
from malipo.db import Base, idempotency_models
from malipo.disbursements import models as disbursement_models
from malipo.email import models as email_models
from malipo.identity import models as identity_models
from malipo.ledger import models as ledger_models
from malipo.payouts import models as payout_models
from malipo.pricing import models as pricing_models
from malipo.railbalances import models as rail_balance_models
from malipo.reconciliation import models as reconciliation_models
from malipo.refunds import models as refund_models
from malipo.reviews import models as review_models
from malipo.sms import models as sms_models
from malipo.transfers import models as transfer_models
from malipo.webhooks import models as webhook_models
from malipo.whatsapp import models as whatsapp_models
from malipo.worker import models as worker_models

__all__ = [
    "Base",
    "bank_models",
    "c2b_models",
    "card_models",
    "checkout_models",
    "collection_models",
    "customer_models",
    "disbursement_models",
    "email_models",
    "idempotency_models",
    "identity_models",
    "ledger_models",
    "payout_models",
    "pricing_models",
    "rail_balance_models",
    "reconciliation_models",
    "refund_models",
    "review_models",
    "sms_models",
    "transfer_models",
    "webhook_models",
    "whatsapp_models",
    "worker_models",
]
