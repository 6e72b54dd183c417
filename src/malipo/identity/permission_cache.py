"""Recent permission decisions, per database and process, and when they must be forgotten.

Identity changes grants and overrides (``permissions_changed``); auth reads and fills the
cache when it checks a request. Kept here, below both, so identity never imports auth.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session as OrmSession

from malipo.db import Database

DECISION_TTL = 2.0  # seconds a cached permission decision stands


class Decisions:
    """Recent permission decisions of one database in this process: most requests need no query.

    An entry lives ``ttl`` seconds. A change to a role's grants or an API user's overrides
    clears the cache when its transaction commits (``permissions_changed``); another
    process sees the change within ``ttl``.
    """

    def __init__(self, ttl: float = DECISION_TTL, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[tuple[Any, ...], tuple[float, str | None, bool]] = {}

    def get(self, key: tuple[Any, ...]) -> tuple[str | None, bool] | None:
        found = self._entries.get(key)
        if found is None or found[0] <= time.monotonic():
            return None
        return found[1], found[2]

    def put(self, key: tuple[Any, ...], name: str | None, allowed: bool) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, name, allowed)

    def clear(self) -> None:
        self._entries.clear()


_PERMISSIONS_CHANGED = "permissions_changed"
_CACHE_NAME = "permission_decisions"


def database_decisions(db: Database) -> Decisions:
    """The decision cache of ``db`` (made on first use)."""
    found: Decisions = db.caches.setdefault(_CACHE_NAME, Decisions())
    return found


def session_decisions(session: AsyncSession | OrmSession) -> Decisions | None:
    """The decision cache of the database ``session`` belongs to; None outside a Database."""
    database = session.info.get("database")
    if database is None:  # a session made outside Database: no cache
        return None
    return database_decisions(database)


def permissions_changed(session: AsyncSession) -> None:
    """Call after changing grants or overrides: cached decisions go when the change commits."""
    session.info[_PERMISSIONS_CHANGED] = True
    decisions = session_decisions(session)
    if decisions is not None:
        decisions.clear()


@event.listens_for(OrmSession, "after_commit")
def _clear_decisions_after_commit(session: OrmSession) -> None:
    if session.info.pop(_PERMISSIONS_CHANGED, False):
        decisions = session_decisions(session)
        if decisions is not None:
            decisions.clear()


@event.listens_for(OrmSession, "after_soft_rollback")
def _forget_change_after_rollback(session: OrmSession, _previous: Any) -> None:
    session.info.pop(_PERMISSIONS_CHANGED, None)
