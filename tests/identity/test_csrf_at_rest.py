"""A portal session's CSRF token is stored nowhere (it is derived from the session's own token), yet a
cookie session's POST with it works, and one with another session's token is refused."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.identity.test_sign_in import (  # noqa: F401  (fixtures)
    SANDBOX_KEYS,
    Gateway,
    _in_db,
    _login,
    cheap_argon2,
    gateway,
)


def test_the_csrf_token_is_not_in_the_database_and_works_only_for_its_own_session(gateway: Gateway) -> None:  # noqa: F811
    demo = gateway.demo
    body = {"apiUserId": demo.api_user_id, "description": "csrf at rest"}
    with gateway.client() as first, gateway.client() as second:
        one = _login(first, demo.operator_email, demo.operator_password)
        two = _login(second, demo.operator_email, demo.operator_password)
        assert one.status_code == two.status_code == 200, one.text + two.text
        csrf_one, csrf_two = one.json()["csrfToken"], two.json()["csrfToken"]
        assert csrf_one != csrf_two

        async def stored(session: AsyncSession) -> list[str]:
            rows = (await session.execute(text("SELECT * FROM portal_sessions"))).all()
            return [str(value) for row in rows for value in row]

        values = _in_db(gateway.settings, stored)
        assert len(values) >= 2 * 5, "both sessions are stored"
        for csrf in (csrf_one, csrf_two):
            assert not any(csrf in value for value in values), "a CSRF token is stored"

        # Another session's token, sent in the header and the cookie both, is refused.
        second.cookies.set("malipo_csrf", csrf_one)
        crossed = second.post(SANDBOX_KEYS, json=body, headers={"X-CSRF-Token": csrf_one})
        assert crossed.status_code == 403, crossed.text
        assert "CSRF" in crossed.json()["detail"]
        right = first.post(SANDBOX_KEYS, json=body, headers={"X-CSRF-Token": csrf_one})
        assert right.status_code == 201, right.text
