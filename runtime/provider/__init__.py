"""Runtime stage: the LLM provider — one structured-output call, done reliably.

This package is the provider's public face: the rest of the runtime imports from
here. By job:

- `settings`: `ProviderSettings` (endpoint, key, limits), the run's `RunDeadline`;
- `budget`: `CallStats` (a phase's counters) and the run's `Budget`, `charge`;
- `answers`: reading and checking an answer (`parse_answer`, `read_completion`);
- `outcome`: what a call returns (`CallResult`, `CallFailure`, `ErrorKind`);
- `redaction`: keeping the API key out of what responses bring in (`scrub`);
- `transport`: the HTTP/TLS plumbing under the `openai` client;
- `adjustments`: what the run learns from a server that refuses part of a request
  (`ServerAdjustments`: structured outputs, a sampling parameter), and the request without it;
- `client`: `LLMClient`, the retrying, rate-limited, budgeted call itself.

Everything that talks to an OpenAI-compatible chat endpoint goes through
`LLMClient.complete_json`: it answers from the response cache when it can, and
otherwise makes the call with the official async `openai` client under a
concurrency bound and the RPM/TPM limiter, retrying 429s, 5xx, timeouts, resets
and malformed, truncated or schema-invalid answers with exponential backoff and
full jitter (a server's Retry-After wins when it is longer, up to
`MAX_RETRY_AFTER`). It never raises for a provider problem: the caller gets a
`CallResult` that says what happened. Only the user's own limit on time does
raise: past the run's `--deadline` no request starts and `RunDeadlinePassed`
ends the run, the answers so far being cached.

Nothing a server sends is trusted further than it must be. Every request has a
total deadline (a server trickling one byte at a time is cut) and so has every
call, retries and waits included; a body is read at most `MAX_RESPONSE_BYTES`
long, counted after decompression; token usage must be whole, finite,
plausible numbers, and an answer without any is charged by its length
(`estimated_usage`, counted as `usage_estimated`) rather than as free; and
calls are priced by the model taskc asked for, never by the name a server
answers with. The API key lives only in `ProviderSettings`
(hidden from its repr) and in the client's request headers; every string taken
from a response (request ids, model names, content, error texts) has it
scrubbed out by `scrub_in_place` before anything stores or uses it.
"""

from __future__ import annotations

from .adjustments import MIN_COMPLETION_TOKENS, AdjustedRequest, Refusal, ServerAdjustments, refusal_of
from .answers import (
    MAX_TOKENS_PER_RESPONSE,
    AnswerProblem,
    answer_record,
    charged_embedding_usage,
    charged_usage,
    embedding_tokens,
    estimated_usage,
    parse_answer,
    parse_choice,
    read_completion,
    read_embeddings,
    usage_of,
)
from .budget import Budget, CallStats, charge, count_requests
from .client import EMBEDDING_RESPONSE_BYTES_PER_INPUT, LLMClient
from .outcome import BUDGET_EXHAUSTED, CallFailure, CallResult, ErrorKind, status_kind
from .redaction import REDACTED, scrub, scrub_in_place
from .settings import (
    DEFAULT_CALL_DEADLINE,
    MAX_RESPONSE_BYTES,
    PLACEHOLDER_API_KEY,
    ProviderSettings,
    RunDeadline,
    RunDeadlinePassed,
    provider_settings_from_env,
)
from .transport import ResponseTooLarge, one_line, retry_delay_from_headers, sync_client

__all__ = [
    "BUDGET_EXHAUSTED", "DEFAULT_CALL_DEADLINE", "EMBEDDING_RESPONSE_BYTES_PER_INPUT", "MAX_RESPONSE_BYTES",
    "MAX_TOKENS_PER_RESPONSE", "MIN_COMPLETION_TOKENS", "PLACEHOLDER_API_KEY", "REDACTED", "AdjustedRequest",
    "AnswerProblem", "Budget", "CallFailure", "CallResult", "CallStats", "ErrorKind", "LLMClient",
    "ProviderSettings", "Refusal", "ResponseTooLarge", "RunDeadline", "RunDeadlinePassed", "ServerAdjustments",
    "answer_record", "charge", "count_requests", "charged_embedding_usage", "charged_usage",
    "embedding_tokens", "estimated_usage", "one_line", "parse_answer", "parse_choice", "provider_settings_from_env",
    "read_completion", "read_embeddings", "refusal_of", "retry_delay_from_headers", "scrub", "scrub_in_place",
    "status_kind", "sync_client", "usage_of",
]
