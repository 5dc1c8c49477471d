"""Runtime provider: what one LLM call comes back with.

A call never raises for a provider problem (see the client): it returns a
`CallResult`, and a call that failed carries a `CallFailure`, its message (the
words stats.json and the report show) and its `ErrorKind`, which is what code
decides on: whether the budget stopped it, or whether the provider itself is
unreachable (so the run stops rather than retrying a dead endpoint phase after
phase), as opposed to an answer that says something about the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

BUDGET_EXHAUSTED = "budget exhausted"  # the message of a call the run's budget stopped


class ErrorKind(str, Enum):
    """Why a call has no answer."""

    CONNECTION = "connection"  # no connection, or it was lost
    TIMEOUT = "timeout"  # a request took longer than --request-timeout
    DEADLINE = "deadline"  # the call took longer than its deadline, retries included
    RATE_LIMITED = "rate_limited"  # 429 until the retries ran out
    QUOTA = "quota"  # 429 insufficient quota
    AUTH = "auth"  # 401 / 403: the key
    HTTP_ERROR = "http_error"  # any other error status (a bad model, a server error)
    TOO_LARGE = "too_large"  # the response body was over the limit
    BAD_ANSWER = "bad_answer"  # malformed, truncated, schema-invalid or refused by the caller's check
    BUDGET_EXHAUSTED = "budget_exhausted"  # not sent: the run's budget was spent
    NO_ANSWER = "no_answer"  # no attempt made, or a batch ended without an answer for it

    @property
    def unreachable(self) -> bool:
        """A failure of the provider itself (no connection, timeouts, HTTP errors such as a bad key or model),
        as opposed to unusable answers, which say something about the model and belong in the report."""
        return self in _UNREACHABLE


_UNREACHABLE = frozenset({ErrorKind.CONNECTION, ErrorKind.TIMEOUT, ErrorKind.DEADLINE, ErrorKind.RATE_LIMITED,
                          ErrorKind.QUOTA, ErrorKind.AUTH, ErrorKind.HTTP_ERROR})


def status_kind(status: int) -> ErrorKind:
    """The kind of a failure with an HTTP error status."""
    if status == 429:
        return ErrorKind.RATE_LIMITED
    return ErrorKind.AUTH if status in (401, 403) else ErrorKind.HTTP_ERROR


@dataclass(frozen=True)
class CallFailure:
    """Why one call has no answer: its kind, and the message the run's files show."""

    kind: ErrorKind
    message: str

    @classmethod
    def budget_exhausted(cls) -> CallFailure:
        return cls(ErrorKind.BUDGET_EXHAUSTED, BUDGET_EXHAUSTED)

    @property
    def stopped_by_budget(self) -> bool:
        return self.kind is ErrorKind.BUDGET_EXHAUSTED


@dataclass(frozen=True)
class CallResult:
    ok: bool
    content: dict[str, Any] | None
    error: str | None
    request_id: str | None
    usage: dict[str, int]
    cached: bool
    attempts: int
    kind: ErrorKind | None = None  # set when not ok

    @property
    def failure(self) -> CallFailure | None:
        if self.ok:
            return None
        return CallFailure(self.kind or ErrorKind.NO_ANSWER, self.error or "failed")

    @property
    def stopped_by_budget(self) -> bool:
        return self.kind is ErrorKind.BUDGET_EXHAUSTED
