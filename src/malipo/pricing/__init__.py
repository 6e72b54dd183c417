"""Per-merchant pricing: the fees of a merchant's collections and payouts, set by the operator."""
