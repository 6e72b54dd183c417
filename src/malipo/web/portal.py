"""Operator pages of the portal (server-rendered)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from malipo.email.service import list_mail
from malipo.http.deps import Session
from malipo.http.permissions import OP, authorize, callers

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(prefix="/portal", include_in_schema=False)


@router.get(
    "/dev/mailbox",
    response_class=HTMLResponse,
    name="DevMailbox.Open",
    openapi_extra=callers(OP),
    dependencies=[Depends(authorize)],
)
async def dev_mailbox(request: Request, session: Session) -> HTMLResponse:
    """The mail kept instead of sent when no SMTP server is configured (it carries merchants'
    credentials): operator staff holding DevMailbox.Open only (SuperAdmin by default)."""
    messages = await list_mail(session, limit=200)
    return templates.TemplateResponse(request, "portal/mailbox.html", {"messages": messages})
