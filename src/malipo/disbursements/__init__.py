"""Bulk disbursement batches: many payouts submitted as one batch, processed, retried, reconciled."""
