"""Collections: money asked of a payer's phone by M-Pesa STK push, and the channels it settles to."""
