"""Requests and replies of the identity routes (/api/v1: account, clients, users, roles, keys)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, EmailStr, Field, StringConstraints, field_validator

from malipo.http.schemas import CamelModel
from malipo.identity.models import ClientStatus, ClientType

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=32)]
Text300 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


# -- account ------------------------------------------------------------------------


# Sign-in and reset look an account up; they do not judge the address's format.
AccountEmail = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)]


class LoginIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"username": "owner@dukalamama.co.ke", "password": "Kahawa-Tamu-2024", "rememberMe": False}
            ]
        }
    )

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
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "owner@dukalamama.co.ke"}]})

    email: AccountEmail


class ResetPasswordIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "owner@dukalamama.co.ke",
                    "token": "tq3ZP8vN0x2mWb7Ls4Hd9Ke1",
                    "newPassword": "Chai-Moto-Asubuhi-7",
                }
            ]
        }
    )

    email: AccountEmail
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    new_password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


# -- clients ------------------------------------------------------------------------


class ClientIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "clientType": "Company",
                    "name": "Duka La Mama Ltd",
                    "contactPerson": "Wanjiku Kamau",
                    "phoneNumber": "0712345678",
                    "emailAddress": "accounts@dukalamama.co.ke",
                    "address": "Moi Avenue 12",
                    "city": "Nairobi",
                    "state": "Nairobi County",
                    "country": "KE",
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "developerName": "Otieno Ochieng",
                    "developerEmail": "otieno@dukalamama.co.ke",
                    "developerPhoneNumber": "0722123456",
                    "roleId": "3f2b8c1e-5d4a-4e9b-9c7f-0a1b2c3d4e5f",
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "overrides": {
                        "3f2b8c1e-5d4a-4e9b-9c7f-0a1b2c3d4e5f": True,
                        "8d0e6f4a-2b1c-4f3e-a5d6-7c8b9a0e1f2d": False,
                    }
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Reports.Export", "httpMethod": "GET", "routePattern": "/api/v1/reports/export"}
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Support",
                    "permissionIds": [
                        "3f2b8c1e-5d4a-4e9b-9c7f-0a1b2c3d4e5f",
                        "8d0e6f4a-2b1c-4f3e-a5d6-7c8b9a0e1f2d",
                    ],
                }
            ]
        }
    )

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    permission_ids: list[uuid.UUID] = Field(default_factory=list)


class RolePermissionsIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "permissionIds": [
                        "3f2b8c1e-5d4a-4e9b-9c7f-0a1b2c3d4e5f",
                        "8d0e6f4a-2b1c-4f3e-a5d6-7c8b9a0e1f2d",
                    ]
                }
            ]
        }
    )

    permission_ids: list[uuid.UUID]


class RolePermissionAddIn(CamelModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"permissionID": "c5a7e9b1-3d2f-4a6c-8e0b-1f2a3b4c5d6e"}]}
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "userName": "Achieng Otieno",
                    "email": "achieng@dukalamama.co.ke",
                    "roles": ["ClientAdmin"],
                    "generateApiKey": False,
                },
                {"userName": "Njeri Mwangi", "email": "njeri.mwangi@malipo.co.ke", "roles": ["CompanyAdmin"]},
            ]
        }
    )

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
    model_config = ConfigDict(json_schema_extra={"examples": [{"description": "CI pipeline"}]})

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
