"""The banks registry: banks and mobile-money operators by 3-digit code, seeded

- ``banks``: one row per bank or mobile-money operator, keyed by ``code`` (3 digits: 0xx Sierra Leone
  banks, 1xx Kenyan banks as 1 + Pay Hero's bank network code, 9xx mobile-money operators).
- Seeded with the rows of ``malipo.banks.seed`` as they were at this revision (a frozen copy: a
  migration never imports the app's models), all active.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 02:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (code, name, swift, country, kind, rail, payhero_code)
SEED: tuple[tuple[str, str, str | None, str, str, str, str | None], ...] = (
    ("001", "Rokel Commercial Bank", "RCBKSLFR", "SL", "bank", "bankrail", None),
    ("002", "Sierra Leone Commercial Bank", "SLCBSLFR", "SL", "bank", "bankrail", None),
    ("003", "Union Trust Bank", "UTBSSLFR", "SL", "bank", "bankrail", None),
    ("004", "Ecobank Sierra Leone", "ECOCSLFR", "SL", "bank", "bankrail", None),
    ("005", "Guaranty Trust Bank (SL)", "GTBISLFR", "SL", "bank", "bankrail", None),
    ("006", "Standard Chartered Bank Sierra Leone", "SCBLSLFR", "SL", "bank", "bankrail", None),
    ("007", "United Bank for Africa (SL)", "UNAFSLFR", "SL", "bank", "bankrail", None),
    ("008", "Vista Bank (SL), formerly First International Bank", "FSTISLFR", "SL", "bank", "bankrail", None),
    ("009", "Zenith Bank (SL)", "ZESLSLFR", "SL", "bank", "bankrail", None),
    ("010", "Access Bank Sierra Leone", "ABSFSLFR", "SL", "bank", "bankrail", None),
    ("011", "Skye Bank (SL)", "SKYESLFR", "SL", "bank", "bankrail", None),
    ("012", "Keystone Bank (SL)", "PHBXSLFR", "SL", "bank", "bankrail", None),
    ("013", "Commerce and Mortgage Bank (SL)", "HFCMSLFR", "SL", "bank", "bankrail", None),
    ("101", "KCB", "KCBLKENX", "KE", "bank", "mpesa_b2b", "01"),
    ("102", "Standard Chartered Bank KE", "SCBLKENX", "KE", "bank", "mpesa_b2b", "02"),
    ("103", "Absa Bank", "BARCKENX", "KE", "bank", "mpesa_b2b", "03"),
    ("107", "NCBA", "CBAFKENX", "KE", "bank", "mpesa_b2b", "07"),
    ("110", "Prime Bank", "PRIMKENA", "KE", "bank", "mpesa_b2b", "10"),
    ("111", "Cooperative Bank", "KCOOKENA", "KE", "bank", "mpesa_b2b", "11"),
    ("112", "National Bank", None, "KE", "bank", "mpesa_b2b", "12"),
    ("114", "M-Oriental", None, "KE", "bank", "mpesa_b2b", "14"),
    ("116", "Citibank", "CITIKENA", "KE", "bank", "mpesa_b2b", "16"),
    ("118", "Middle East Bank", None, "KE", "bank", "mpesa_b2b", "18"),
    ("119", "Bank of Africa", "AFRIKENX", "KE", "bank", "mpesa_b2b", "19"),
    ("123", "Consolidated Bank", None, "KE", "bank", "mpesa_b2b", "23"),
    ("125", "Credit Bank", None, "KE", "bank", "mpesa_b2b", "25"),
    ("131", "Stanbic Bank", "SBICKENX", "KE", "bank", "mpesa_b2b", "31"),
    ("135", "ABC Bank", "ABCLKENA", "KE", "bank", "mpesa_b2b", "35"),
    ("136", "Choice Microfinance Bank", None, "KE", "bank", "mpesa_b2b", "36"),
    ("143", "Eco Bank", "ECOCKENA", "KE", "bank", "mpesa_b2b", "43"),
    ("150", "Paramount Universal Bank", None, "KE", "bank", "mpesa_b2b", "50"),
    ("151", "Kingdom Bank", None, "KE", "bank", "mpesa_b2b", "51"),
    ("153", "Guaranty Bank", None, "KE", "bank", "mpesa_b2b", "53"),
    ("154", "Victoria Commercial Bank", None, "KE", "bank", "mpesa_b2b", "54"),
    ("155", "Guardian Bank", "GUARKENA", "KE", "bank", "mpesa_b2b", "55"),
    ("157", "I&M Bank", "IMBLKENA", "KE", "bank", "mpesa_b2b", "57"),
    ("161", "HFC Bank", "HFCOKENA", "KE", "bank", "mpesa_b2b", "61"),
    ("163", "DTB", "DTKEKENA", "KE", "bank", "mpesa_b2b", "63"),
    ("165", "Mayfair Bank", None, "KE", "bank", "mpesa_b2b", "65"),
    ("166", "Sidian Bank", "SIDNKENA", "KE", "bank", "mpesa_b2b", "66"),
    ("168", "Equity Bank", "EQBLKENA", "KE", "bank", "mpesa_b2b", "68"),
    ("170", "Family Bank", "FABLKENA", "KE", "bank", "mpesa_b2b", "70"),
    ("172", "Gulf African Bank", "GAFRKENA", "KE", "bank", "mpesa_b2b", "72"),
    ("174", "First Community Bank", None, "KE", "bank", "mpesa_b2b", "74"),
    ("175", "DIB Bank", None, "KE", "bank", "mpesa_b2b", "75"),
    ("176", "UBA", None, "KE", "bank", "mpesa_b2b", "76"),
    ("178", "KWFT Bank", None, "KE", "bank", "mpesa_b2b", "78"),
    ("189", "Stima Sacco", None, "KE", "bank", "mpesa_b2b", "89"),
    ("197", "Telcom Kenya", None, "KE", "bank", "mpesa_b2b", "97"),
    ("901", "Orange Money SL", None, "SL", "mobile_money", "mobile_money", None),
    ("902", "Africell Money SL", None, "SL", "mobile_money", "mobile_money", None),
    ("912", "M-Pesa KE", None, "KE", "mobile_money", "mobile_money", None),
    ("913", "Airtel Money KE", None, "KE", "mobile_money", "mobile_money", None),
    ("917", "T-Kash KE", None, "KE", "mobile_money", "mobile_money", None),
)


def upgrade() -> None:
    banks = op.create_table(
        "banks",
        sa.Column("code", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("swift", sa.String(length=11), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("rail", sa.String(length=12), nullable=False),
        sa.Column("payhero_code", sa.String(length=2), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_banks")),
        sa.UniqueConstraint("payhero_code", name=op.f("uq_banks_payhero_code")),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        banks,
        [
            {
                "code": code, "name": name, "swift": swift, "country": country, "kind": kind, "rail": rail,
                "payhero_code": payhero_code, "active": True, "created_at": now, "updated_at": now,
            }
            for code, name, swift, country, kind, rail, payhero_code in SEED
        ],
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("banks")
