"""Payouts: money from a merchant's payments wallet to a phone (M-Pesa B2C) or a bank account."""
