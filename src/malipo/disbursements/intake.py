"""Reading a submitted batch: each item checked on its own, from a JSON body, a CSV or an XLSX file.

What callers can rely on:
- ``check_item`` applies the payouts' own rules (``payouts.check_request``: amount limits, the
  phone, the bank code and its paybill, the account number) to one item and answers an
  ``ItemRow`` ready to store, or a ``Rejected`` naming its row, field and reason. Nothing is read
  from the database and nothing is held.
- ``csv_records`` and ``xlsx_records`` read a file row by row (never all of it at once) and
  yield ``(row number, fields)`` under the names of a JSON item; a file's row numbers are the
  ones a spreadsheet shows (its header is row 1).
- A batch holds at most ``max_items`` items; one more is a ``TooManyItems`` (413), and nothing
  is kept.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from malipo.config import Settings
from malipo.core.errors import FieldError, MalipoError, PayloadTooLarge, ValidationFailed
from malipo.core.money import Money
from malipo.payouts import service as payouts
from malipo.providers.registry import MPESA

CURRENCY = payouts.CURRENCY
DESTINATION_TYPES = ("mobile", "bank")
NARRATION_MAX = 140
REFERENCE_MAX = 100
# The column names of a file, as a JSON item names its fields (compared without case, spaces,
# dashes or underscores), and the other names people give them in their spreadsheets.
_COLUMNS = {
    "destination": "destination", "phone": "destination", "phonenumber": "destination",
    "msisdn": "destination", "account": "destination", "accountnumber": "destination",
    "amount": "amount", "narration": "narration", "description": "narration",
    "reference": "reference", "destinationtype": "destinationType", "type": "destinationType",
    "bankcode": "bankCode", "bank": "bankCode",
}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TooManyItems(PayloadTooLarge):
    code = "too_many_items"
    title = "The batch has too many items"


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A checked item, ready to store."""

    row: int
    destination_type: str
    destination: str
    bank_code: str | None
    amount: int  # minor units
    narration: str | None
    reference: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    row: int
    field: str
    reason: str
    destination: str


