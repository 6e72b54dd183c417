"""Requests and replies of the identity routes (/api/v1: account, clients, users, roles, keys)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints, field_validator

from malipo.api.schemas import CamelModel
from malipo.identity.models import ClientStatus, ClientType

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=32)]
Text300 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


# -- account ------------------------------------------------------------------------


# Sign-in and reset look an account up; they do not judge the address's format.
AccountEmail = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)]


class LoginIn(CamelModel):
    username: AccountEmail
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    remember_me: bool = False


class LoginOut(CamelModel):
    user_id: uuid.UUID
    user_name: str
    email: str
    client_id: uuid.UUID | None
    roles: list[str]
    csrf_token: str
    expires_at: datetime


class ForgotPasswordIn(CamelModel):
    email: AccountEmail


class ResetPasswordIn(CamelModel):
    email: AccountEmail
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    new_password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


# -- clients ------------------------------------------------------------------------


class ClientIn(CamelModel):
    client_type: ClientType
    name: Name
    contact_person: Name | None = None
    phone_number: Phone
    email_address: EmailStr
    address: Text300 | None = None
    city: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    state: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    country: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=60)] = "KE"


class ApiUserBrief(CamelModel):
    id: uuid.UUID
    developer_name: str
    developer_email: str
    is_active: bool


class ClientOut(CamelModel):
    id: uuid.UUID
    client_type: ClientType
    name: str
    status: ClientStatus
    contact_person: str | None
    phone_number: str | None
    email_address: str
    address: str | None
    city: str | None
    state: str | None
    country: str
    currency: str
    rejection_reason: str | None
    created_at: datetime


class ClientWithUsers(ClientOut):
    api_user_count: int
    api_users: list[ApiUserBrief]


class ApiUserCount(CamelModel):
    client_id: uuid.UUID | None
    count: int


# -- API users ----------------------------------------------------------------------


class ApiUserIn(CamelModel):
    developer_name: Name
    developer_email: EmailStr
    developer_phone_number: Phone
    role_id: uuid.UUID


class ApiUserOut(CamelModel):
    id: uuid.UUID
    client_id: uuid.UUID
    role_id: uuid.UUID
    developer_name: str
    developer_email: str
    developer_phone_number: str
    api_username: str
    is_active: bool
    created_at: datetime


class ApiCredentials(CamelModel):
    """Shown once: only hashes are kept."""

    api_key: str
    api_key_mode: Literal["live", "test"]
    api_username: str
    api_password: str


class ApiUserCreated(CamelModel):
    api_user: ApiUserOut
    credentials: ApiCredentials


class PermissionOverridesIn(CamelModel):
    overrides: dict[uuid.UUID, bool] = Field(
        description="permissionId → allowed (true grants, false revokes)"
    )


class PermissionOverride(CamelModel):
    permission_id: uuid.UUID
    name: str
    http_method: str
    route_pattern: str
    is_allowed: bool


class ApiUserPermissions(CamelModel):
    api_user_id: uuid.UUID
    developer_name: str
    overrides: list[PermissionOverride]


# -- permissions and roles ----------------------------------------------------------


class PermissionIn(CamelModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)]
    http_method: HttpMethod
    route_pattern: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^/\S{0,299}$")]

    @field_validator("http_method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class PermissionOut(CamelModel):
    id: uuid.UUID
    name: str
    http_method: str
    route_pattern: str


class BulkPermissionsOut(CamelModel):
    created: list[PermissionOut]
    skipped: list[PermissionIn]


class RoleIn(CamelModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    permission_ids: list[uuid.UUID] = Field(default_factory=list)


class RolePermissionsIn(CamelModel):
    permission_ids: list[uuid.UUID]


class RolePermissionAddIn(CamelModel):
    # The seed spells it permissionID; permissionId is accepted too.
    permission_id: uuid.UUID = Field(alias="permissionID", validation_alias="permissionID")


class RoleOut(CamelModel):
    id: uuid.UUID
    name: str
    description: str | None
    is_system: bool
    permission_ids: list[uuid.UUID]


# -- portal users ------------------------------------------------------------------


class PortalUserIn(CamelModel):
    user_name: Name
    email: EmailStr
    roles: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(min_length=1)
    generate_api_key: bool = False


class PortalUserOut(CamelModel):
    id: uuid.UUID
    user_name: str
    email: str
    client_id: uuid.UUID | None
    roles: list[str]
    is_active: bool
    created_at: datetime


class PortalUserCreated(CamelModel):
    portal_user: PortalUserOut
    credentials: ApiCredentials | None


# -- sandbox keys ------------------------------------------------------------------


class SandboxKeyIn(CamelModel):
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    api_user_id: uuid.UUID | None = None


class ApiKeyOut(CamelModel):
    id: uuid.UUID
    api_user_id: uuid.UUID
    mode: Literal["live", "test"]
    prefix: str
    description: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class SandboxKeyCreated(ApiKeyOut):
    api_key: str
