"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from malipo.collections.service import not_sent_counts
from malipo.core.logging import get_logger
from malipo.db import Database
from malipo.http.deps import DatabaseDep
from malipo.http.tags import HEALTH

router = APIRouter(tags=[HEALTH])
log = get_logger("malipo.health")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unreachable"]
    migrations: Literal["current", "behind", "unknown"]
    revision: str | None
    head: str | None


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    """Answers 200 while the process serves requests; it checks nothing else."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "Not ready: database unreachable or migrations behind"}
    },
    summary="Readiness: database reachable and migrations current",
)
async def readyz(request: Request, db: DatabaseDep) -> JSONResponse:
    """200 when the database answers and its migrations are current; 503 otherwise, saying which."""
    head: str | None = request.app.state.migration_head
    revision: str | None = None
    database: Literal["ok", "unreachable"] = "ok"
    migrations: Literal["current", "behind", "unknown"] = "unknown"
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            try:
                revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            except Exception:
                revision = None  # never migrated: no alembic_version table yet
            migrations = "current" if revision is not None and revision == head else "behind"
    except Exception as exc:
        database = "unreachable"
        log.warning("readyz.database_unreachable", error=type(exc).__name__)
    ready = database == "ok" and migrations == "current"
    body = Readiness(
        status="ready" if ready else "not_ready",
        database=database,
        migrations=migrations,
        revision=revision,
        head=head,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(db: DatabaseDep) -> Response:
    """Metrics in Prometheus' text format, with the counters kept in the database."""
    return Response(generate_latest() + await _database_metrics(db), media_type=CONTENT_TYPE_LATEST)


async def _database_metrics(db: Database) -> bytes:
    """Counters kept in the database, so that they count what every process (web, workers) did."""
    try:
        async with db.transaction() as session:
            not_sent = await not_sent_counts(session)
    except Exception as exc:
        log.warning("metrics.database_unreachable", error=type(exc).__name__)
        return b""
    lines = [
        "# HELP malipo_collections_not_sent_total Collections that ended FAILED because their STK push "
        "never reached M-Pesa (the payer was never prompted)",
        "# TYPE malipo_collections_not_sent_total counter",
        *(
            f'malipo_collections_not_sent_total{{mode="{mode}"}} {not_sent.get(mode, 0)}'
            for mode in ("live", "test")
        ),
    ]
    return ("\n".join(lines) + "\n").encode()
