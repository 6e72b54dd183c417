"""Mobile money: collect by push, pay phones and businesses, and read the rail's callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from malipo.providers.base.common import Status
from malipo.providers.base.statement import RailTransaction


@dataclass(frozen=True, slots=True)
class PushRequest:
    """Prompt ``phone`` to pay ``amount`` (minor units) for our ``reference``. ``callback_token``
    is the secret the provider puts in the callback URL it hands the rail (the domain finds the
    collection by it). A rail whose callback address is one for the whole app (Airtel: set once
    in its portal) ignores it: it sends ``reference`` as its transaction id instead, and its
    callback names it back (``PushOutcome.our_reference``)."""

    reference: str
    amount: int
    phone: str
    callback_token: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PushAccepted:
    """The rail took the push; the outcome comes later (callback or query)."""

    provider_reference: str  # what a query asks about (Daraja: CheckoutRequestID)
    provider_request_id: str | None = None  # Daraja: MerchantRequestID


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """How a push collection ended (or stands). ``amount`` and ``party`` are what the rail says
    was paid and by whom, None where it said nothing (compare them with what was asked)."""

    status: Status
    result_code: int
    result_desc: str
    receipt: str | None = None
    provider_reference: str | None = None
    provider_request_id: str | None = None
    amount: int | None = None
    party: str | None = None
    # Why the rail gave no answer (UNKNOWN), for the logs.
    error: str | None = None
    # Our ``PushRequest.reference`` as the rail's callback names it: how a callback that comes to
    # an address shared by every request (Airtel's) finds its collection. None: the address did.
    our_reference: str | None = None
    # False: the rail's answer does not say what was paid or by whom (Airtel's callbacks, unless
    # they carry an amount), so there is nothing to compare. True: ``amount`` and ``party`` are
    # what it said, None where it said nothing (a success without an amount is held for review).
    states_payment: bool = True


@dataclass(frozen=True, slots=True)
class PhonePayment:
    """Pay ``amount`` (minor units) to ``phone``. ``our_id`` is unique per payout and sent with it
    (Daraja: OriginatorConversationID, which makes a repeat a refused duplicate)."""

    reference: str
    amount: int
    phone: str
    our_id: str
    callback_token: str


@dataclass(frozen=True, slots=True)
class BusinessPayment:
    """Pay ``amount`` (minor units) to a paybill or till, for ``account`` there (a bank account)."""

    reference: str
    amount: int
    paybill: str
    account: str
    our_id: str
    callback_token: str


@dataclass(frozen=True, slots=True)
class PayoutAccepted:
    """The rail took the payout. ``outcome``: its result, when the rail's reply already gave it
    (Airtel's disbursement often answers TS at once); None, it comes later (callback or query)."""

    provider_reference: str  # Daraja: ConversationID; Airtel: our id (what its enquiry takes)
    outcome: PayoutOutcome | None = None


@dataclass(frozen=True, slots=True)
class PayoutOutcome:
    """A payout's result. ``our_id`` and ``provider_reference`` are the ids the rail names (check
    them against the payout's); ``amount``, ``party`` and ``account`` what it says it paid."""

    status: Status
    result_code: int
    result_desc: str
    receipt: str | None = None
    our_id: str | None = None
    provider_reference: str | None = None
    amount: int | None = None
    party: str | None = None
    account: str | None = None
    # As ``PushOutcome.states_payment``: False when the rail's answer says nothing of what it paid.
    states_payment: bool = True


@dataclass(frozen=True, slots=True)
class PayoutStatusQuery:
    """Ask the rail about a payout whose result never came; the answer arrives at the rail's
    status callback. ``query_id`` is the id the rail knows it by, ``attempt`` our query count."""

    query_id: str
    attempt: int
    callback_token: str


@dataclass(frozen=True, slots=True)
class PayoutStatusAnswer:
    """The answer to a payout status query. ``completed``: the rail reports the payout done and
    ``outcome`` is its result (check its ids). ``failed``: the rail reports it failed for good
    (nothing was paid): record ``outcome`` now. ``in_progress``: the rail has the payout and has
    not decided (it may still pay): never record it as failed, ask again. Otherwise ``attempt`` is
    the query it answers (None when it cannot tell) and ``outcome`` the failure to record when no
    query is left."""

    completed: bool
    outcome: PayoutOutcome
    attempt: int | None = None
    failed: bool = False
    in_progress: bool = False


@dataclass(frozen=True, slots=True)
class ReversalRequest:
    """Reverse (refund) ``amount`` (minor units) of the collection the rail knows by ``receipt``
    (M-Pesa's receipt), for our ``reference``. ``callback_token`` is the secret in the result and
    timeout addresses the provider hands the rail (the domain finds the refund by it)."""

    receipt: str
    amount: int
    reference: str
    callback_token: str
    remarks: str = "Refund"


@dataclass(frozen=True, slots=True)
class ReversalAccepted:
    """The rail took the reversal; the result comes later at its result address. ``our_id`` is
    the id it gave the request for us (Daraja: OriginatorConversationID), ``provider_reference``
    its own (Daraja: ConversationID): the result must name them back."""

    provider_reference: str
    our_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReversalOutcome:
    """A reversal's result. ``result_code`` is the rail's code as text (Daraja's failures are
    strings: ``R000001``); ``receipt`` the reversal's own receipt, ``original_receipt`` and
    ``amount`` what the rail says it reversed (None where it said nothing)."""

    status: Status
    result_code: str
    result_desc: str
    receipt: str | None = None
    original_receipt: str | None = None
    amount: int | None = None
    our_id: str | None = None
    provider_reference: str | None = None


@dataclass(frozen=True, slots=True)
class BalanceLine:
    """One account of a rail's balance answer: its name, currency and the amounts the rail
    gives, in minor units, in the rail's order (Daraja: available, uncleared, reserved, and a
    fourth whose meaning is not published)."""

    name: str
    currency: str
    amounts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BalanceOutcome:
    """A balance answer. ``amounts``: by currency (Airtel's one figure); ``accounts``: every
    account the rail listed. ``result_code`` "0" is an answer; anything else a refusal.
    ``our_id``/``provider_reference``: the ids of the query it answers (Daraja's)."""

    amounts: dict[str, int] = field(default_factory=dict)
    accounts: tuple[BalanceLine, ...] = ()
    result_code: str = "0"
    result_desc: str = ""
    our_id: str | None = None
    provider_reference: str | None = None
    answered_at: str | None = None


@runtime_checkable
class MobileMoney(Protocol):
    """A mobile-money rail: collect by push, pay phones and businesses, and read its callbacks."""

    name: str
    # The longest account reference a business payment may carry (a bank account number).
    account_reference_max: int
    # Whether the rail can reverse (refund) a collection: ``reverse`` raises NotSupported if not.
    reverses: bool

    async def push_collection(self, request: PushRequest) -> PushAccepted:
        """Raises :class:`RailError` when the push failed (see ``not_taken``)."""
        ...

    async def query_push(self, provider_reference: str) -> PushOutcome:
        """The push's outcome; PENDING or UNKNOWN carry the outcome to record on giving up."""
        ...

    def push_query_id(self, reference: str) -> str | None:
        """The id a query asks about a push made for ``reference`` when the rail's reply was never
        stored (a timeout, a worker that died): Airtel's, our reference; None when only the reply
        tells it (Daraja's CheckoutRequestID)."""
        ...

    def no_answer(self) -> PushOutcome:
        """The outcome of a push that was made and that nobody answered."""
        ...

    def parse_push_callback(self, body: bytes) -> PushOutcome:
        """The rail's push callback body → outcome; :class:`MalformedCallback` if it is not one."""
        ...

    async def pay_phone(self, payment: PhonePayment) -> PayoutAccepted: ...

    async def pay_business(self, payment: BusinessPayment) -> PayoutAccepted: ...

    def payout_query_id(self, *, to_business: bool, our_id: str, provider_reference: str | None) -> str:
        """The id a status query about a payout asks the rail about."""
        ...

    async def query_payout(self, query: PayoutStatusQuery) -> PayoutStatusAnswer | None:
        """Ask about a payout: the answer, when the rail gives it in its reply (Airtel's enquiry);
        None when it arrives later at the rail's status callback (Daraja's)."""
        ...

    def parse_payout_result(self, body: bytes, *, to_business: bool) -> PayoutOutcome:
        """The rail's payout result callback (Airtel: its callback naming a payout's id)."""
        ...

    def parse_payout_timeout(self, body: bytes) -> PayoutOutcome: ...

    def parse_payout_status(self, body: bytes) -> PayoutStatusAnswer: ...

    def callback_reply(self) -> dict[str, Any]:
        """What the rail expects back from a callback malipo took."""
        ...

    async def reverse(self, request: ReversalRequest) -> ReversalAccepted:
        """Ask the rail to reverse a collection; the result comes to the callback. Raises
        :class:`NotSupported` on a rail without reversals, :class:`RailError` when it failed."""
        ...

    def parse_reversal_result(self, body: bytes) -> ReversalOutcome:
        """The rail's reversal result (or queue timeout) → outcome; :class:`MalformedCallback`."""
        ...

    def balance_parties(self) -> list[str]:
        """What :meth:`balance` can be asked about (Daraja: its shortcodes); [] none."""
        ...

    async def balance(
        self, party: str | None = None, callback_token: str | None = None
    ) -> BalanceOutcome | None:
        """The rail's balance of ``party``: the answer when the reply gives it (Airtel), None when
        it comes to the callback address of ``callback_token`` (Daraja); :class:`NotSupported`."""
        ...

    def parse_balance_result(self, body: bytes) -> BalanceOutcome:
        """The rail's balance result callback → outcome; :class:`MalformedCallback`."""
        ...

    async def statement(self, start: datetime, end: datetime) -> list[RailTransaction]:
        """What the rail moved between ``start`` and ``end`` (aware datetimes): raises
        :class:`NotSupported` where the rail has no statement, :class:`StatementUnavailable` where
        it refuses this one (Daraja's: older than its 48-hour window)."""
        ...
