"""Payments out of a merchant's payments wallet to a bank account, with fraud checks and an OTP."""
