"""malipo: a self-hosted payment gateway for mobile money, bank and card rails."""

__version__ = "0.1.0"
