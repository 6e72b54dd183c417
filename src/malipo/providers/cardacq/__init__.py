"""The card acquirer rail: a JSON acquirer API with EMV 3-D Secure 2 (docs/card-acquirer.md)."""
