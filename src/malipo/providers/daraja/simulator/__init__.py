"""A local Daraja: the same paths, request checks, replies and callbacks, with scripted outcomes.

Serves ``GET /oauth/v1/generate``, ``POST /mpesa/stkpush/v1/processrequest``,
``POST /mpesa/stkpushquery/v1/query``, ``POST /mpesa/b2c/v3/paymentrequest``,
``POST /mpesa/b2b/v1/paymentrequest``, ``POST /mpesa/transactionstatus/v1/query``,
``POST /mpesa/reversal/v1/request`` and ``POST /mpesa/accountbalance/v1/query`` (their outcomes:
:mod:`malipo.providers.daraja.simulator.commands`), and C2B (``/mpesa/c2b/v{1,2}/registerurl``
and ``/simulate``: see ``simulator.c2b``). Every API
call needs a Bearer token from the OAuth endpoint (a missing, unknown or expired one answers
HTTP 404 ``404.001.03`` "Invalid Access Token", as Daraja does); invalid fields answer HTTP 400
``400.002.02`` "Bad Request - Invalid <Field>"; a wrong STK ``Password`` answers HTTP 500
``500.001.1001`` "Wrong credentials". After ``callback_delay`` seconds the simulated customer (or
M-Pesa) acts and the result is POSTed to ``CallBackURL`` / ``ResultURL`` / ``QueueTimeOutURL``,
retried a few times if the receiver fails, without ever holding up the request that caused it.

Outcomes are chosen by the phone number (tables :data:`STK_OUTCOMES` and :data:`B2C_OUTCOMES`)
or, for B2B, by the account number (:data:`B2B_OUTCOMES`); any number not listed succeeds.

STK push, by ``PhoneNumber``:

============  ======  =========================================================================
phone         code    what happens
============  ======  =========================================================================
(any other)   0       paid; callback with ``CallbackMetadata`` (Amount, MpesaReceiptNumber, ...)
254700000001  1032    "Request cancelled by user"; callback without metadata
254700000002  1037    "DS timeout user cannot be reached"; callback
254700000003  1       "The balance is insufficient for the transaction."; callback
254700000004  2001    "The initiator information is invalid." (wrong PIN); callback
254700000005  1037    never answered: no callback ever; STK query says "The transaction is being
                      processed" (HTTP 500 ``500.001.1001``) until ``stk_expiry`` seconds (on the
                      simulator's clock) have passed, then answers ResultCode "1037"
254700000006  0       paid, but the callback is lost: only STK query tells
254700000007  1019    "Transaction has expired"; callback
254700000008  1001    "Unable to lock subscriber, ..."; callback
254700000009  0       paid as any other number; a reversal of its receipt times out in the queue
============  ======  =========================================================================

Any other phone paying :data:`STK_INSUFFICIENT_FROM` shillings or more gets ResultCode 1.
STK query answers a failure's ``ResultDesc`` with Daraja's ``[STK_CB - ]`` prefix.

B2C (v3), by ``PartyB``:

============  ======  =========================================================================
phone         code    what happens
============  ======  =========================================================================
(any other)   0       paid; Result with TransactionID and ResultParameters
254700000011  2001    "The initiator information is invalid."; Result without ResultParameters
254700000012  1       "The balance is insufficient for the transaction."
254700000013  2040    "Credit Party customer type (Unregistered or Registered Customer) can't be
                      supported by the service."
254700000014  --      times out in the queue: ``QueueTimeOutURL`` gets a Result (ResultType 1,
                      ResultCode 1, "The service request has timed out."); nothing at ResultURL
254700000015  0       paid, but the Result is lost: only transaction status tells
============  ======  =========================================================================

A B2C payment larger than the utility account's funds (``b2c_funds``, debited by each payout)
gets ResultCode 1; with ``initiators`` configured, an unknown initiator or wrong credential gets
2001.

B2B (Business Pay Bill to a paybill, e.g. a bank's, with the bank account as
``AccountReference``), by ``AccountReference``:

============  ======  =========================================================================
account       code    what happens
============  ======  =========================================================================
(any other)   0       paid; Result with TransactionID, ResultParameters (Amount,
                      TransCompletedTime, ReceiverPartyPublicName, ...) and ReferenceData
                      (BillReferenceNumber = the account)
1000000021    2001    "The initiator information is invalid."; Result without ResultParameters
1000000022    1       "The balance is insufficient for the transaction."
1000000023    12      "The receiver account does not exist." (the simulator's code and text
                      for a bank refusing the account; Daraja's real answer is unconfirmed)
1000000024    --      times out in the queue: ``QueueTimeOutURL`` gets a Result (ResultType 1,
                      ResultCode 1, "The service request has timed out."); nothing at ResultURL
1000000025    0       paid, but the Result is lost: only transaction status tells
1000000026    17      "Internal failure"; the Result is lost too: transaction status says the
                      transaction does not exist
============  ======  =========================================================================

B2B checks ``CommandID`` (:data:`B2B_COMMAND_IDS`), ``SenderIdentifierType`` and
``RecieverIdentifierType`` (``4``), ``AccountReference`` (at most 13 characters) and both
shortcodes. Daraja's B2B takes no caller ``OriginatorConversationID``: the simulator makes one up
unless the request brings one, which it then refuses to see twice, as B2C does. A payment
larger than the working account's funds (``b2b_funds``) gets ResultCode 1; the initiator is
checked as for B2C.

Transaction status finds completed payments (STK, B2C and B2B) by receipt or by either
conversation id; anything else gets ResultCode 2032 "The transaction receipt number does not
exist.".

The callback delay runs on real time; token expiry and the STK prompt expiry run on ``clock``
so tests can move them. ``app.state.simulator`` is the :class:`DarajaSimulator` behind the app
(its recorded pushes, payments, deliveries and OAuth hits).
"""

from malipo.providers.daraja.simulator.app import DarajaSimulator, create_simulator_app, main, run
from malipo.providers.daraja.simulator.commands import (
    ABOVE_ORIGINAL,
    ALREADY_REVERSED,
    REVERSAL_TIMEOUT_PHONE,
    UNKNOWN_RECEIPT,
)
from malipo.providers.daraja.simulator.outcomes import (
    B2B_OUTCOMES,
    B2B_SUCCESS,
    B2C_OUTCOMES,
    B2C_SUCCESS,
    DEFAULT_PORT,
    STK_INSUFFICIENT_FROM,
    STK_OUTCOMES,
    STK_SUCCESS,
    Delivery,
    Outcome,
)
from malipo.providers.daraja.simulator.records import (
    B2BPayment,
    B2CPayment,
    StatusQuery,
    StkPush,
)
from malipo.providers.daraja.simulator.status import status_parameters
from malipo.providers.simulation import CallbackDelivery

__all__ = [
    "ABOVE_ORIGINAL",
    "ALREADY_REVERSED",
    "B2B_OUTCOMES",
    "B2B_SUCCESS",
    "B2C_OUTCOMES",
    "B2C_SUCCESS",
    "DEFAULT_PORT",
    "REVERSAL_TIMEOUT_PHONE",
    "STK_INSUFFICIENT_FROM",
    "STK_OUTCOMES",
    "STK_SUCCESS",
    "UNKNOWN_RECEIPT",
    "B2BPayment",
    "B2CPayment",
    "CallbackDelivery",
    "DarajaSimulator",
    "Delivery",
    "Outcome",
    "StatusQuery",
    "StkPush",
    "create_simulator_app",
    "main",
    "run",
    "status_parameters",
]
