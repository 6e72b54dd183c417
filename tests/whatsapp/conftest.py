# The messaging tests' shared fixtures have one home (tests/messaging/conftest.py).
from tests.messaging.conftest import production_log_format

__all__ = ["production_log_format"]
