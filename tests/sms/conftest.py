# The messaging tests' shared fixtures have one home (tests/fixtures/log_format.py).
from tests.fixtures.log_format import production_log_format

__all__ = ["production_log_format"]
