"""CSV exports: no cell reaches a spreadsheet as a formula, and quoting keeps every cell whole."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest

from malipo.http.csvfiles import cell, csv_chunks, csv_response, csv_stream, csv_text


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("http://x","y")', "+254712345678", "-1+1", "@SUM(A1:A2)", "\tcmd", "\r=1"],
)
def test_a_cell_a_spreadsheet_would_run_is_shown_as_text(value: str) -> None:
    assert cell(value) == "'" + value


def test_a_negative_amount_is_guarded_like_any_minus_sign() -> None:
    # The three exports always prefixed it; a spreadsheet still reads '-5.00 as the text -5.00.
    assert cell("-5.00") == "'-5.00"
    assert cell(-5) == "'-5"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Amina Wanjiku", "Amina Wanjiku"),
        ("5.00", "5.00"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (3, "3"),
        (True, "True"),
    ],
)
def test_plain_text_and_numbers_are_untouched(value: object, expected: str) -> None:
    assert cell(value) == expected


def test_commas_quotes_and_newlines_are_quoted_and_read_back_whole() -> None:
    rows = [
        {"name": "Doe, Jane", "note": 'she said "hi"', "amount": "5.00", "extra": "ignored"},
        {"name": "two\nlines", "note": None, "amount": "-5.00", "extra": "x"},
    ]
    text = csv_text(["name", "note", "amount"], rows)
    assert text == 'name,note,amount\r\n"Doe, Jane","she said ""hi""",5.00\r\n"two\nlines",,\'-5.00\r\n'
    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "note", "amount"],
        ["Doe, Jane", 'she said "hi"', "5.00"],
        ["two\nlines", "", "'-5.00"],
    ]


def test_a_guarded_cell_that_needs_quoting_is_quoted_too() -> None:
    assert csv_text(["f"], [{"f": '=HYPERLINK("x")'}]) == 'f\r\n"\'=HYPERLINK(""x"")"\r\n'


async def _rows(n: int) -> AsyncIterator[dict[str, object]]:
    for i in range(n):
        yield {"reference": f"R{i:04d}", "description": "=cmd" if i % 2 else "top-up, M-Pesa"}


async def test_the_streamed_csv_is_the_same_text_in_chunks() -> None:
    header = ["reference", "description"]
    chunks = [c async for c in csv_chunks(header, _rows(500), flush_bytes=1000)]
    assert len(chunks) > 2  # streamed, not gathered
    expected = csv_text(header, [r async for r in _rows(500)])
    assert b"".join(chunks).decode() == expected


async def test_with_no_rows_only_the_header_is_sent() -> None:
    chunks = [c async for c in csv_chunks(["a", "b"], _rows(0), flush_bytes=1000)]
    assert b"".join(chunks) == b"a,b\r\n"


def test_the_reply_is_a_utf8_csv_download_with_its_name() -> None:
    reply = csv_response("a\r\nNairobi é\r\n", "report-2026-03-01.csv")
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"] == 'attachment; filename="report-2026-03-01.csv"'
    assert reply.body == "a\r\nNairobi é\r\n".encode()


def test_the_streamed_reply_is_the_same_download() -> None:
    reply = csv_stream(csv_chunks(["a"], _rows(0), flush_bytes=10), "statement-start-now.csv")
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"] == 'attachment; filename="statement-start-now.csv"'
