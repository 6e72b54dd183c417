"""The rails' own balances (M-Pesa shortcodes, Airtel), asked periodically and kept as history."""
