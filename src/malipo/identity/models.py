"""Who is who: clients (merchants), portal users, API users and their keys, roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from malipo.core.ids import new_id
from malipo.db import Base


class ClientType(StrEnum):
    INDIVIDUAL = "Individual"
    COMPANY = "Company"


class ClientStatus(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    REJECTED = "Rejected"
    DEACTIVATED = "Deactivated"


class KeyMode(StrEnum):
    LIVE = "live"
    TEST = "test"


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Permission(Base):
    __tablename__ = "permissions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(150))
    http_method: Mapped[str] = mapped_column(String(10))
    route_pattern: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("http_method", "route_pattern"),)


class RolePermission(Base):
    __tablename__ = "role_permissions"

    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)
    permission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True
    )


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=ClientStatus.PENDING)
    email: Mapped[str] = mapped_column(String(320))
    phone_number: Mapped[str | None] = mapped_column(String(32))
    contact_person: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(100))
    state_or_province: Mapped[str | None] = mapped_column(String(100))
    # ISO 3166 alpha-2: how local phone numbers are read, and the default currency.
    country: Mapped[str] = mapped_column(String(2), default="KE")
    currency: Mapped[str] = mapped_column(String(3), default="KES")
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PortalUser(Base):
    __tablename__ = "portal_users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # None for the operator's own staff (SuperAdmin, CompanyAdmin).
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clients.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    user_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class PortalUserRole(Base):
    __tablename__ = "portal_user_roles"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("portal_users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class ApiUser(Base):
    __tablename__ = "api_users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("roles.id"))
    developer_name: Mapped[str] = mapped_column(String(200))
    developer_email: Mapped[str] = mapped_column(String(320))
    developer_phone_number: Mapped[str] = mapped_column(String(32))
    # Pay Hero's HTTP Basic pair: the username is public, the password stored hashed.
    api_username: Mapped[str] = mapped_column(String(64), unique=True)
    api_password_hash: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    api_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clients.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class ApiUserPermission(Base):
    """A per-API-user override of its role's grants: allow (True) or deny (False)."""

    __tablename__ = "api_user_permissions"

    api_user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("api_users.id", ondelete="CASCADE"), primary_key=True
    )
    permission_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True
    )
    is_allowed: Mapped[bool] = mapped_column(Boolean)


class PortalSession(Base):
    """A signed-in portal user. The cookie holds the raw token; only its hash is kept."""

    __tablename__ = "portal_sessions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"), index=True)
    # Double-submit CSRF: its token is derived from the raw token (``sessions.csrf_token_for``),
    # so it is stored nowhere.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(64))


class PasswordResetToken(Base):
    __tablename__ = "password_reset_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AuditLog(Base):
    """One API call: who, for which client, what, how it ended, how long it took."""

    __tablename__ = "audit_logs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    at: Mapped[datetime]
    request_id: Mapped[str] = mapped_column(String(128))
    principal_type: Mapped[str | None] = mapped_column(String(20))
    principal_id: Mapped[uuid.UUID | None]
    api_user_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    client_id: Mapped[uuid.UUID | None]
    mode: Mapped[str | None] = mapped_column(String(4))
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(String(2000))
    status: Mapped[int]
    latency_ms: Mapped[float] = mapped_column(Float)
    ip: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_logs_client_id_at", "client_id", "at"),)
