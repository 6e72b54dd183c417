"""Hosted checkout sessions and payment links: a page where a payer pays a merchant by M-Pesa or card."""
