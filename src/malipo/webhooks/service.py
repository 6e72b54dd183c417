"""Queue a callback to a merchant's URL; the worker delivers it (``webhooks.tasks``).

A domain queues a callback about one of its subjects by kind and id (``subject``): the body is
rendered when the worker delivers it, by the renderer the surface registered for that kind, so
the domain knows nothing of the surface's shapes. A literal ``payload`` is posted as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from malipo.core.ids import new_id
from malipo.webhooks import repository
from malipo.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from malipo.worker.registry import enqueue

DELIVER_JOB = "webhook.deliver"

# The stored payload of a callback rendered at delivery: {RENDER_KEY: kind, "id": subject id}.
RENDER_KEY = "$render"

# Bodies of a kind's subjects by id (a subject gone has none), read in the job's transaction.
Renderer = Callable[[AsyncSession, list[uuid.UUID]], Awaitable[dict[uuid.UUID, Any]]]
_RENDERERS: dict[str, Renderer] = {}


class NoRenderer(LookupError):
    """A stored callback names a kind no renderer is registered for, or a subject that is gone."""


def register_renderer(kind: str, renderer: Renderer) -> None:
    """Render the callbacks of ``kind`` with ``renderer`` (the surface registers its shapes)."""
    _RENDERERS[kind] = renderer


async def render_bodies(session: AsyncSession, stored: dict[uuid.UUID, Any]) -> dict[uuid.UUID, Any]:
    """Each delivery's body by delivery id: a literal payload as it is, a subject's rendered now.
    A body that cannot be rendered is a NoRenderer saying why, in place of the body."""
    wanted: dict[str, dict[uuid.UUID, uuid.UUID]] = {}  # kind -> delivery id -> subject id
    bodies: dict[uuid.UUID, Any] = {}
    for delivery_id, payload in stored.items():
        if isinstance(payload, dict) and RENDER_KEY in payload:
            wanted.setdefault(str(payload[RENDER_KEY]), {})[delivery_id] = uuid.UUID(str(payload["id"]))
        else:
            bodies[delivery_id] = payload
    for kind, subjects in wanted.items():
        renderer = _RENDERERS.get(kind)
        rendered = {} if renderer is None else await renderer(session, list(set(subjects.values())))
        for delivery_id, subject_id in subjects.items():
            body = rendered.get(subject_id)
            missing = NoRenderer(f"no {kind} callback can be rendered for {subject_id}")
            bodies[delivery_id] = body if body is not None else missing
    return bodies


def queue(
    session: AsyncSession,
    *,
    client_id: uuid.UUID,
    mode: str,
    event: str,
    subject_reference: str,
    url: str,
    now: datetime,
    payload: dict[str, Any] | None = None,
    subject: tuple[str, uuid.UUID] | None = None,
) -> WebhookDelivery:
    """A delivery to ``url``, sent by the worker after this transaction commits: of ``payload``,
    or of the body rendered at delivery for ``subject`` (its kind and id)."""
    if (payload is None) == (subject is None):
        raise ValueError("a callback has a payload or a subject, not both")
    stored = payload if subject is None else {RENDER_KEY: subject[0], "id": str(subject[1])}
    delivery = WebhookDelivery(
        id=new_id(), client_id=client_id, mode=mode, event=event, subject_reference=subject_reference,
        url=url, payload=stored, status=DeliveryStatus.PENDING, attempts=0, created_at=now,
    )  # fmt: skip
    repository.add_delivery(session, delivery)
    enqueue(session, DELIVER_JOB, {"delivery_id": str(delivery.id)}, now=now)
    return delivery


async def deliveries_for(
    session: AsyncSession, client_id: uuid.UUID, mode: str, subject_reference: str
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """A reference's deliveries (oldest first) with their attempts: what a merchant can inspect."""
    return await repository.deliveries_for(session, client_id, mode, subject_reference)
