"""Runtime provider: the settings of an endpoint and the run's deadline.

`ProviderSettings` holds everything about the endpoint a run talks to (URL, key,
model override, request limits, timeouts); `provider_settings_from_env` builds it
from OPENAI_API_KEY / OPENAI_BASE_URL and the command line. The API key lives only
here (hidden from the repr) and in the clients' request headers. `RunDeadline` is
`--deadline`: past it no request starts and `RunDeadlinePassed` ends the run.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...compiler import ExitStatus, TaskcError
from ..limiter import MAX_RETRY_AFTER

# A local server (vLLM, Ollama, llama.cpp) needs no key, but the client insists on one.
PLACEHOLDER_API_KEY = "taskc-no-key"
# The largest response body read, counted after decompression: a completion of a few thousand tokens is tens
# of KB, so this leaves room for any real answer and none for a gzip bomb or a server that never stops.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# The longest one call may take, every retry and wait included, before it is given up as timed out.
DEFAULT_CALL_DEADLINE = 600.0


@dataclass(frozen=True)
class ProviderSettings:
    base_url: str | None
    api_key: str | None = field(repr=False)
    model: str | None = None  # --model: overrides the plan's model for every call
    concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    timeout: float = 60.0  # seconds one request may take in all, not per read: a trickling server is cut
    max_retries: int = 5
    backoff_base: float = 0.5  # seconds; the first retry waits up to this long, then it doubles
    poll_interval: float = 10.0  # seconds between status polls of fine-tuning jobs and batches
    call_deadline: float = DEFAULT_CALL_DEADLINE  # seconds one call may take, retries and waits included
    run_deadline: RunDeadline | None = None  # --deadline: no request starts after it
    max_retry_after: float = MAX_RETRY_AFTER  # the longest a server's Retry-After is obeyed
    max_response_bytes: int = MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("timeout", "call_deadline"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        if self.max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")


@dataclass(frozen=True)
class RunDeadline:
    """`taskc run --deadline SECONDS`: the moment (on the monotonic clock) after which no request starts."""

    seconds: float
    at: float

    @classmethod
    def after(cls, seconds: float) -> RunDeadline:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError("a deadline is a positive number of seconds")
        return cls(seconds, time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()


class RunDeadlinePassed(TaskcError):
    """The run's --deadline passed: no new request was started. Worded like the budget's note, but it ends the
    run (exit 4): a run cut short in time has not done what it was asked to, and says so."""

    exit_status = ExitStatus.RUNTIME_FAILURE

    def __init__(self, deadline: RunDeadline) -> None:
        super().__init__(f"the run's deadline (--deadline {deadline.seconds:g}) passed, so no new LLM requests were "
                         "started after it and the run stopped; answered calls are cached: run the same command "
                         "again (with a later --deadline) to finish")
        self.deadline = deadline



def provider_settings_from_env(base_url: str | None = None, model: str | None = None, *,
                               environ: Mapping[str, str] | None = None, **limits: Any) -> ProviderSettings | None:
    """Settings from OPENAI_API_KEY / OPENAI_BASE_URL (arguments win); None when neither is configured."""
    env = os.environ if environ is None else environ
    key = env.get("OPENAI_API_KEY") or None
    url = base_url or env.get("OPENAI_BASE_URL") or None
    if key is None and url is None:
        return None
    given = {name: value for name, value in limits.items() if value is not None}
    if "timeout" in given and "call_deadline" not in given:
        # a call may take its every attempt in full: a long --request-timeout lengthens the call's deadline
        attempts = given.get("max_retries", ProviderSettings.max_retries) + 1
        given["call_deadline"] = max(DEFAULT_CALL_DEADLINE, given["timeout"] * attempts)
    return ProviderSettings(base_url=url, api_key=key or PLACEHOLDER_API_KEY, model=model, **given)

