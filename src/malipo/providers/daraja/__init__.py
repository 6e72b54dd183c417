"""Safaricom M-Pesa through Daraja: the HTTP client, its wire shapes and a local simulator.

Field names follow Daraja's own spelling (``CallBackURL``, ``QueueTimeOutURL``); the protocol
facts they rest on are in ``shared/reference/daraja-api.md``.
"""
