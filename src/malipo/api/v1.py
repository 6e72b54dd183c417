"""Gathers the domain routers under ``/api/v1``.

Every route included with ``protected`` passes ``authorize``: authentication,
the route's audience, CSRF for cookie sessions, and its permission.
"""

from fastapi import APIRouter, Depends

from malipo.accounts import endpoints as accounts
from malipo.collections import endpoints as channels
from malipo.customers import endpoints as customers
from malipo.http.permissions import authorize
from malipo.messaging import endpoints as messaging
from malipo.pricing import endpoints as pricing
from malipo.reviews import endpoints as reviews
from malipo.wallets import endpoints as wallets

router = APIRouter(prefix="/api/v1")
protected = [Depends(authorize)]

router.include_router(accounts.public_router)
router.include_router(accounts.router, dependencies=protected)
router.include_router(customers.router, dependencies=protected)
router.include_router(wallets.router, dependencies=protected)
router.include_router(messaging.router, dependencies=protected)
router.include_router(channels.router, dependencies=protected)
router.include_router(pricing.router, dependencies=protected)
router.include_router(reviews.router, dependencies=protected)
