"""Cards: a vault of tokenised card numbers, and authorisations (3-D Secure, capture, void, refund)."""
