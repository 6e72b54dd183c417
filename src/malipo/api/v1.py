"""Gathers the domain routers under ``/api/v1``.

Every route included with ``protected`` passes ``authorize``: authentication,
the route's audience, CSRF for cookie sessions, and its permission.
"""

from fastapi import APIRouter, Depends

from malipo.accounts import endpoints as accounts
from malipo.banks import endpoints as banks
from malipo.cards import endpoints as cards
from malipo.checkout import endpoints as checkout
from malipo.collections import endpoints as channels
from malipo.collections.c2b import endpoints as c2b
from malipo.customers import endpoints as customers
from malipo.disbursements import endpoints as disbursements
from malipo.disbursements import reports as disbursement_reports
from malipo.http.permissions import authorize
from malipo.pricing import endpoints as pricing
from malipo.railbalances import endpoints as rail_balances
from malipo.reconciliation import endpoints as reconciliation
from malipo.refunds import endpoints as refunds
from malipo.reports import endpoints as reports
from malipo.reviews import endpoints as reviews
from malipo.sms import endpoints as sms
from malipo.transfers import endpoints as transfers
from malipo.wallets import endpoints as wallets
from malipo.whatsapp import endpoints as whatsapp

router = APIRouter(prefix="/api/v1")
protected = [Depends(authorize)]

router.include_router(accounts.public_router)
router.include_router(accounts.router, dependencies=protected)
router.include_router(customers.router, dependencies=protected)
router.include_router(wallets.router, dependencies=protected)
router.include_router(sms.router, dependencies=protected)
router.include_router(whatsapp.router, dependencies=protected)
router.include_router(channels.router, dependencies=protected)
router.include_router(c2b.router, dependencies=protected)
router.include_router(pricing.router, dependencies=protected)
router.include_router(banks.router, dependencies=protected)
router.include_router(reviews.router, dependencies=protected)
router.include_router(transfers.router, dependencies=protected)
router.include_router(transfers.fraud_router, dependencies=protected)
router.include_router(cards.router, dependencies=protected)
router.include_router(checkout.router, dependencies=protected)
router.include_router(reports.router, dependencies=protected)
router.include_router(refunds.router, dependencies=protected)
router.include_router(rail_balances.router, dependencies=protected)
router.include_router(reconciliation.router, dependencies=protected)
router.include_router(disbursements.router, dependencies=protected)
router.include_router(disbursement_reports.reports_router, dependencies=protected)
