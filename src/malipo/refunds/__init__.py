"""Refunds of collections, by the rail's reversal (M-Pesa: Daraja's Reversal API)."""
