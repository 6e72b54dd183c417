"""/api/v1 routes of identity: account, clients, API users, permissions, roles, portal users, sandbox keys.

Each route's ``name`` is its permission name; ``callers(...)`` says who may call it. One module
per group of routes; gathered here in the order the reference lists them.
"""

from fastapi import APIRouter

from malipo.accounts.endpoints import account, api_users, clients, portal_users, roles

public_router = APIRouter()
router = APIRouter()

for group in (account, clients):
    public_router.include_router(group.public_router)
for group in (account, clients, api_users, roles, portal_users):
    router.include_router(group.router)
