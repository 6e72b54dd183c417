"""Airtel Money through Airtel Africa's Open API: the HTTP client, its wire shapes, the callback
parser, the result codes, the disbursement PIN's encryption and a local simulator.

Field names follow Airtel's own spelling (``airtel_money_id``, ``status_code``); the protocol
facts they rest on, and which of them are unconfirmed, are in ``shared/reference/airtel-money-api.md``
and ``docs/airtel-money.md``.
"""
