"""What every capability shares: where a request stands, and the errors a rail raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Where a request stands, as far as the rail says."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # The rail has it and has not finished: ask again later.
    PENDING = "pending"
    # The rail gave no answer (unreachable, or it no longer knows the request).
    UNKNOWN = "unknown"


class NotSupported(Exception):
    """The provider has no such operation (yet)."""


class ProviderUnavailable(Exception):
    """No connector serves this network yet; nothing was sent."""

    def __init__(self, network_code: str, name: str) -> None:
        super().__init__(f"{name} ({network_code}) is not available yet")
        self.network_code = network_code
        self.name = name


class RailError(Exception):
    """A call to the rail that failed.

    ``not_taken`` is True only when the provider certainly did not take the request (it never
    reached it, or it said no): only then may the domain retry or fail it. Otherwise sending again
    could charge or pay twice. ``retryable`` says whether the same request may succeed later.
    ``result_code`` and ``result_desc`` are the outcome to record when the domain gives up on it.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        not_taken: bool,
        result_code: int,
        result_desc: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        # Seconds to wait before trying again, when the rail asked to be left alone (a rate limit).
        self.retry_after = retry_after
        self.retryable = retryable
        self.not_taken = not_taken
        self.result_code = result_code
        self.result_desc = result_desc


@dataclass(frozen=True, slots=True)
class CallbackProblem:
    """One field of a provider's callback body that is out of bounds (dotted path, message)."""

    field: str
    message: str


class MalformedCallback(ValueError):
    """A callback body that is not what the provider sends: ``problems`` names at most five fields."""

    def __init__(self, what: str, count: int, problems: Sequence[CallbackProblem]) -> None:
        named = ", ".join(problem.field for problem in problems)
        super().__init__(f"{what}: {count} problem(s) ({named})")
        self.what = what
        self.count = count
        self.problems = tuple(problems)
