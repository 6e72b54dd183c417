"""/api/v1 account routes: sign in and out, forgotten and reset passwords."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from malipo.accounts.schemas import (
    ForgotPasswordIn,
    LoginIn,
    LoginOut,
    ResetPasswordIn,
)
from malipo.auth.authenticate import CSRF_COOKIE, SESSION_COOKIE
from malipo.http.deps import ClockDep, DatabaseDep, Session, SettingsDep
from malipo.http.permissions import CA, OP, CurrentPrincipal, callers
from malipo.http.schemas import Message
from malipo.http.tags import ACCOUNT
from malipo.identity import sessions

public_router = APIRouter()
router = APIRouter()
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "testserver"})


def _login_limiter(request: Request) -> sessions.LoginRateLimiter:
    return request.app.state.login_limiter  # type: ignore[no-any-return]


@public_router.post(
    "/account/login",
    response_model=LoginOut,
    name="Account.Login",
    summary="Sign in to the portal",
    tags=[ACCOUNT],
)
async def login(
    body: LoginIn, request: Request, response: Response, db: DatabaseDep, clock: ClockDep
) -> LoginOut:
    """Sign a portal user in: sets the session cookie and a CSRF cookie; answers the user's roles."""
    ip = request.client.host if request.client else "unknown"
    await _login_limiter(request).hit(ip)
    signed = await sessions.sign_in(
        db, email=body.username, password=body.password, remember_me=body.remember_me, ip=ip, now=clock.now()
    )
    secure = request.url.hostname not in _LOOPBACK
    max_age = int((signed.expires_at - clock.now()).total_seconds()) if signed.persistent else None
    response.set_cookie(
        SESSION_COOKIE, signed.token, max_age=max_age, httponly=True, secure=secure, samesite="lax"
    )
    response.set_cookie(
        CSRF_COOKIE, signed.csrf_token, max_age=max_age, httponly=False, secure=secure, samesite="lax"
    )
    return LoginOut(
        user_id=signed.user.id,
        user_name=signed.user.user_name,
        email=signed.user.email,
        client_id=signed.user.client_id,
        roles=signed.roles,
        csrf_token=signed.csrf_token,
        expires_at=signed.expires_at,
    )


@router.post(
    "/account/logout",
    response_model=Message,
    name="Account.Logout",
    summary="Sign out of the portal",
    tags=[ACCOUNT],
    openapi_extra=callers(OP, CA),
)
async def logout(who: CurrentPrincipal, session: Session, response: Response) -> Message:
    """End this portal session and clear its cookies."""
    await sessions.sign_out(session, who.session_id)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return Message(message="signed out")


@public_router.post(
    "/account/forgot-password",
    response_model=Message,
    status_code=status.HTTP_202_ACCEPTED,
    name="Account.ForgotPassword",
    summary="Ask for a password reset link",
    tags=[ACCOUNT],
)
async def forgot_password(
    body: ForgotPasswordIn, session: Session, clock: ClockDep, settings: SettingsDep
) -> Message:
    """Email a password reset link to a portal user. The reply is the same whether the address
    belongs to someone or not, so it tells no one who has an account."""
    await sessions.request_password_reset(session, body.email, now=clock.now(), settings=settings)
    return Message(message="If that email belongs to a portal user, a reset link is on its way.")


@public_router.post(
    "/account/reset-password",
    response_model=Message,
    name="Account.ResetPassword",
    summary="Set a new password with a reset token",
    tags=[ACCOUNT],
)
async def reset_password(body: ResetPasswordIn, session: Session, clock: ClockDep) -> Message:
    """Set a new password with the token from the reset email: the token is then spent and every
    session of the user signed out."""
    await sessions.reset_password(
        session, email=body.email, token=body.token, new_password=body.new_password, now=clock.now()
    )
    return Message(message="password changed: sign in with the new one")
