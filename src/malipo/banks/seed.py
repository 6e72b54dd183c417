"""The registry's first rows: the banks and mobile-money operators malipo knows at install.

Migration ``0010_banks`` inserts a frozen copy of these rows; a later change to this list needs a
migration of its own (``tests/banks/test_seed.py`` checks that a migrated database holds exactly
these rows). Every seeded row starts active.

How the 3-digit codes were chosen (an account number's first 3 digits are its bank's code):

- ``001`` to ``099`` Sierra Leone banks, the Bank of Sierra Leone's commercial banks numbered from
  ``001`` in the order below (the two largest, the state-owned ones, first). First International
  Bank is Vista Bank (SL) since Vista Group bought it (same BIC, ``FSTISLFR``): one row, ``008``.
  Keystone Bank (SL) was Bank PHB (SL) (BIC ``PHBXSLFR``). Rail: ``bankrail`` (ISO 20022).
- ``100`` to ``199`` Kenyan banks: ``1`` + Pay Hero's 2-digit bank network code (``payouts.banks``
  ``BANK_CODES``; KCB ``01`` is ``101``, Equity ``68`` is ``168``), which is kept as
  ``payhero_code``. Rail: ``mpesa_b2b`` (M-Pesa B2B to the bank's paybill).
- ``900`` to ``999`` mobile-money operators (kind ``mobile_money``), never a bank's code:
  ``90x`` Sierra Leone (``901`` Orange Money, ``902`` Africell Money), ``91x`` Kenya, ``91`` + the
  last digit of the network code Pay Hero's API uses for it (M-Pesa ``63902`` is ``912``, Airtel
  Money ``63903`` is ``913``, T-Kash ``63907`` is ``917``).

SWIFT/BIC codes (8 characters, head office) are given only where public directories agree on
them; the others are null until an operator sets them (``PATCH /api/v1/banks/{code}``).
"""

from __future__ import annotations

from dataclasses import dataclass

from malipo.banks.models import BankKind, BankRail, Country


@dataclass(frozen=True, slots=True)
class SeedBank:
    code: str
    name: str
    swift: str | None
    country: Country
    kind: BankKind
    rail: BankRail
    payhero_code: str | None = None


def _sl_bank(code: str, name: str, swift: str | None) -> SeedBank:
    return SeedBank(code, name, swift, Country.SL, BankKind.BANK, BankRail.BANKRAIL)


def _ke_bank(payhero_code: str, name: str, swift: str | None = None) -> SeedBank:
    return SeedBank(
        "1" + payhero_code, name, swift, Country.KE, BankKind.BANK, BankRail.MPESA_B2B, payhero_code
    )


def _wallet(code: str, name: str, country: Country) -> SeedBank:
    return SeedBank(code, name, None, country, BankKind.MOBILE_MONEY, BankRail.MOBILE_MONEY)


SIERRA_LEONE_BANKS = (
    _sl_bank("001", "Rokel Commercial Bank", "RCBKSLFR"),
    _sl_bank("002", "Sierra Leone Commercial Bank", "SLCBSLFR"),
    _sl_bank("003", "Union Trust Bank", "UTBSSLFR"),
    _sl_bank("004", "Ecobank Sierra Leone", "ECOCSLFR"),
    _sl_bank("005", "Guaranty Trust Bank (SL)", "GTBISLFR"),
    _sl_bank("006", "Standard Chartered Bank Sierra Leone", "SCBLSLFR"),
    _sl_bank("007", "United Bank for Africa (SL)", "UNAFSLFR"),
    _sl_bank("008", "Vista Bank (SL), formerly First International Bank", "FSTISLFR"),
    _sl_bank("009", "Zenith Bank (SL)", "ZESLSLFR"),
    _sl_bank("010", "Access Bank Sierra Leone", "ABSFSLFR"),
    _sl_bank("011", "Skye Bank (SL)", "SKYESLFR"),
    _sl_bank("012", "Keystone Bank (SL)", "PHBXSLFR"),
    _sl_bank("013", "Commerce and Mortgage Bank (SL)", "HFCMSLFR"),
)

# Names and codes as in Pay Hero's table (malipo.payouts.banks.BANK_CODES).
KENYAN_BANKS = (
    _ke_bank("01", "KCB", "KCBLKENX"),
    _ke_bank("02", "Standard Chartered Bank KE", "SCBLKENX"),
    _ke_bank("03", "Absa Bank", "BARCKENX"),
    _ke_bank("07", "NCBA", "CBAFKENX"),
    _ke_bank("10", "Prime Bank", "PRIMKENA"),
    _ke_bank("11", "Cooperative Bank", "KCOOKENA"),
    _ke_bank("12", "National Bank"),
    _ke_bank("14", "M-Oriental"),
    _ke_bank("16", "Citibank", "CITIKENA"),
    _ke_bank("18", "Middle East Bank"),
    _ke_bank("19", "Bank of Africa", "AFRIKENX"),
    _ke_bank("23", "Consolidated Bank"),
    _ke_bank("25", "Credit Bank"),
    _ke_bank("31", "Stanbic Bank", "SBICKENX"),
    _ke_bank("35", "ABC Bank", "ABCLKENA"),
    _ke_bank("36", "Choice Microfinance Bank"),
    _ke_bank("43", "Eco Bank", "ECOCKENA"),
    _ke_bank("50", "Paramount Universal Bank"),
    _ke_bank("51", "Kingdom Bank"),
    _ke_bank("53", "Guaranty Bank"),
    _ke_bank("54", "Victoria Commercial Bank"),
    _ke_bank("55", "Guardian Bank", "GUARKENA"),
    _ke_bank("57", "I&M Bank", "IMBLKENA"),
    _ke_bank("61", "HFC Bank", "HFCOKENA"),
    _ke_bank("63", "DTB", "DTKEKENA"),
    _ke_bank("65", "Mayfair Bank"),
    _ke_bank("66", "Sidian Bank", "SIDNKENA"),
    _ke_bank("68", "Equity Bank", "EQBLKENA"),
    _ke_bank("70", "Family Bank", "FABLKENA"),
    _ke_bank("72", "Gulf African Bank", "GAFRKENA"),
    _ke_bank("74", "First Community Bank"),
    _ke_bank("75", "DIB Bank"),
    _ke_bank("76", "UBA"),
    _ke_bank("78", "KWFT Bank"),
    _ke_bank("89", "Stima Sacco"),
    _ke_bank("97", "Telcom Kenya"),
)

MOBILE_MONEY_OPERATORS = (
    _wallet("901", "Orange Money SL", Country.SL),
    _wallet("902", "Africell Money SL", Country.SL),
    _wallet("912", "M-Pesa KE", Country.KE),
    _wallet("913", "Airtel Money KE", Country.KE),
    _wallet("917", "T-Kash KE", Country.KE),
)

SEED_BANKS: tuple[SeedBank, ...] = SIERRA_LEONE_BANKS + KENYAN_BANKS + MOBILE_MONEY_OPERATORS
