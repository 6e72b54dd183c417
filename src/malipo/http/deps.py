"""``Annotated`` dependencies: an endpoint's signature says what it needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.config import Settings
from malipo.core.clock import Clock
from malipo.db import Database


# Plain values off app.state: async, so FastAPI does not send them to a thread pool.
async def get_database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction: committed when the endpoint returns, rolled back if it raises.

    Declared with ``scope="function"`` so the commit happens before the reply is
    sent: a client never sees a success whose commit then failed.
    """
    db: Database = request.app.state.db
    async with db.sessionmaker() as session, session.begin():
        yield session


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


DatabaseDep = Annotated[Database, Depends(get_database)]
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
