"""The identity routes of /api/v1 (sign-in, clients, users, API users, roles, permissions, sandbox keys):
thin endpoints over ``malipo.identity``'s services, and the mail those services ask for."""

# Identity's notices go out as operator mail once this package is imported.
from malipo.accounts import service  # noqa: F401
