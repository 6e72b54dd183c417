"""The Pay Hero-compatible surface: ``/api/v2`` and ``/mailer``.

Translation only: each module maps Pay Hero's request and reply shapes onto a
domain service, and errors are rendered in Pay Hero's ``{error_code,
error_message, status_code}`` shape by ``malipo.http.errors`` (by path prefix).
Every route needs an API user: its Pay Hero Basic pair (``api_username:api_password``)
or one of its keys.
"""

from fastapi import APIRouter

from malipo.api.payhero import payments, payouts

router = APIRouter()
router.include_router(payments.router)
router.include_router(payouts.router)

from malipo.api.payhero import mailer as _mailer  # noqa: E402
from malipo.api.payhero import whatsapp as _whatsapp  # noqa: E402

router.include_router(_mailer.router)
router.include_router(_whatsapp.router)
