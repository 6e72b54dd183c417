"""What identity's services read of a request: the attributes, not the HTTP schema that carries them.

The routes (``malipo.accounts``) pass their Pydantic bodies, which have these attributes;
identity sits below the routes and so names only the shapes it needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from malipo.identity.models import ClientType


class ClientDetails(Protocol):
    """A merchant's registration."""

    @property
    def client_type(self) -> ClientType: ...
    @property
    def name(self) -> str: ...
    @property
    def contact_person(self) -> str | None: ...
    @property
    def phone_number(self) -> str: ...
    @property
    def email_address(self) -> str: ...
    @property
    def address(self) -> str | None: ...
    @property
    def city(self) -> str | None: ...
    @property
    def state(self) -> str | None: ...
    @property
    def country(self) -> str: ...


class ApiUserDetails(Protocol):
    """A new API user of the caller's client."""

    @property
    def developer_name(self) -> str: ...
    @property
    def developer_email(self) -> str: ...
    @property
    def developer_phone_number(self) -> str: ...
    @property
    def role_id(self) -> uuid.UUID: ...


class PortalUserDetails(Protocol):
    """A new portal user, by role names."""

    @property
    def user_name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def roles(self) -> Sequence[str]: ...
    @property
    def generate_api_key(self) -> bool: ...


class PermissionSpec(Protocol):
    """A permission to define: its name and the route it stands for."""

    @property
    def name(self) -> str: ...
    @property
    def http_method(self) -> str: ...
    @property
    def route_pattern(self) -> str: ...
