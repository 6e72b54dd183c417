"""Daraja's Pull Transactions API (reference §F): register a shortcode, and query what it
received in a window of the last 48 hours, 100 rows at a time by offset.

Wire facts kept here: dates ``YYYY-MM-DD HH:MM:SS`` in Kenya time; the query's ``Response`` is an
array of arrays (flattened); its keys are lower-case; ``1001`` means no transactions (the body
then shows ``[[]]``); ``amount`` is a decimal string of shillings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

REGISTER_PATH = "/pulltransactions/v1/register"
QUERY_PATH = "/pulltransactions/v1/query"
REGISTERED = "1000"
ALREADY_REGISTERED = "1001"
FOUND = "1000"
NO_TRANSACTIONS = "1001"
PAGE_SIZE = 100  # Daraja's OffSetValue steps
# The rail keeps 48 hours of transactions.
WINDOW = timedelta(hours=48)
# Pull Transactions speaks Kenya time (EAT, UTC+3, no daylight saving).
KENYA = timezone(timedelta(hours=3), "EAT")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def kenya_time(moment: datetime) -> str:
    """``moment`` as Pull Transactions' ``StartDate``/``EndDate``."""
    return moment.astimezone(KENYA).strftime(DATE_FORMAT)


def parse_kenya_time(text: str) -> datetime:
    """A ``StartDate``/``EndDate`` back into an aware datetime (``HH:MM`` allowed); ValueError if not one."""
    for form in (DATE_FORMAT, "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text.strip(), form).replace(tzinfo=KENYA)
        except ValueError:
            continue
    raise ValueError(f"not a Pull Transactions date: {text!r}")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


class PullRegisterRequest(_Wire):
    ShortCode: str
    RequestType: str = "Pull"
    NominatedNumber: str
    CallBackURL: str


class PullRegisterReply(_Wire):
    response_ref_id: str | None = Field(None, alias="ResponseRefID")
    response_status: str = Field(alias="ResponseStatus")
    short_code: str | None = Field(None, alias="ShortCode")
    response_description: str | None = Field(None, alias="ResponseDescription")


class PullQueryRequest(_Wire):
    ShortCode: str
    StartDate: str
    EndDate: str
    OffSetValue: str = "0"


class PulledTransaction(_Wire):
    transactionId: str
    trxDate: str
    msisdn: str | None = None
    sender: str | None = None
    transactiontype: str | None = None
    billreference: str | None = None
    amount: str
    organizationname: str | None = None

    @field_validator("amount")
    @classmethod
    def _decimal(cls, value: str) -> str:
        try:
            Decimal(value)
        except InvalidOperation as exc:
            raise ValueError("amount is not a number") from exc
        return value

    def amount_minor(self) -> int:
        return int((Decimal(self.amount) * 100).to_integral_value())

    def completed_at(self) -> datetime:
        text = self.trxDate.strip()
        if text.endswith("Z"):
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=KENYA)


class PullQueryReply(_Wire):
    # Not ``ResponseCode``: the client's generic check takes any ResponseCode but "0" as a refusal.
    response_ref_id: str | None = Field(None, alias="ResponseRefID")
    code: str = Field(alias="ResponseCode")
    message: str | None = Field(None, alias="ResponseMessage")
    response: Any = Field(None, alias="Response")

    def transactions(self) -> list[PulledTransaction]:
        """The rows, the nested arrays flattened (``[[]]`` and ``1001``: none)."""
        if self.code == NO_TRANSACTIONS or not isinstance(self.response, list):
            return []
        rows: list[Any] = []
        for entry in self.response:
            rows.extend(entry if isinstance(entry, list) else [entry])
        return [PulledTransaction.model_validate(row) for row in rows if isinstance(row, dict)]


class PullWindowExpired(ValueError):
    """The window asked about starts more than 48 hours ago: Daraja no longer has it."""
