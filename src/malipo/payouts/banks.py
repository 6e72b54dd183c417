"""Kenyan banks as Pay Hero numbers them, and the M-Pesa paybill through which each is paid.

A bank payout is an M-Pesa B2B (Business Pay Bill) payment to the bank's paybill with the bank
account number as the account reference, as Kenyan gateways pay banks. Only paybills we are sure
of are listed; the operator adds or corrects others with ``MALIPO_BANK_PAYBILLS``.
"""

from __future__ import annotations

from malipo.config import Settings

# Pay Hero's bank network codes (the reference's table).
BANK_CODES = {
    "01": "KCB", "02": "Standard Chartered Bank KE", "03": "Absa Bank", "07": "NCBA", "10": "Prime Bank",
    "11": "Cooperative Bank", "12": "National Bank", "14": "M-Oriental", "16": "Citibank",
    "18": "Middle East Bank", "19": "Bank of Africa", "23": "Consolidated Bank", "25": "Credit Bank",
    "31": "Stanbic Bank", "35": "ABC Bank", "36": "Choice Microfinance Bank", "43": "Eco Bank",
    "50": "Paramount Universal Bank", "51": "Kingdom Bank", "53": "Guaranty Bank",
    "54": "Victoria Commercial Bank", "55": "Guardian Bank", "57": "I&M Bank", "61": "HFC Bank", "63": "DTB",
    "65": "Mayfair Bank", "66": "Sidian Bank", "68": "Equity Bank", "70": "Family Bank",
    "72": "Gulf African Bank", "74": "First Community Bank", "75": "DIB Bank", "76": "UBA", "78": "KWFT Bank",
    "89": "Stima Sacco", "97": "Telcom Kenya",
}  # fmt: skip

# Bank network code -> the bank's M-Pesa paybill. Banks missing here need MALIPO_BANK_PAYBILLS.
BANK_PAYBILLS = {
    "01": "522522",  # KCB
    "02": "329329",  # Standard Chartered
    "03": "303030",  # Absa
    "07": "880100",  # NCBA
    "10": "982800",  # Prime Bank
    "11": "400200",  # Co-operative Bank
    "12": "625625",  # National Bank
    "19": "972900",  # Bank of Africa
    "23": "508400",  # Consolidated Bank
    "25": "972700",  # Credit Bank
    "31": "600100",  # Stanbic
    "35": "111777",  # ABC Bank
    "43": "700201",  # Ecobank
    "57": "542542",  # I&M
    "61": "100400",  # HFC
    "63": "516600",  # DTB
    "66": "111999",  # Sidian
    "68": "247247",  # Equity
    "70": "222111",  # Family Bank
    "72": "985050",  # Gulf African Bank
    "76": "559900",  # UBA
}


def bank_name(network_code: str) -> str | None:
    return BANK_CODES.get(network_code)


def bank_paybill(settings: Settings, network_code: str) -> str | None:
    """The paybill that pays ``network_code``'s bank: the operator's setting first, then the table."""
    return settings.bank_paybills.get(network_code) or BANK_PAYBILLS.get(network_code)
