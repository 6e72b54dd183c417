"""Who is calling: one Principal, whatever the way they authenticated."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from malipo.identity.models import KeyMode


class PrincipalKind(StrEnum):
    PORTAL = "portal"  # a portal user with a cookie session
    API_KEY = "api_key"  # an API user with a Bearer key (or Basic with the key as username)
    PAYHERO = "payhero"  # an API user with its Pay Hero Basic credentials
    CUSTOMER = "customer"  # a merchant's wallet customer with a Bearer JWT


class Audience(StrEnum):
    """The callers a route is meant for (API-MAP's "who" column)."""

    OPERATOR = "op"  # operator staff: SuperAdmin, CompanyAdmin
    CLIENT_ADMIN = "ca"  # a merchant's portal user
    KEY = "key"  # an API user
    CUSTOMER = "cust"  # a merchant's wallet customer


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    # The portal user's id, the API user's id, or the customer's id.
    id: uuid.UUID
    # None for operator staff, who belong to no client.
    client_id: uuid.UUID | None
    role_ids: tuple[uuid.UUID, ...]
    role_names: frozenset[str]
    mode: KeyMode = KeyMode.LIVE
    api_key_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None
    csrf_token: str | None = None

    @property
    def audience(self) -> Audience:
        if self.kind == PrincipalKind.CUSTOMER:
            return Audience.CUSTOMER
        if self.kind != PrincipalKind.PORTAL:
            return Audience.KEY
        return Audience.OPERATOR if self.client_id is None else Audience.CLIENT_ADMIN

    @property
    def is_operator(self) -> bool:
        return self.audience == Audience.OPERATOR

    @property
    def is_super_admin(self) -> bool:
        return self.is_operator and "SuperAdmin" in self.role_names

    @property
    def api_user_id(self) -> uuid.UUID | None:
        return self.id if self.kind in (PrincipalKind.API_KEY, PrincipalKind.PAYHERO) else None

    @property
    def uses_cookie(self) -> bool:
        return self.session_id is not None

    def report_scope(self, client_id: uuid.UUID | None) -> uuid.UUID | None:
        """Whose rows a report shows: an operator's choice (None: every client's); anyone else's
        own client's, always."""
        if self.is_operator:
            return client_id
        assert self.client_id is not None
        return self.client_id

    def sees_client(self, client_id: uuid.UUID | None) -> bool:
        """Whether objects of ``client_id`` are visible: operators see all, others their own."""
        return self.is_operator or (client_id is not None and client_id == self.client_id)
