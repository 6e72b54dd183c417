"""CSV exports (wallet statements, reports, reconciliation): every one writes its cells, rows and
reply the same way, here.

Rows end in CRLF (RFC 4180); a header row comes first, written as given. Every other cell goes
through :func:`cell`, so no cell reaches a spreadsheet as a formula. The reply is a download:
``text/csv; charset=utf-8`` with ``Content-Disposition: attachment; filename="..."``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence

from fastapi import Response
from fastapi.responses import StreamingResponse

#: A cell starting with one of these is a formula to spreadsheet programs (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE = "text/csv; charset=utf-8"


def cell(value: object) -> str:
    """The value as a CSV cell: ``None`` is empty, anything else its ``str()``. A cell starting with
    one of :data:`FORMULA_STARTS` gets a leading ``'`` so spreadsheets show it as text; that
    includes negative numbers (``-5.00`` becomes ``'-5.00``)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """The header row, then per row its values under the header's names, each through :func:`cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(cell(row[column]) for column in header)
    return buffer.getvalue()


async def csv_chunks(
    header: Sequence[str], rows: AsyncIterable[Mapping[str, object]], *, flush_bytes: int
) -> AsyncIterator[bytes]:
    """What :func:`csv_text` writes, UTF-8 encoded, as it is read: a chunk each time at least
    ``flush_bytes`` characters are gathered, then the rest (the last chunk may be empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    async for row in rows:
        writer.writerow(cell(row[column]) for column in header)
        if buffer.tell() >= flush_bytes:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _download(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def csv_response(text: str, filename: str) -> Response:
    """``text`` (from :func:`csv_text`) as a download named ``filename`` (``.csv`` included)."""
    return Response(text, media_type=MEDIA_TYPE, headers=_download(filename))


def csv_stream(chunks: AsyncIterator[bytes], filename: str) -> StreamingResponse:
    """``chunks`` (from :func:`csv_chunks`) streamed as a download named ``filename``."""
    return StreamingResponse(chunks, media_type=MEDIA_TYPE, headers=_download(filename))
