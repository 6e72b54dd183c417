"""M-Pesa C2B (paybill and till payments the payer starts) and payment requests the payer completes
later (by C2B or an STK push): see ``docs/mpesa-c2b.md``."""
