"""Operator pages of the portal (server-rendered)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from malipo.api.deps import ClockDep, Session
from malipo.auth.authenticate import authenticate
from malipo.core.errors import Forbidden
from malipo.messaging.mail import list_mail

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(prefix="/portal", include_in_schema=False)


@router.get("/dev/mailbox", response_class=HTMLResponse)
async def dev_mailbox(request: Request, session: Session, clock: ClockDep) -> HTMLResponse:
    """The mail kept instead of sent when no SMTP server is configured; operator staff only."""
    who = await authenticate(request, session, clock.now())
    if not who.is_operator:
        raise Forbidden("the dev mailbox is for operator staff")
    messages = await list_mail(session, limit=200)
    return templates.TemplateResponse(request, "portal/mailbox.html", {"messages": messages})
