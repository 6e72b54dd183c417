"""A wallet customer's money: balance, sandbox top-ups, transfers, payments, statements."""
