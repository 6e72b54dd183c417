"""The bank rail's wire protocol: a small JSON form of an ISO 20022 pacs.008 / pacs.002 exchange.

``POST /v1/credit-transfers`` carries one FI-to-FI customer credit transfer (pacs.008: a group
header and one ``CdtTrfTxInf``) plus ``StsCallbackUrl``, where the rail later POSTs the payment
status report (pacs.002: a group header and one ``TxInfAndSts``). The synchronous answer to the
POST, the answer to ``GET /v1/credit-transfers/{EndToEndId}`` and the callback are all the same
pacs.002 form. Element names are ISO 20022's; docs/bank-rail.md has a full example of each.

Every field is bounded as ISO 20022 bounds it (``Max35Text`` ids, ``Max140Text`` names and
remittance, account ids of at most 34 characters, a 4-character status reason code, amounts as
decimal strings with at most 5 fraction digits); a body outside these bounds is refused. Unknown
fields are ignored, so a rail may send more than malipo reads. Amounts are major units at the
wire; :meth:`Amount.minor` and :meth:`Amount.of` convert at this edge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from malipo.core.errors import InvalidAmount
from malipo.core.money import CURRENCY_EXPONENTS, Money

__all__ = [
    "CREDIT_TRANSFERS_PATH",
    "FINAL_STATUSES",
    "PACS_008",
    "TX_STATUSES",
    "Account",
    "AccountId",
    "Agent",
    "Amount",
    "CreditTransferRequest",
    "CreditTransferTransaction",
    "ErrorBody",
    "ErrorDetail",
    "GroupHeader",
    "OriginalGroupInfo",
    "OriginalTransactionReference",
    "Party",
    "PaymentId",
    "RemittanceInfo",
    "SettlementInfo",
    "StatusReasonInfo",
    "StatusReport",
    "TransactionStatus",
    "TxSts",
    "iso_now",
]

CREDIT_TRANSFERS_PATH = "/v1/credit-transfers"
# The message a status report answers (OrgnlMsgNmId).
PACS_008 = "pacs.008.001.08"

# ISO 20022 ExternalPaymentTransactionStatus1Code values the rail uses: accepted technical
# validation, accepted customer profile, accepted settlement in process, pending, settled, rejected.
TxSts = Literal["ACTC", "ACCP", "ACSP", "PDNG", "ACSC", "RJCT"]
TX_STATUSES: tuple[str, ...] = ("ACTC", "ACCP", "ACSP", "PDNG", "ACSC", "RJCT")
FINAL_STATUSES = frozenset({"ACSC", "RJCT"})

Max35Text = Annotated[str, StringConstraints(min_length=1, max_length=35)]
Max105Text = Annotated[str, StringConstraints(min_length=1, max_length=105)]
Max140Text = Annotated[str, StringConstraints(min_length=1, max_length=140)]
# An account's identification (ISO's IBAN is at most 34 characters, and so is ours).
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=34, pattern=r"^[A-Za-z0-9 ./-]+$")]
# ExternalStatusReason1Code: 1 to 4 characters.
ReasonCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,4}$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# ActiveCurrencyAndAmount: up to 18 digits of which at most 5 after the point; no sign.
DecimalAmount = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,13}(\.[0-9]{1,5})?$")]
# Our status callback URL; a real rail may refuse longer ones.
CallbackUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s]+$")]


def iso_now(now: datetime | None = None) -> datetime:
    """A CreDtTm: now in UTC, to the second."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------------- shared elements


class Amount(_Wire):
    """``IntrBkSttlmAmt``: ``{"Ccy": "SLE", "Amt": "100.00"}``. The amount must be above zero and
    have no more decimal places than the currency (malipo's table of ISO 4217 currencies)."""

    Ccy: CurrencyCode
    Amt: DecimalAmount

    @model_validator(mode="after")
    def _a_real_amount(self) -> Amount:
        if self.Ccy not in CURRENCY_EXPONENTS:
            raise ValueError(f"unknown currency {self.Ccy}")
        try:
            Money.parse(self.Amt, self.Ccy, field="Amt")
        except InvalidAmount as exc:
            raise ValueError(exc.detail) from None
        return self

    def minor(self) -> int:
        """The amount in minor units of ``Ccy``."""
        return Money.parse(self.Amt, self.Ccy).amount

    @classmethod
    def of(cls, minor: int, currency: str) -> Amount:
        """``of(10050, "SLE")`` → ``{"Ccy": "SLE", "Amt": "100.50"}`` (the currency's places)."""
        money = Money.of_minor(minor, currency)
        return cls(Ccy=money.currency, Amt=money.format())


class _OtherId(_Wire):
    Id: AccountId


class _AccountIdentification(_Wire):
    Othr: _OtherId


class Account(_Wire):
    """``{"Id": {"Othr": {"Id": "0123456789"}}}``: an account by its number at its bank."""

    Id: _AccountIdentification

    @property
    def number(self) -> str:
        return self.Id.Othr.Id

    @classmethod
    def numbered(cls, number: str) -> Account:
        return cls(Id=_AccountIdentification(Othr=_OtherId(Id=number)))


