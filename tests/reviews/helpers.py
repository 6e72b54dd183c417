"""Helpers of the callback-review tests: operator and merchant portal users on a World, the
operator's review routes, and a World's reviews and jobs read from its database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from malipo.core.clock import SystemClock
from malipo.identity import service as identity
from malipo.reviews.models import CallbackReview
from malipo.worker.models import Job
from tests.fixtures.world import World

PASSWORD = "correct horse battery"


@dataclass
class Portal:
    headers: dict[str, str]
    cookies: dict[str, str]


async def portal_user(world: World, role: str, client_id: uuid.UUID | None = None) -> Portal:
    """A new portal user with ``role`` (an operator when ``client_id`` is None), signed in."""
    email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    now = SystemClock().now()
    async with world.db.transaction() as session:
        roles = await identity.ensure_system_roles(session, now)
        await identity.create_portal_user(
            session, email=email, user_name=email.split("@")[0], password=PASSWORD, roles=[roles[role]],
            client_id=client_id, now=now,
        )  # fmt: skip
    async with httpx.AsyncClient(base_url=world.url) as http:
        reply = await http.post("/api/v1/account/login", json={"username": email, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    csrf = reply.cookies["malipo_csrf"]
    return Portal(
        {"X-CSRF-Token": csrf}, {"malipo_session": reply.cookies["malipo_session"], "malipo_csrf": csrf}
    )


async def call(
    world: World, method: str, path: str, who: Portal | dict[str, str], **kwargs: Any
) -> httpx.Response:
    """``path`` as ``who`` (a portal user's session, or plain headers such as a merchant's key)."""
    if isinstance(who, Portal):
        headers = who.headers | {"Cookie": "; ".join(f"{k}={v}" for k, v in who.cookies.items())}
    else:
        headers = who
    async with httpx.AsyncClient(base_url=world.url, timeout=30) as http:  # no cookie jar shared
        return await http.request(method, path, headers=headers, **kwargs)


async def review_list(world: World, who: Portal | dict[str, str], status: str = "OPEN") -> httpx.Response:
    return await call(world, "GET", "/api/v1/operator/review", who, params={"status": status})


async def resolve(
    world: World, who: Portal | dict[str, str], kind: str, subject_id: uuid.UUID, action: str
) -> httpx.Response:
    return await call(world, "POST", f"/api/v1/operator/review/{kind}/{subject_id}/{action}", who)


async def reviews(world: World) -> list[CallbackReview]:
    async with world.db.transaction() as session:
        return list((await session.scalars(select(CallbackReview))).all())


async def run_jobs_now(world: World, kind: str) -> int:
    """Make ``kind``'s pending jobs due now (as if their delay had passed); how many."""
    async with world.db.transaction() as session:
        moved = await session.execute(
            update(Job)
            .where(Job.kind == kind, Job.status == "pending")
            .values(run_at=SystemClock().now() - timedelta(seconds=1))
        )
    return int(moved.rowcount)  # type: ignore[attr-defined]