def _text(raw: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed.for_field(name, "must be text")
    value = value.strip()
    if _CONTROL.search(value) or any(unicodedata.category(c) == "Cs" for c in value):
        raise ValidationFailed.for_field(name, "must not contain control characters")
    if len(value) > limit:
        raise ValidationFailed.for_field(name, f"must be at most {limit} characters")
    return value or None


def _destination(raw: Mapping[str, Any]) -> str:
    value = raw.get("destination")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed.for_field(
            "destination", "is required: a phone number or a bank account number"
        )
    value = value.strip()
    if len(value) > 40 or _CONTROL.search(value):
        raise ValidationFailed.for_field("destination", "is not a phone number or a bank account number")
    return value


def _amount(raw: Mapping[str, Any]) -> int:
    value = raw.get("amount")
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationFailed.for_field("amount", "is required: whole shillings, a number")
    whole, cents = divmod(Money.parse(value, CURRENCY, field="amount").amount, 100)
    if cents:
        raise ValidationFailed.for_field("amount", "must be whole shillings (M-Pesa pays no cents)")
    return whole


def _kind(raw: Mapping[str, Any], bank_code: str | None) -> str:
    value = raw.get("destinationType")
    if value is None or value == "":
        return "bank" if bank_code else "mobile"
    if not isinstance(value, str) or value.strip().lower() not in (*DESTINATION_TYPES, "phone"):
        raise ValidationFailed.for_field("destinationType", "must be mobile or bank")
    return "mobile" if value.strip().lower() == "phone" else value.strip().lower()


# payouts' field names, as a batch item names them.
_PAYOUT_FIELDS = {"phone_number": "destination", "account_number": "destination", "network_code": "bankCode"}


def check_item(raw: Mapping[str, Any], row: int, *, settings: Settings, mode: str) -> ItemRow | Rejected:
    """One item by the payouts' rules: an ItemRow, or a Rejected naming its first problem."""
    shown = str(raw.get("destination") or "")[:40]
    try:
        destination = _destination(raw)
        bank_code = _text(raw, "bankCode", 10)
        kind = _kind(raw, bank_code)
        whole = _amount(raw)
        narration = _text(raw, "narration", NARRATION_MAX)
        reference = _text(raw, "reference", REFERENCE_MAX)
        if kind == "mobile":
            request = payouts.PayoutRequest(whole, "mobile", MPESA, phone_number=destination)
        else:
            if not bank_code:
                raise ValidationFailed.for_field("bankCode", "is required for a bank destination")
            request = payouts.PayoutRequest(whole, "bank", bank_code, account_number=destination)
        checked = payouts.check_request(settings, request, mode=mode)
    except MalipoError as exc:
        problem = exc.errors[0] if exc.errors else FieldError("item", exc.detail)
        return Rejected(row, _PAYOUT_FIELDS.get(problem.field, problem.field), problem.message, shown)
    return ItemRow(
        row=row, destination_type=kind,
        destination=checked.phone if kind == "mobile" else checked.account,  # type: ignore[arg-type]
        bank_code=bank_code if kind == "bank" else None, amount=whole * 100, narration=narration,
        reference=reference,
    )  # fmt: skip


def json_records(items: Iterable[Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """A JSON body's items, numbered from 1; one that is not an object checks as empty."""
    for index, item in enumerate(items, start=1):
        yield index, item if isinstance(item, Mapping) else {}


def _header(cells: Iterable[Any]) -> list[str | None]:
    names = [_COLUMNS.get(re.sub(r"[\s_\-]", "", str(c or "")).lower().lstrip("\ufeff")) for c in cells]
    if "destination" not in names or "amount" not in names:
        raise ValidationFailed.for_field(
            "file", "the first row must name the columns: destination and amount at least "
            "(also destinationType, bankCode, narration, reference)",
        )  # fmt: skip
    return names


def _record(names: list[str | None], cells: Iterable[Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, cell in zip(names, cells, strict=False):
        if name is None or cell is None:
            continue
        if isinstance(cell, float) and cell.is_integer():
            cell = int(cell)
        record[name] = cell if isinstance(cell, str | int | float) else str(cell)
    return record


def csv_records(stream: IO[bytes]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """A CSV file's data rows (UTF-8, a BOM allowed), read line by line; blank rows skipped."""
    text = codecs.getreader("utf-8-sig")(stream, errors="strict")
    reader = csv.reader(text)
    try:
        first = next(reader, None)
        if first is None:
            raise ValidationFailed.for_field("file", "is empty")
        names = _header(first)
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            yield reader.line_num, _record(names, cells)
    except UnicodeDecodeError:
        raise ValidationFailed.for_field("file", "is not UTF-8 text") from None
    except csv.Error as exc:
        raise ValidationFailed.for_field("file", f"is not a CSV file: {exc}") from None


def xlsx_records(stream: IO[bytes]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """An Excel workbook's first sheet, read row by row (openpyxl's read-only mode)."""
    from openpyxl import load_workbook  # imported when a workbook arrives: it is slow to import

    try:
        book = load_workbook(stream, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a file that is not a workbook
        raise ValidationFailed.for_field("file", "is not an Excel (.xlsx) workbook") from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise ValidationFailed.for_field("file", "has no sheet")
        rows = sheet.iter_rows(values_only=True)
        first = next(rows, None)
        if first is None:
            raise ValidationFailed.for_field("file", "is empty")
        names = _header(first)
        for number, cells in enumerate(rows, start=2):
            if not any(c is not None and str(c).strip() for c in cells):
                continue
            yield number, _record(names, cells)
    finally:
        book.close()


def too_many(limit: int) -> TooManyItems:
    return TooManyItems(
        f"a batch holds at most {limit:,} items; split it",
        errors=[FieldError("items", f"at most {limit:,} items per batch")],
    )