class _ClearingMember(_Wire):
    MmbId: Max35Text


class _FinancialInstitution(_Wire):
    ClrSysMmbId: _ClearingMember


class Agent(_Wire):
    """``{"FinInstnId": {"ClrSysMmbId": {"MmbId": "003"}}}``: a bank by its clearing code."""

    FinInstnId: _FinancialInstitution

    @property
    def code(self) -> str:
        return self.FinInstnId.ClrSysMmbId.MmbId

    @classmethod
    def coded(cls, code: str) -> Agent:
        return cls(FinInstnId=_FinancialInstitution(ClrSysMmbId=_ClearingMember(MmbId=code)))


class Party(_Wire):
    """A debtor or creditor by name (ISO allows a party without one)."""

    Nm: Max140Text | None = None


# --------------------------------------------------------------------------- pacs.008


class SettlementInfo(_Wire):
    """``SttlmInf``: settled through the clearing system."""

    SttlmMtd: Literal["CLRG"] = "CLRG"


class GroupHeader(_Wire):
    """``GrpHdr``: the message's own id and creation time; a pacs.008 also says it holds one
    transaction settled through the clearing system."""

    MsgId: Max35Text
    CreDtTm: datetime
    NbOfTxs: Literal["1"] | None = None
    SttlmInf: SettlementInfo | None = None


class PaymentId(_Wire):
    """``PmtId``: the debtor's ``EndToEndId`` (the rail's duplicate key) and the ``TxId``."""

    EndToEndId: Max35Text
    TxId: Max35Text


class RemittanceInfo(_Wire):
    """``RmtInf``: what the creditor sees (ISO's ``Ustrd`` repeats; here it is one text)."""

    Ustrd: Max140Text


class CreditTransferTransaction(_Wire):
    """``CdtTrfTxInf``: one credit transfer."""

    PmtId: PaymentId
    IntrBkSttlmAmt: Amount
    Dbtr: Party
    DbtrAcct: Account
    CdtrAgt: Agent
    Cdtr: Party = Field(default_factory=Party)
    CdtrAcct: Account
    RmtInf: RemittanceInfo | None = None


class CreditTransferRequest(_Wire):
    """The body of ``POST /v1/credit-transfers``: a pacs.008 with one transaction, and where the
    rail is to POST its status report (``StsCallbackUrl``, not an ISO element)."""

    GrpHdr: GroupHeader
    CdtTrfTxInf: CreditTransferTransaction
    StsCallbackUrl: CallbackUrl

    @model_validator(mode="after")
    def _one_cleared_transaction(self) -> CreditTransferRequest:
        if self.GrpHdr.NbOfTxs != "1" or self.GrpHdr.SttlmInf is None:
            raise ValueError("GrpHdr must say NbOfTxs '1' and SttlmInf.SttlmMtd 'CLRG'")
        return self


# --------------------------------------------------------------------------- pacs.002


class _Reason(_Wire):
    Cd: ReasonCode


class StatusReasonInfo(_Wire):
    """``StsRsnInf``: why (an ISO ExternalStatusReason1Code) and, optionally, in words."""

    Rsn: _Reason
    AddtlInf: Max105Text | None = None


class OriginalTransactionReference(_Wire):
    """``OrgnlTxRef``: what the rail says the transfer was (compare it with what was sent)."""

    IntrBkSttlmAmt: Amount | None = None
    CdtrAcct: Account | None = None
    CdtrAgt: Agent | None = None


class TransactionStatus(_Wire):
    """``TxInfAndSts``: one transfer's status. ``AcctSvcrRef`` is the rail's own reference."""

    OrgnlEndToEndId: Max35Text
    OrgnlTxId: Max35Text | None = None
    AcctSvcrRef: Max35Text | None = None
    TxSts: TxSts
    StsRsnInf: StatusReasonInfo | None = None
    AccptncDtTm: datetime | None = None
    OrgnlTxRef: OriginalTransactionReference | None = None


class OriginalGroupInfo(_Wire):
    """``OrgnlGrpInfAndSts``: which message the report answers."""

    OrgnlMsgId: Max35Text
    OrgnlMsgNmId: Max35Text = PACS_008


class StatusReport(_Wire):
    """A pacs.002 with one transaction status: the POST's answer, the query's, the callback's."""

    GrpHdr: GroupHeader
    OrgnlGrpInfAndSts: OriginalGroupInfo | None = None
    TxInfAndSts: TransactionStatus


# --------------------------------------------------------------------------- errors


class ErrorDetail(_Wire):
    """Why a request was refused before the rail took it: a code (``UNAUTHORIZED``,
    ``INVALID_REQUEST``, ``NOT_FOUND``), a message, and the fields at fault."""

    Cd: Max35Text
    Desc: Annotated[str, StringConstraints(max_length=500)] = ""
    Flds: list[Annotated[str, StringConstraints(max_length=200)]] = Field(default_factory=list, max_length=20)


class ErrorBody(_Wire):
    """The body of a 4xx that is not a status report: ``{"Err": {"Cd", "Desc", "Flds"}}``."""

    Err: ErrorDetail
