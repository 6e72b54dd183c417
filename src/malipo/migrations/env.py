"""Alembic environment. malipo runs migrations through ``malipo.migrate`` with a live
connection in ``config.attributes["connection"]``; there is no alembic.ini."""

from __future__ import annotations

from typing import Any

from alembic import context

import malipo.models  # noqa: F401  (registers every table)
from malipo.db import Base, UTCDateTime


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations must not import application types that may change later.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `malipo db upgrade` (malipo.migrate), not the alembic command")
run_migrations(connection)
