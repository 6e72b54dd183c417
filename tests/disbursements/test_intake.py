"""Disbursement batches as files, over real HTTP: a text/csv body, a CSV or XLSX upload, the
limits on a batch, and one merchant never reaching another's batch. Each refusal is checked to
have stored nothing, and the batch paid from a file is checked against the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from malipo.disbursements.models import ItemStatus
from malipo.payouts.models import Payout
from tests.disbursements.helpers import (
    ACCOUNT,
    BATCHES,
    FEE,
    PAID,
    XLSX,
    batch,
    batch_count,
    csv_text,
    items,
    mobile,
    process,
    settled,
    submit,
    submit_csv,
    upload,
    workbook,
)
from tests.fixtures.world import StartMalipo, World, active_holds, fund_payments

REPORTS = "/api/v1/reports/disbursements/batches"
COLUMNS = ["destination", "amount", "destinationType", "bankCode", "narration", "reference"]


def fields(reply: Any) -> list[str]:
    return [e["field"] for e in reply.json()["errors"]]


@pytest.mark.parametrize(("newline", "bom"), [("\r\n", True), ("\n", False)], ids=["crlf-bom", "lf"])
async def test_a_csv_body_keeps_good_rows_in_order_and_lists_bad_ones_by_their_row_in_the_file(
    world: World, newline: str, bom: bool
) -> None:
    before = await world.balances()
    body = csv_text(
        f"{PAID},100,mobile,,Salary,EMP-1",  # row 2
        "",  # row 3: blank, skipped
        "0712345678,250,,,,",  # row 4
        "12345,100,,,,",  # row 5: not a phone number
        f"{ACCOUNT},1000,bank,01,Bonus,EMP-3",  # row 6
        ",,,,,",  # row 7: empty cells, skipped
        f"{PAID},5,,,,",  # row 8: below M-Pesa's smallest payment
        f"{ACCOUNT},100,bank,,,",  # row 9: a bank item with no bank code
        newline=newline,
        bom=bom,
    )
    reply = await submit_csv(world, body, name="March payroll")
    assert reply.status_code == 201, reply.text
    result = reply.json()
    assert (result["acceptedCount"], result["rejectedCount"], result["itemCount"]) == (3, 3, 3)
    assert result["batchName"] == "March payroll"
    assert result["status"] == "Ready"
    assert result["totalAmount"] == "1350.00"
    assert [(r["row"], r["field"]) for r in result["rejected"]] == [
        (5, "destination"), (8, "amount"), (9, "bankCode"),
    ]  # fmt: skip
    assert result["rejected"][0]["destination"] == "12345"

    rows = await items(world, result["batchId"])
    assert [str(r.id) for r in rows] == result["itemIds"], "itemIds follow the file's order"
    assert [r.row for r in rows] == [2, 4, 6]
    assert [(r.destination_type, r.destination, r.bank_code, r.amount) for r in rows] == [
        ("mobile", PAID, None, 100_00),
        ("mobile", "254712345678", None, 250_00),
        ("bank", ACCOUNT, "01", 1000_00),
    ]
    assert (rows[0].narration, rows[0].reference) == ("Salary", "EMP-1")
    assert [r.status for r in rows] == [ItemStatus.PENDING] * 3
    stored = await batch(world, result["batchId"])
    assert stored["source"] == "csv"
    assert stored["counts"] == {"pending": 3, "processing": 0, "processed": 0, "failed": 0}
    assert await world.balances() == before, "submitting holds and moves nothing"


async def test_a_csv_body_that_cannot_be_read_is_a_422_and_stores_nothing(world: World) -> None:
    no_amount = csv_text(f"{PAID},Salary", header="destination,narration")
    reply = await submit_csv(world, no_amount)
    assert reply.status_code == 422, reply.text
    assert fields(reply) == ["file"]
    assert "amount" in reply.json()["errors"][0]["message"]

    latin1 = "destination,amount,narration\r\n254711222333,100,Caf\u00e9\r\n".encode("latin-1")
    reply = await submit_csv(world, latin1)
    assert reply.status_code == 422, reply.text
    assert fields(reply) == ["file"]

    reply = await submit_csv(world, b"")
    assert reply.status_code == 422, reply.text
    assert fields(reply) == ["file"]

    good = csv_text(f"{PAID},100,,,,")
    for media in ("application/xml", "application/octet-stream", "application/json"):
        reply = await submit_csv(world, good, content_type=media)
        assert reply.status_code == 422, (media, reply.text)
        assert fields(reply) == ["Content-Type"], media

    # A rejected row's batch was begun before the file turned out unreadable: none of it stays.
    late = csv_text(f"{PAID},100,,,,", "12345,100,,,,") + b"\xff\xfe,100,,,,\r\n"
    reply = await submit_csv(world, late)
    assert reply.status_code == 422, reply.text
    assert await batch_count(world) == 0
    # The same file, readable, is stored.
    assert (await submit_csv(world, good)).status_code == 201
    assert await batch_count(world) == 1


async def test_an_upload_reads_a_csv_file(world: World) -> None:
    body = csv_text(f"{PAID},100,,,Salary,", "", "0712345678,oops,,,,", bom=True)
    reply = await upload(world, ("payroll.csv", body, "text/csv"), name="Uploaded CSV")
    assert reply.status_code == 201, reply.text
    result = reply.json()
    assert (result["acceptedCount"], result["rejectedCount"]) == (1, 1)
    assert [(r["row"], r["field"]) for r in result["rejected"]] == [(4, "amount")]
    assert result["batchName"] == "Uploaded CSV"
    (row,) = await items(world, result["batchId"])
    assert (row.row, row.destination, row.amount, row.narration) == (2, PAID, 100_00, "Salary")
    assert (await batch(world, result["batchId"]))["source"] == "csv"


async def test_an_upload_reads_an_xlsx_workbook_with_numeric_cells(world: World) -> None:
    book = workbook(
        [
            COLUMNS,
            [254712345678, 1500, None, None, "Salary", "EMP-1"],  # row 2: numbers as numeric cells
            [],  # row 3: empty, skipped
            [PAID, 1500.0, "mobile", None, None, None],  # row 4: a float that is whole
            ["12345", 100],  # row 5: not a phone number
            [1234567890, 2500, "bank", "01", "Supplier", None],  # row 6: the account as a number
            [PAID, 10.5],  # row 7: cents
        ]
    )
    reply = await upload(world, ("payroll.xlsx", book, XLSX), name="Workbook")
    assert reply.status_code == 201, reply.text
    result = reply.json()
    assert (result["acceptedCount"], result["rejectedCount"]) == (3, 2)
    assert [(r["row"], r["field"]) for r in result["rejected"]] == [(5, "destination"), (7, "amount")]
    assert result["totalAmount"] == "5500.00"
    rows = await items(world, result["batchId"])
    assert [str(r.id) for r in rows] == result["itemIds"]
    assert [(r.row, r.destination_type, r.destination, r.bank_code, r.amount) for r in rows] == [
        (2, "mobile", "254712345678", None, 1500_00),
        (4, "mobile", PAID, None, 1500_00),
        (6, "bank", "1234567890", "01", 2500_00),
    ]
    assert (rows[0].narration, rows[0].reference) == ("Salary", "EMP-1")
    assert (await batch(world, result["batchId"]))["source"] == "xlsx"


async def test_an_upload_that_is_not_a_batch_file_or_lacks_a_field_is_a_422_naming_it(world: World) -> None:
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
    for file in (
        ("statement.pdf", pdf, "application/pdf"),  # neither CSV text nor a workbook
        ("payroll.xlsx", b"destination,amount\r\n", XLSX),  # named a workbook, is not one
        ("payroll.xlsx", b"PK\x03\x04 not really a zip", XLSX),
        ("notes.txt", b"just some words\r\n", "text/plain"),  # text without the columns
    ):
        reply = await upload(world, file)
        assert reply.status_code == 422, (file[0], reply.text)
        assert fields(reply) == ["file"], file[0]

    good = ("payroll.csv", csv_text(f"{PAID},100,,,,"), "text/csv")
    missing_file = await upload(world, None)
    assert missing_file.status_code == 422, missing_file.text
    assert fields(missing_file) == ["file"]
    for name in (None, "", "   ", "x" * 101):
        reply = await upload(world, good, name=name)
        assert reply.status_code == 422, (name, reply.text)
        assert fields(reply) == ["batchName"], name
    not_a_form = await world.http.post(
        f"{BATCHES}/upload", json={"batchName": "JSON"}, headers=world.a.headers
    )
    assert not_a_form.status_code == 422, not_a_form.text
    assert await batch_count(world) == 0


async def test_a_batch_of_more_items_than_allowed_is_a_413_and_stores_nothing(
    start_malipo: StartMalipo,
) -> None:
    world = await start_malipo(disbursement_max_items=3)
    four = [f"{PAID},{100 + n},,,," for n in range(4)]
    for reply in (
        await submit(world, [mobile(PAID, 100 + n) for n in range(4)]),
        await submit_csv(world, csv_text(*four)),
        await submit_csv(world, csv_text(*four[:3], "12345,100,,,,")),  # a rejected row counts too
        await upload(
            world, ("payroll.xlsx", workbook([COLUMNS, *[[PAID, 100 + n] for n in range(4)]]), XLSX)
        ),
    ):
        assert reply.status_code == 413, reply.text
        assert reply.json()["code"] == "too_many_items"
        assert fields(reply) == ["items"]
    assert await batch_count(world) == 0

    three = await submit_csv(world, csv_text(*four[:3], "", ""))  # blank rows are not items
    assert three.status_code == 201, three.text
    assert three.json()["acceptedCount"] == 3
    assert await batch_count(world) == 1


async def test_a_body_over_the_batch_limit_is_a_413_and_stores_nothing(start_malipo: StartMalipo) -> None:
    world = await start_malipo(disbursement_max_body_bytes=2048)
    rows = [f"{PAID},{100 + n},mobile,,Salary for the month,EMP-{n:05d}" for n in range(60)]
    big = csv_text(*rows)
    assert len(big) > 2048

    declared = await submit_csv(world, big)
    assert declared.status_code == 413, declared.text
    assert declared.json()["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: found too large while read
        for start in range(0, len(big), 512):
            yield big[start : start + 512]

    streamed = await world.http.post(
        f"{BATCHES}/csv", params={"batchName": "Streamed"}, content=chunks(),
        headers=world.a.headers | {"Content-Type": "text/csv"},
    )  # fmt: skip
    assert streamed.status_code == 413, streamed.text

    uploaded = await upload(world, ("payroll.csv", big, "text/csv"))
    assert uploaded.status_code == 413, uploaded.text
    as_json = await submit(
        world, [mobile(PAID, 100 + n, narration="Salary for the month") for n in range(60)]
    )
    assert as_json.status_code == 413, as_json.text
    assert await batch_count(world) == 0

    small = await submit_csv(world, csv_text(*rows[:5]))
    assert small.status_code == 201, small.text


async def test_a_batch_whose_every_item_is_rejected_is_a_422_listing_them_and_stores_nothing(
    world: World,
) -> None:
    reply = await submit(world, [mobile("12345", 100), mobile(PAID, 5), mobile(PAID, "1.50")])
    assert reply.status_code == 422, reply.text
    assert fields(reply) == ["items.1.destination", "items.2.amount", "items.3.amount"]

    reply = await submit_csv(world, csv_text("12345,100,,,,", "", f"{PAID},abc,,,,"))
    assert reply.status_code == 422, reply.text
    assert fields(reply) == ["items.2.destination", "items.4.amount"]

    book = workbook([COLUMNS, [PAID, 0], [ACCOUNT, 100, "bank"]])
    reply = await upload(world, ("payroll.xlsx", book, XLSX))
    assert reply.status_code == 422, reply.text
    assert fields(reply) == ["items.2.amount", "items.3.bankCode"]

    only_header = await submit_csv(world, csv_text())
    assert only_header.status_code == 422, only_header.text
    assert fields(only_header) == ["items"]
    assert await batch_count(world) == 0


async def test_a_csv_batch_is_paid_to_the_normalised_destinations_and_ties_to_the_ledger(
    world: World,
) -> None:
    await fund_payments(world, 10_000_00)
    before = await world.balances()
    body = csv_text(
        "0712345678,100,,,Salary,EMP-1",
        "+254722000111,200,phone,,,",
        "712345679,300,mobile,,,",
        f"{ACCOUNT},1000,bank,01,Supplier,INV-9",
        bom=True,
    )
    submitted = (await submit_csv(world, body)).json()
    assert submitted["acceptedCount"] == 4, submitted
    assert (await process(world, submitted["batchId"])).status_code == 200

    done = await settled(world, submitted["batchId"])
    assert done["status"] == "Completed"
    assert done["counts"] == {"pending": 0, "processing": 0, "processed": 4, "failed": 0}
    assert (done["paidAmount"], done["fees"]) == ("1600.00", "60.00")
    rows = await items(world, submitted["batchId"])
    assert [(r.destination_type, r.destination, r.bank_code) for r in rows] == [
        ("mobile", "254712345678", None),
        ("mobile", "254722000111", None),
        ("mobile", "254712345679", None),
        ("bank", ACCOUNT, "01"),
    ]
    assert [r.status for r in rows] == [ItemStatus.PROCESSED] * 4
    assert [r.paid_amount for r in rows] == [100_00, 200_00, 300_00, 1000_00]
    async with world.db.transaction() as session:
        payouts = {p.id: p for p in (await session.scalars(select(Payout))).all()}
    assert len(payouts) == 4
    assert {r.payout_id for r in rows} == set(payouts)

    after = await world.balances()
    assert after.payments == (before.payments[0] - 1600_00, 0)
    assert after.service == (before.service[0] - 4 * FEE, 0)
    assert after.fee_revenue == before.fee_revenue + 4 * FEE
    assert await active_holds(world) == 0
    await world.verify_ledger()
    report = await world.http.get(f"{REPORTS}/{submitted['batchId']}/reconciliation", headers=world.a.headers)
    assert report.status_code == 200, report.text
    assert report.json()["totals"]["ties"] is True


async def test_another_merchant_can_neither_see_nor_touch_a_batch(world: World) -> None:
    await fund_payments(world, 10_000_00)
    await fund_payments(world, 10_000_00, merchant=world.b)
    a_batch = (await submit_csv(world, csv_text(f"{PAID},100,,,,", "12345,100,,,,"))).json()
    batch_id = a_batch["batchId"]
    b_batch = (await submit(world, [mobile(PAID, 100)], headers=world.b.headers)).json()
    before = (await world.balances(), await world.balances(world.b))

    b = world.b.headers
    for method, path, kwargs in (
        ("GET", f"{BATCHES}/{batch_id}", {}),
        ("GET", f"{BATCHES}/{batch_id}/items", {}),
        ("POST", f"{BATCHES}/{batch_id}/process", {"headers": b | {"Idempotency-Key": "b-process"}}),
        ("POST", f"{BATCHES}/{batch_id}/approve", {}),
        ("POST", f"{BATCHES}/{batch_id}/retry",
         {"json": {"batchId": batch_id, "itemIds": a_batch["itemIds"]}}),
        ("GET", f"{REPORTS}/{batch_id}", {}),
        ("GET", f"{REPORTS}/{batch_id}/reconciliation", {}),
    ):  # fmt: skip
        kwargs.setdefault("headers", b)
        reply = await world.http.request(method, path, **kwargs)
        assert reply.status_code == 404, (method, path, reply.text)
        assert reply.json()["code"] == "batch_not_found", (method, path)

    listed = await world.http.get(REPORTS, headers=b)
    assert listed.status_code == 200, listed.text
    assert [x["batchId"] for x in listed.json()["batches"]] == [b_batch["batchId"]]
    own = await world.http.get(REPORTS, headers=world.a.headers)
    assert [x["batchId"] for x in own.json()["batches"]] == [batch_id]

    stored = await batch(world, batch_id)
    assert stored["status"] == "Ready"
    assert stored["counts"]["pending"] == 1, "B's process touched none of A's items"
    assert (await world.balances(), await world.balances(world.b)) == before
    assert await world.count(Payout) == 0


async def test_a_file_sent_again_with_the_same_idempotency_key_is_one_batch(world: World) -> None:
    body = csv_text(f"{PAID},100,,,,", "0712345678,200,,,,")
    csv_key = world.a.headers | {"Idempotency-Key": "csv-payroll-1"}
    first = await submit_csv(world, body, headers=csv_key)
    again = await submit_csv(world, body, headers=csv_key)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await submit_csv(world, csv_text(f"{PAID},999,,,,"), headers=csv_key)
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_key_reused"

    # Each sending of a form has a new multipart boundary: the same file is still the same request.
    upload_key = world.a.headers | {"Idempotency-Key": "upload-payroll-1"}
    book = workbook([COLUMNS, [254712345678, 1500]])
    first = await upload(world, ("payroll.xlsx", book, XLSX), headers=upload_key)
    again = await upload(world, ("payroll.xlsx", book, XLSX), headers=upload_key)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["batchId"] == first.json()["batchId"]
    other = await upload(world, ("payroll.xlsx", book, XLSX), name="Another name", headers=upload_key)
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_key_reused"
    assert await batch_count(world) == 2
