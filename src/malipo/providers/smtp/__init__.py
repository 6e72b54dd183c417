"""Outgoing mail over SMTP: the client (``client``)."""
