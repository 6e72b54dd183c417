"""Card rules on the database with the acquirer simulator in process: the vault keeps no PAN in the
clear and recognises a card tokenised again; each test card's outcome moves the hold as it should;
capture (full, partial once, over the hold refused), void and refund limits; expiry on the frozen
clock; every state moves once; the books balance after each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncSession

from malipo.cards import service, vault
from malipo.cards.models import AuthorizationStatus as S
from malipo.cards.models import CardAuthorization
from malipo.config import Settings
from malipo.core.clock import FrozenClock
from malipo.db import Database
from malipo.identity.principals import Principal
from malipo.providers.cardacq.client import CardAcquirerClient
from tests.cards.helpers import (
    AMEX,
    CHALLENGE,
    CHALLENGE_THEN_DECLINED,
    DECLINED,
    FRICTIONLESS,
    LOOKUP_FAILS,
    LOST,
    NO_FUNDS,
    VISA,
    assert_books_balance,
    card_balances,
    make_merchant_key,
    pass_challenge,
    simulated_acquirer,
)

AMOUNT = 1_250_00  # KES 1,250.00
FEE = 36_25  # the card tariff: 2.9 %


def _card(pan: str = VISA, cvv: str = "123", month: int = 12, year: int = 2030) -> service.CardDetails:
    return service.CardDetails(pan, month, year, cvv)


async def _authorized(
    session: AsyncSession,
    who: Principal,
    acquirer: CardAcquirerClient,
    settings: Settings,
    clock: FrozenClock,
    pan: str = VISA,
) -> CardAuthorization:
    card = await service.tokenize(
        session, who, _card(pan, "1234" if pan == AMEX else "123"), settings=settings, now=clock.now()
    )
    request = service.AuthorizeRequest(card.token, "1250.00", "KES", "ORD-1", "https://shop.example/back")
    return await service.authorize(
        session, who, request, acquirer, settings=settings, now=clock.now(), checkpoint=session.flush
    )


async def test_the_vault_seals_the_pan_and_knows_a_card_tokenised_again(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session:
        who = await make_merchant_key(session, "vault", now=clock.now())
        other = await make_merchant_key(session, "vault2", now=clock.now())
        first = await service.tokenize(
            session, who, _card("4242 4242 4242 4242"), settings=settings, now=clock.now()
        )
        again = await service.tokenize(session, who, _card(), settings=settings, now=clock.now())
        theirs = await service.tokenize(session, other, _card(), settings=settings, now=clock.now())
        assert (first.brand, first.bin, first.last4) == ("visa", "424242", "4242")
        assert VISA not in first.pan_ciphertext
        assert first.key_id == first.pan_ciphertext.split(":")[0]
        assert vault.open_pan(first.token, first.pan_ciphertext) == VISA
        with pytest.raises(InvalidTag):  # sealed for its own token only
            vault.open_pan(again.token, first.pan_ciphertext)
        assert first.fingerprint == again.fingerprint != theirs.fingerprint
        assert (await service.same_card(session, again)) is not None
        assert service.cvv_on_file(first.token, clock.now())
        with pytest.raises(service.CardTokenNotFound):  # another client's token
            await service.get_token(session, other, first.token)


@pytest.mark.parametrize(
    ("card", "field"),
    [
        (_card("4242424242424241"), "cardNumber"),  # Luhn
        (_card("1234567812345670"), "cardNumber"),  # Luhn-valid, no brand
        (_card(cvv="1234"), "cvv"),  # Visa: 3 digits
        (_card(AMEX, cvv="123"), "cvv"),  # Amex: 4
        (_card(month=1, year=2020), "expiryYear"),
    ],
)
async def test_tokenize_refuses_a_bad_card_naming_the_field(
    db: Database, settings: Settings, clock: FrozenClock, card: service.CardDetails, field: str
) -> None:
    async with db.transaction() as session:
        who = await make_merchant_key(session, "bad", now=clock.now())
        with pytest.raises(service.InvalidCard) as refused:
            await service.tokenize(session, who, card, settings=settings, now=clock.now())
        assert [e.field for e in refused.value.errors] == [field]
        assert card.number not in str(refused.value)


async def test_the_cvv_is_used_once_and_forgotten_after_its_ttl(
    settings: Settings, clock: FrozenClock
) -> None:
    store = vault.CvvStore(timedelta(minutes=10))
    store.put("tok_a", "123", clock.now())
    store.put("tok_b", "456", clock.now())
    assert store.take("tok_a", clock.now()) == "123"
    assert store.take("tok_a", clock.now()) is None
    assert store.take("tok_b", clock.now() + timedelta(minutes=10)) is None


@pytest.mark.parametrize(
    ("pan", "status", "code"),
    [
        (DECLINED, S.DECLINED, "05"),
        (NO_FUNDS, S.DECLINED, "51"),
        (LOST, S.DECLINED, "41"),
        (LOOKUP_FAILS, S.FAILED_3DS, None),
        (FRICTIONLESS, S.AUTHORIZED, "00"),
        (AMEX, S.AUTHORIZED, "00"),
    ],
)
async def test_each_test_card_ends_as_documented_and_only_an_approval_keeps_the_hold(
    db: Database, settings: Settings, clock: FrozenClock, pan: str, status: str, code: str | None
) -> None:
    async with db.transaction() as session, simulated_acquirer(clock) as (acquirer, _):
        who = await make_merchant_key(session, f"c{pan[-4:]}", now=clock.now())
        before = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        auth = await _authorized(session, who, acquirer, settings, clock, pan)
        after = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        assert (auth.status, auth.response_code if code else code) == (status, code)
        held = AMOUNT if status == S.AUTHORIZED else 0
        assert after.clearing[1] - before.clearing[1] == held
        assert after.clearing[0] == before.clearing[0]
        await assert_books_balance(session)


async def test_a_challenge_then_verify_authorizes_and_a_declined_one_releases(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session, simulated_acquirer(clock) as (acquirer, http):
        who = await make_merchant_key(session, "threeds", now=clock.now())
        before = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        for pan, final in ((CHALLENGE, S.AUTHORIZED), (CHALLENGE_THEN_DECLINED, S.DECLINED)):
            auth = await _authorized(session, who, acquirer, settings, clock, pan)
            assert auth.status == S.PENDING_3DS
            assert auth.acs_url is not None
            with pytest.raises(service.PaResRefused):  # a forged paRes changes nothing
                await service.verify_3ds(
                    session,
                    who,
                    auth.id,
                    "eyJ4Ijoi.forged",
                    acquirer,
                    now=clock.now(),
                    checkpoint=session.flush,
                )
            pares = await pass_challenge(http, auth.acs_url)
            done = await service.verify_3ds(
                session, who, auth.id, pares, acquirer, now=clock.now(), checkpoint=session.flush
            )
            assert (done.status, done.trans_status) == (final, "Y")
            with pytest.raises(service.WrongState):  # a state moves once
                await service.verify_3ds(
                    session, who, auth.id, pares, acquirer, now=clock.now(), checkpoint=session.flush
                )
        after = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        assert after.clearing[1] - before.clearing[1] == AMOUNT  # only the approved one holds
        await assert_books_balance(session)


async def test_a_partial_capture_pays_the_wallet_less_the_fee_and_releases_the_rest(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session, simulated_acquirer(clock) as (acquirer, _):
        who = await make_merchant_key(session, "capture", now=clock.now())
        before = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        auth = await _authorized(session, who, acquirer, settings, clock)
        with pytest.raises(service.AmountNotAllowed):
            await service.capture(
                session,
                who,
                auth.id,
                "1250.01",
                acquirer,
                settings=settings,
                now=clock.now(),
                checkpoint=session.flush,
            )
        done = await service.capture(
            session,
            who,
            auth.id,
            "1000.00",
            acquirer,
            settings=settings,
            now=clock.now(),
            checkpoint=session.flush,
        )
        assert (done.status, done.captured_amount, done.fee) == (S.CAPTURED, 1_000_00, 29_00)
        after = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        assert after.payments[0] - before.payments[0] == 1_000_00 - 29_00
        assert after.fee_revenue - before.fee_revenue == 29_00  # the card tariff: 2.9 %
        assert after.clearing[0] - before.clearing[0] == -1_000_00
        assert after.clearing[1] == before.clearing[1]  # the rest released
        with pytest.raises(service.WrongState):  # partial allowed once
            await service.capture(
                session,
                who,
                auth.id,
                "100.00",
                acquirer,
                settings=settings,
                now=clock.now(),
                checkpoint=session.flush,
            )
        with pytest.raises(service.WrongState):  # no void after a capture
            await service.void(session, who, auth.id, acquirer, now=clock.now(), checkpoint=session.flush)
        await assert_books_balance(session)


async def test_refunds_repeat_up_to_the_capture_and_no_further(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session, simulated_acquirer(clock) as (acquirer, _):
        who = await make_merchant_key(session, "refund", now=clock.now())
        auth = await _authorized(session, who, acquirer, settings, clock)
        await service.capture(
            session,
            who,
            auth.id,
            "1250.00",
            acquirer,
            settings=settings,
            now=clock.now(),
            checkpoint=session.flush,
        )
        before = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        part = await service.refund(
            session, who, auth.id, "400.00", acquirer, now=clock.now(), checkpoint=session.flush
        )
        assert (part.status, part.refunded_amount) == (S.PARTIALLY_REFUNDED, 400_00)
        with pytest.raises(service.AmountNotAllowed):  # 850.00 left
            await service.refund(
                session, who, auth.id, "850.01", acquirer, now=clock.now(), checkpoint=session.flush
            )
        # The rest exceeds what the wallet holds after the fee (2.9 %): 1213.75 - 400 = 813.75 < 850.
        with pytest.raises(service.InsufficientBalance):
            await service.refund(
                session, who, auth.id, "850.00", acquirer, now=clock.now(), checkpoint=session.flush
            )
        rest = await service.refund(
            session, who, auth.id, "813.75", acquirer, now=clock.now(), checkpoint=session.flush
        )
        assert (rest.status, rest.refunded_amount) == (S.PARTIALLY_REFUNDED, 1_213_75)
        after = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        assert after.payments[0] - before.payments[0] == -1_213_75
        assert after.clearing[0] - before.clearing[0] == 1_213_75
        await assert_books_balance(session)


async def test_void_releases_the_hold_once(db: Database, settings: Settings, clock: FrozenClock) -> None:
    async with db.transaction() as session, simulated_acquirer(clock) as (acquirer, _):
        who = await make_merchant_key(session, "void", now=clock.now())
        before = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        auth = await _authorized(session, who, acquirer, settings, clock)
        voided = await service.void(
            session, who, auth.id, acquirer, now=clock.now(), checkpoint=session.flush
        )
        assert voided.status == S.VOIDED
        with pytest.raises(service.WrongState):
            await service.void(session, who, auth.id, acquirer, now=clock.now(), checkpoint=session.flush)
        after = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        assert after == before
        await assert_books_balance(session)


async def test_an_uncaptured_authorization_expires_after_seven_days(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with db.transaction() as session, simulated_acquirer(clock) as (acquirer, _):
        who = await make_merchant_key(session, "expiry", now=clock.now())
        before = await card_balances(session, who.client_id, clock.now())  # type: ignore[arg-type]
        auth = await _authorized(session, who, acquirer, settings, clock)
        clock.advance(timedelta(days=7) - timedelta(seconds=1))
        assert not await service.expire(session, auth.id, now=clock.now())  # not yet
        clock.advance(timedelta(seconds=1))
        with pytest.raises(service.WrongState):  # no capture once its time is up
            await service.capture(
                session,
                who,
                auth.id,
                "1.00",
                acquirer,
                settings=settings,
                now=clock.now(),
                checkpoint=session.flush,
            )
        assert await service.expire(session, auth.id, now=clock.now())
        assert not await service.expire(session, auth.id, now=clock.now())  # once
        current = await service.get_authorization(session, who, auth.id)
        assert current.status == S.EXPIRED
        assert await card_balances(session, who.client_id, clock.now()) == before  # type: ignore[arg-type]
        await assert_books_balance(session)
