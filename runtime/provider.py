"""Runtime stage: the LLM provider — one structured-output call, done reliably.

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
plausible numbers; and calls are priced by the model taskc asked for, never by
the name a server answers with. The API key lives only in `ProviderSettings`
(hidden from its repr) and in the client's request headers; every string taken
from a response (request ids, model names, content, error texts) has it
scrubbed out by `scrub_in_place` before anything stores or uses it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import aclosing, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import jsonschema
import openai

try:  # openai 3 ships its own fork of httpx; earlier versions use httpx itself
    import httpx2 as _httpx
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as _httpx  # type: ignore[no-redef]

try:
    from aiohttp import ClientConnectionError as _AiohttpConnectionError
    from aiohttp import ClientError as _AiohttpError

    # The SDK's aiohttp transport maps connection errors to httpx's, which the SDK wraps as
    # APIConnectionError, but lets the others through unwrapped: a reply that is not HTTP at all
    # arrives as aiohttp's ClientResponseError.
    _UNWRAPPED_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (_AiohttpError,)
except ImportError:  # pragma: no cover - the default httpx transport is used instead
    _AiohttpConnectionError = None  # type: ignore[assignment,misc]
    _UNWRAPPED_TRANSPORT_ERRORS = ()

from ..compiler import CHARS_PER_TOKEN, ExitStatus, TaskcError, builtin_prices, canonical_json, price_for
from .cache import ResponseCache
from .limiter import MAX_RETRY_AFTER, RateLimiter
from .schema_check import Check, compile_schema_check

# A local server (vLLM, Ollama, llama.cpp) needs no key, but the client insists on one.
PLACEHOLDER_API_KEY = "taskc-no-key"
BUDGET_EXHAUSTED = "budget exhausted"
BATCH_PRICE_FACTOR = 0.5  # the Batch API bills half the online price
# The largest response body read, counted after decompression: a completion of a few thousand tokens is tens
# of KB, so this leaves room for any real answer and none for a gzip bomb or a server that never stops.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# An embeddings answer grows with its inputs (a 4,096-number vector is ~64 KiB of JSON): each input of a
# request raises that request's limit by this much, so inputs_per_request up to 2048 stays possible.
EMBEDDING_RESPONSE_BYTES_PER_INPUT = 64 * 1024
# The longest one call may take, every retry and wait included, before it is given up as timed out.
DEFAULT_CALL_DEADLINE = 600.0
# More tokens than any model reads or writes in one response: a usage block claiming more is not believed.
MAX_TOKENS_PER_RESPONSE = 100_000_000
REDACTED = "[redacted]"
_MAX_BACKOFF = 30.0
_DEFAULT_OUTPUT_ESTIMATE = 512
_CONNECTIONS_PER_POOL = 32
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


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

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments for an `openai` client; retries are ours, so the client's own are off."""
        return {"api_key": self.api_key or PLACEHOLDER_API_KEY, "base_url": self.base_url,
                "timeout": self.timeout, "max_retries": 0, "default_headers": _NO_SDK_TELEMETRY}

    def sync_client(self) -> openai.OpenAI:
        """A blocking client for the control plane (files, batches, fine-tuning jobs), which has no
        retry loop of its own here, so the SDK's retries (as many as ours) are on."""
        return openai.OpenAI(**{**self.client_kwargs(), "max_retries": self.max_retries})


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


class ResponseTooLarge(openai.OpenAIError):
    """A response body longer than the limit; an OpenAIError, so the SDK passes it on as it is."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response larger than {_size_text(limit)}")
        self.limit = limit


def _size_text(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


# The SDK describes the machine in every request (OS, architecture, Python and SDK versions, and
# its retry count and read timeout). No endpoint needs any of it, taskc has no reason to send it,
# and building those headers is about a tenth of the client's CPU per call.
_NO_SDK_TELEMETRY: dict[str, Any] = {name: openai.Omit() for name in (
    "X-Stainless-Lang", "X-Stainless-Package-Version", "X-Stainless-OS", "X-Stainless-Arch",
    "X-Stainless-Runtime", "X-Stainless-Runtime-Version", "X-Stainless-Async")}
_NO_PER_REQUEST_TELEMETRY: Any = {  # the SDK's RequestOptions
    "headers": {name: openai.Omit() for name in ("X-Stainless-Retry-Count", "X-Stainless-Read-Timeout")}}


def provider_settings_from_env(base_url: str | None = None, model: str | None = None, *,
                               environ: Mapping[str, str] | None = None, **limits: Any) -> ProviderSettings | None:
    """Settings from OPENAI_API_KEY / OPENAI_BASE_URL (arguments win); None when neither is configured."""
    env = os.environ if environ is None else environ
    key = env.get("OPENAI_API_KEY") or None
    url = base_url or env.get("OPENAI_BASE_URL") or None
    if key is None and url is None:
        return None
    given = {name: value for name, value in limits.items() if value is not None}
    return ProviderSettings(base_url=url, api_key=key or PLACEHOLDER_API_KEY, model=model, **given)


@dataclass(frozen=True)
class CallResult:
    ok: bool
    content: dict[str, Any] | None
    error: str | None
    request_id: str | None
    usage: dict[str, int]
    cached: bool
    attempts: int

    @property
    def stopped_by_budget(self) -> bool:
        return self.error == BUDGET_EXHAUSTED


@dataclass
class CallStats:
    """Counters of one run, updated by the client (single event loop, so no locks)."""

    requests: int = 0  # network attempts sent, retries included
    calls_made: int = 0  # calls answered usefully over the network
    calls_cached: int = 0
    calls_failed: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # by kind: rate_limit, server_error, malformed...
    unpriced_models: set[str] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "calls_made": self.calls_made, "calls_cached": self.calls_cached,
                "calls_failed": self.calls_failed, "retries": self.retries, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": round(self.cost_usd, 6),
                "errors": dict(sorted(self.errors.items())), "unpriced_models": sorted(self.unpriced_models),
                "max_in_flight": self.max_in_flight}


class Budget:
    """The spending guard of one run: no new network request once max_calls requests or max_cost dollars are
    reached, counted over every phase and client that shares it (generation, pool labeling, evaluation)."""

    def __init__(self, max_cost: float | None = None, max_calls: int | None = None,
                 prices: Mapping[str, tuple[float, float]] | None = None, price_factor: float = 1.0) -> None:
        self.max_cost, self.max_calls = max_cost, max_calls
        self.prices = {**builtin_prices(), **(prices or {})}
        self.price_factor = price_factor  # 0.5 for a budget used only by the Batch API
        self.requests = 0  # network requests sent under this budget, by every client that shares it
        self.cost_usd = 0.0
        self.exhausted = False

    def allows(self) -> bool:
        """Whether the run may make another request (the run's totals, over all its phases)."""
        if self.max_calls is not None and self.requests >= self.max_calls:
            self.exhausted = True
        if self.max_cost is not None and self.cost_usd >= self.max_cost:
            self.exhausted = True
        return not self.exhausted

    def room(self) -> int | None:
        """How many more requests max_calls allows (None: no limit)."""
        return None if self.max_calls is None else max(0, self.max_calls - self.requests)

    def cost(self, model: str, input_tokens: int, output_tokens: int,
             price_factor: float | None = None) -> float | None:
        price = price_for(self.prices, model)
        if price is None:
            return None
        factor = self.price_factor if price_factor is None else price_factor
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000 * factor


def count_requests(stats: CallStats, budget: Budget | None, requests: int) -> None:
    """Add requests about to be sent to the phase's counters and to the run's budget."""
    stats.requests += requests
    if budget is not None:
        budget.requests += requests


def charge(stats: CallStats, budget: Budget | None, model: str, usage: Mapping[str, int],
           price_factor: float | None = None) -> None:
    """Add one response's tokens and cost to the phase's counters and to the run's budget.

    ``model`` is the model the call asked for: the name a server answers with is its own to choose (a
    local server's "my-local-model"), and pricing by it would let any server make every call free."""
    input_tokens, output_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    stats.input_tokens += input_tokens
    stats.output_tokens += output_tokens
    pricing = budget or Budget()
    cost = pricing.cost(model, input_tokens, output_tokens, price_factor)
    if cost is None:
        stats.unpriced_models.add(model)
    else:
        stats.cost_usd += cost
        if budget is not None:
            budget.cost_usd += cost


class AnswerProblem(Exception):
    """An answer arrived but cannot be used (malformed, truncated, schema-invalid); worth a retry."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_SchemaCheckers = tuple[Check | None, jsonschema.protocols.Validator]
_checkers_by_text: dict[str, _SchemaCheckers] = {}
_checkers_by_identity: dict[int, tuple[Any, _SchemaCheckers]] = {}


def _schema_checkers(schema: Any) -> _SchemaCheckers:
    """The fast check and the jsonschema validator of a response schema, built once per schema.

    Every call of a job passes the same schema object, so the lookup by identity (which keeps the
    object alive, so its id cannot be reused) spares serialising the schema on every answer.
    """
    known = _checkers_by_identity.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    text = canonical_json(schema)
    checkers = _checkers_by_text.get(text)
    if checkers is None:
        if len(_checkers_by_text) > 256:
            _checkers_by_text.clear()
        checkers = _checkers_by_text[text] = (compile_schema_check(schema), jsonschema.Draft202012Validator(schema))
    if len(_checkers_by_identity) > 1024:
        _checkers_by_identity.clear()
    _checkers_by_identity[id(schema)] = (schema, checkers)
    return checkers


def parse_answer(content: str | None, finish_reason: str | None, response_format: Mapping[str, Any],
                 validate: Callable[[dict], str | None] | None = None) -> dict[str, Any]:
    """Check one answer the way both the online and the Batch path do; raise AnswerProblem if unusable."""
    if finish_reason == "length":
        raise AnswerProblem("truncated", "answer truncated at the token limit")
    if not content or not isinstance(content, str):
        raise AnswerProblem("malformed", "empty answer" if finish_reason != "content_filter" else "answer refused")
    fenced = _FENCE.fullmatch(content.strip())
    if fenced:  # some local models wrap JSON in a markdown code block even in JSON mode
        content = fenced.group(1)
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise AnswerProblem("malformed", f"answer is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(value, dict):
        raise AnswerProblem("malformed", "answer is not a JSON object")
    schema = (response_format.get("json_schema") or {}).get("schema")
    if schema:
        fast_check, validator = _schema_checkers(schema)
        if fast_check is None or not fast_check(value):
            # jsonschema has the last word, and words the message.
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "answer"
                raise AnswerProblem("schema_violation", f"{where}: {error.message[:200]}")
    if validate is not None:
        problem = validate(value)
        if problem:
            raise AnswerProblem("invalid", problem)
    return value


def read_completion(body: Any, requested_model: str) -> tuple[dict[str, int], str, dict[str, Any] | None]:
    """A chat completion's token usage, answering model (the requested one if it names none; for the record
    only, never for the price) and first choice (None when there is none): the parts both the online and the
    Batch path read. Raises AnswerProblem for a usage block no server could mean (see usage_of)."""
    body = body if isinstance(body, dict) else {}
    answered = body.get("model")
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    return usage_of(body.get("usage")), answered if isinstance(answered, str) and answered else requested_model, choice


def parse_choice(choice: dict[str, Any] | None, response_format: Mapping[str, Any],
                 validate: Callable[[dict], str | None] | None = None) -> dict[str, Any]:
    """The checked answer of a completion's first choice (see parse_answer); raises AnswerProblem."""
    if choice is None:
        raise AnswerProblem("malformed", "answer has no choices")
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return parse_answer(content, choice.get("finish_reason"), response_format, validate)


def answer_record(content: dict[str, Any], request_id: str | None, usage: dict[str, int], model: str,
                  **extra: Any) -> dict[str, Any]:
    """What the cache keeps of an answer."""
    return {"content": content, "request_id": request_id, "usage": usage, "model": model,
            "created": int(time.time()), **extra}


def usage_of(raw: Any) -> dict[str, int]:
    """Token usage of a response (object or dict) as {"input_tokens", "output_tokens"}.

    Raises AnswerProblem ("malformed", worth a retry) for a count that is a number but not a token count:
    negative, not finite (JSON's 1e999 reads as infinity), fractional, or beyond MAX_TOKENS_PER_RESPONSE."""
    if raw is None:
        return {"input_tokens": 0, "output_tokens": 0}
    get = raw.get if isinstance(raw, dict) else (lambda name, default=0: getattr(raw, name, default))
    return {"input_tokens": _token_count("prompt_tokens", get("prompt_tokens", 0)),
            "output_tokens": _token_count("completion_tokens", get("completion_tokens", 0))}


def _token_count(name: str, value: Any) -> int:
    # A usage block that is not numbers at all (a string, a list) counts as no tokens rather than failing the
    # call, as before; a number no server could mean is a malformed answer.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise AnswerProblem("malformed", f"usage: {name} is {value!r}, not a whole number of tokens")
    if not 0 <= value <= MAX_TOKENS_PER_RESPONSE:
        raise AnswerProblem("malformed", f"usage: {name} is {value!r}, not a plausible number of tokens")
    return int(value)


def retry_delay_from_headers(headers: Mapping[str, str] | None, cap: float | None = None) -> float | None:
    """Seconds the server asked us to wait (Retry-After, retry-after-ms, x-ratelimit-reset-*), at most ``cap``.

    A value that is not a finite, non-negative number ("inf", "nan", "-5") is no answer: the next header
    is read instead, and without one the client's own backoff decides."""
    if not headers:
        return None
    seconds = _header_delay(headers)
    return seconds if seconds is None or cap is None else min(seconds, cap)


def _header_delay(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after-ms")
    if value and (millis := _finite(value)) is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value:
        if (seconds := _finite(value)) is not None:
            return seconds
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError, OverflowError):
            pass
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        value = headers.get(name)
        if value and (seconds := _duration_seconds(value)) is not None and math.isfinite(seconds):
            return seconds
    return None


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _duration_seconds(text: str) -> float | None:
    # OpenAI writes resets like "1s", "120ms", "6m0s", "1h2m3.5s".
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def scrub(text: str, secret: str | None) -> str:
    """Remove the API key from a text that may end up in a file or on the screen."""
    if secret is not None and _worth_scrubbing(secret) and secret in text:
        text = text.replace(secret, REDACTED)
    return text


def scrub_in_place(value: Any, secret: str | None) -> Any:
    """Remove the API key from every string in a value parsed from a response (dict keys too, at any
    depth) and return it; containers are changed in place, as the parsed response is taskc's own.

    This is the boundary where a response enters taskc: a server that echoes the bearer token in an
    answer (by mistake or on purpose) must not get it into the cache, the datasets or a model's
    vocabulary. A loop rather than recursion: a response may nest as deep as the JSON parser allows.
    """
    if secret is None or not _worth_scrubbing(secret):
        return value
    if isinstance(value, str):
        return scrub(value, secret)
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if any(isinstance(key, str) and secret in key for key in node):
                items = list(node.items())
                node.clear()
                node.update((scrub(k, secret) if isinstance(k, str) else k, v) for k, v in items)
            for key, item in node.items():
                if isinstance(item, str):
                    if secret in item:
                        node[key] = item.replace(secret, REDACTED)
                elif isinstance(item, (dict, list)):
                    pending.append(item)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    if secret in item:
                        node[index] = item.replace(secret, REDACTED)
                elif isinstance(item, (dict, list)):
                    pending.append(item)
    return value


def _worth_scrubbing(secret: str) -> bool:
    # the placeholder of a keyless local server is no secret, and a key of a few characters would
    # redact half of every answer
    return secret != PLACEHOLDER_API_KEY and len(secret) >= 4


def read_embeddings(body: Any, expected: int) -> list[list[float]]:
    """The vectors of an `/embeddings` response in input order; ValueError when the body is not one."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        raise ValueError(f"expected {expected} vectors, got {len(data) if isinstance(data, list) else 'none'}")
    ordered: list[list[float] | None] = [None] * expected
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < expected or ordered[index] is not None:
            raise ValueError(f"item {position} has no usable index")
        if not isinstance(vector, list) or not vector or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in vector):
            raise ValueError(f"item {position} is not a list of finite numbers (base64 vectors are not read)")
        ordered[index] = vector
    if len({len(v) for v in ordered if v is not None}) != 1:
        raise ValueError("the vectors differ in length")
    return ordered  # type: ignore[return-value]


class LLMClient:
    """Cached, rate-limited, retrying structured-output calls against an OpenAI-compatible endpoint."""

    def __init__(self, settings: ProviderSettings, cache: ResponseCache, budget: Budget | None = None,
                 stats: CallStats | None = None, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.budget = budget
        self.stats = stats if stats is not None else CallStats()
        self.limiter = RateLimiter(settings.rpm, settings.tpm, max_pause=settings.max_retry_after)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._rng = rng or random.Random()
        # A connection pool costs more CPU per request as it grows (httpx's scans every connection;
        # aiohttp's less so, but at 128 in flight one pool ran ~540 calls/s and pools of 32 slots
        # ~690), so several smaller pools, one client each, share the calls.
        shards = max(1, -(-settings.concurrency // _CONNECTIONS_PER_POOL))
        per_pool = -(-settings.concurrency // shards)
        self._clients = [openai.AsyncOpenAI(**settings.client_kwargs(), http_client=_http_client(
                             per_pool * 2, settings.timeout, settings.max_response_bytes))
                         for _ in range(shards)]
        self._next_client = 0

    async def complete_json(self, *, messages: list[dict[str, str]], model: str, response_format: dict[str, Any],
                            sampling: dict[str, Any], seed: int | None, cache_key: str,
                            validate: Callable[[dict], str | None] | None = None) -> CallResult:
        """One call, from the cache or the network; raises RunDeadlinePassed only (see the module doc)."""
        cached = self.cache.get(cache_key)
        if cached is not None:
            self.stats.calls_cached += 1
            return CallResult(True, cached["content"], None, cached.get("request_id"), cached.get("usage", {}),
                              True, 0)
        estimate = sum(len(m.get("content") or "") for m in messages) // CHARS_PER_TOKEN \
            + int(sampling.get("max_tokens") or _DEFAULT_OUTPUT_ESTIMATE)
        error, request_id, attempts = "no attempt made", None, 0
        usage: dict[str, int] = {}
        call_ends = time.monotonic() + self.settings.call_deadline
        while attempts <= self.settings.max_retries:
            self._stop_at_run_deadline()
            if self.budget is not None and not self.budget.allows():  # spent already: do not even queue
                # Not a failure of the call: a rerun with a larger budget makes it.
                return CallResult(False, None, BUDGET_EXHAUSTED, request_id, usage, False, attempts)
            if not await self._paced(estimate, call_ends):
                error = self._past_call_deadline(error)
                break
            outcome = await self._attempt(messages, model, response_format, sampling, seed, validate, estimate,
                                          call_ends)
            if outcome.over_budget:
                return CallResult(False, None, BUDGET_EXHAUSTED, request_id, usage, False, attempts)
            if outcome.past_deadline:
                self._stop_at_run_deadline()
                error = self._past_call_deadline(error)
                break
            if attempts:
                self.stats.retries += 1
            attempts += 1
            request_id = outcome.request_id or request_id
            if outcome.content is not None:
                usage = outcome.usage
                self.cache.put(cache_key, answer_record(outcome.content, outcome.request_id, usage,
                                                        outcome.model or model))
                self.stats.calls_made += 1
                return CallResult(True, outcome.content, None, outcome.request_id, usage, False, attempts)
            error = outcome.error or "unknown error"
            if outcome.rename_max_tokens and "max_tokens" in sampling:
                # Newer models refuse max_tokens and want max_completion_tokens; ask again at once.
                sampling = {("max_completion_tokens" if k == "max_tokens" else k): v for k, v in sampling.items()}
                continue
            if not outcome.retryable:
                break
            if not await self._wait_to_retry(attempts, outcome.retry_after, call_ends):
                error = self._past_call_deadline(error)
                break
        self.stats.calls_failed += 1
        return CallResult(False, None, scrub(error, self.settings.api_key), request_id, usage, False, attempts)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(_MAX_BACKOFF, self.settings.backoff_base * 2 ** (attempt - 1))
        delay = self._rng.uniform(0, ceiling)  # full jitter: spreads a thundering herd of retries
        return max(delay, min(retry_after or 0.0, self.settings.max_retry_after))

    # -- deadlines: the run's (--deadline) ends the run, a call's (call_deadline) fails the call

    def _stop_at_run_deadline(self) -> None:
        deadline = self.settings.run_deadline
        if deadline is not None and deadline.remaining() <= 0:
            raise RunDeadlinePassed(deadline)

    def _time_left(self, call_ends: float) -> float:
        """Seconds until the first of the call's deadline and the run's."""
        left = call_ends - time.monotonic()
        deadline = self.settings.run_deadline
        return left if deadline is None else min(left, deadline.remaining())

    def _past_call_deadline(self, error: str) -> str:
        self.stats.count_error("deadline")
        # "timed out" first: to the pipeline, a call that ran out of time is the provider failing
        return (f"timed out: the call took longer than its deadline ({self.settings.call_deadline:g}s, retries "
                f"included); last error: {error}")

    async def _paced(self, estimate: int, call_ends: float) -> bool:
        """Wait for the rate limiter, no longer than the deadlines allow; False when they passed first."""
        if not self.limiter.holds():  # nothing to wait for: spare the timer
            return True
        left = self._time_left(call_ends)
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(self.limiter.acquire(estimate), left)
        except asyncio.TimeoutError:
            self._stop_at_run_deadline()
            return False
        return True

    async def _wait_to_retry(self, attempt: int, retry_after: float | None, call_ends: float) -> bool:
        """Sleep the backoff before the next attempt; False (without sleeping) when the call's deadline
        would pass first. A wait the run's deadline cuts short ends at it (the next attempt then stops)."""
        delay = self._backoff(attempt, retry_after)
        if time.monotonic() + delay >= call_ends:
            return False
        await asyncio.sleep(max(0.0, min(delay, self._time_left(call_ends))))
        return True

    # -- requests

    async def _attempt(self, messages: list[dict[str, str]], model: str, response_format: dict[str, Any],
                       sampling: dict[str, Any], seed: int | None, validate: Callable[[dict], str | None] | None,
                       estimate: int, call_ends: float) -> _Attempt:
        extra: dict[str, Any] = {} if seed is None else {"seed": seed}
        stats = self.stats
        secret = self.settings.api_key
        response = await self._send("/chat/completions", {"model": model, "messages": messages,
                                                          "response_format": response_format, **sampling, **extra},
                                    call_ends)
        if isinstance(response, _Attempt):
            return response
        request_id = response.headers.get("x-request-id")
        request_id = scrub(request_id, secret) if request_id is not None else None
        try:
            completion = scrub_in_place(response.json(), secret)
        except (ValueError, RecursionError):
            stats.count_error("malformed")
            return _Attempt(error="the response body is not JSON", retryable=True, request_id=request_id)
        answered = completion.get("id") if isinstance(completion, dict) else None
        request_id = request_id or (answered if isinstance(answered, str) else None)
        try:
            usage, answered_model, choice = read_completion(completion, model)
        except AnswerProblem as problem:
            stats.count_error(problem.kind)
            return _Attempt(error=f"{problem.kind}: {problem}", retryable=True, request_id=request_id)
        charge(stats, self.budget, model, usage)  # the model asked for: see charge
        self.limiter.record_usage(estimate, usage["input_tokens"] + usage["output_tokens"])
        try:
            # scrubbed again once parsed: inside the content string the key may hide behind JSON escapes
            content = scrub_in_place(parse_choice(choice, response_format, validate), secret)
        except AnswerProblem as problem:
            stats.count_error(problem.kind)
            return _Attempt(error=f"{problem.kind}: {problem}", retryable=True, request_id=request_id)
        return _Attempt(content=content, usage=usage, request_id=request_id, model=answered_model)

    async def _send(self, path: str, body: dict[str, Any], call_ends: float,
                    max_body: int | None = None) -> _httpx.Response | _Attempt:
        """One request through the run's slots, budget, deadlines and counters: the response, or why there is
        none. ``max_body`` replaces the settings' limit on the response body for this request."""
        stats = self.stats
        async with self._slots:
            # Checked and counted once a slot is free, right before the request goes out: callers waiting
            # for a slot must not slip past a limit the calls in flight reach meanwhile. A cost limit can
            # then be overshot only by the other calls in flight (none at concurrency 1).
            if self.budget is not None and not self.budget.allows():
                return _Attempt(over_budget=True)
            # One deadline for the whole request, reading included: the transports' timeouts are per read,
            # and a server sending a byte every few seconds would never meet them.
            timeout = min(self.settings.timeout, self._time_left(call_ends))
            if timeout <= 0:
                return _Attempt(past_deadline=True)
            count_requests(stats, self.budget, 1)
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            limit = _REQUEST_BODY_LIMIT.set(max_body)  # seen by the response hook, in this task only
            try:
                # The generic post skips the client's per-call walk of the typed parameters (a quarter
                # of the CPU per call at high concurrency); the body is plain JSON we built ourselves.
                client = self._clients[self._next_client]
                self._next_client = (self._next_client + 1) % len(self._clients)
                return await asyncio.wait_for(client.post(path, cast_to=_httpx.Response,
                                                          options=_NO_PER_REQUEST_TELEMETRY, body=body), timeout)
            except asyncio.TimeoutError:
                stats.count_error("timeout")
                return _Attempt(error=f"timed out after {timeout:.3g}s", retryable=True)
            except ResponseTooLarge as exc:
                # Not retried: the same request would most likely be answered the same way, and each try
                # reads the limit's worth again.
                stats.count_error("too_large")
                return _Attempt(error=str(exc), retryable=False)
            except openai.APIStatusError as exc:
                return self._status_failure(exc)
            except openai.APIConnectionError as exc:  # APITimeoutError is one of these
                lost = _lost_connection(exc)
                if isinstance(exc, openai.APITimeoutError) and lost is None:
                    stats.count_error("timeout")
                    return _Attempt(error=f"timed out after {self.settings.timeout:g}s", retryable=True)
                stats.count_error("connection")
                return _Attempt(error=f"connection failed: {one_line(lost or _transport_error(exc))}",
                                retryable=True)
            except _UNWRAPPED_TRANSPORT_ERRORS as exc:
                stats.count_error("connection")
                return _Attempt(error=f"connection failed: {one_line(exc)}", retryable=True)
            finally:
                _REQUEST_BODY_LIMIT.reset(limit)
                stats.in_flight -= 1

    async def embed(self, texts: list[str], model: str) -> tuple[list[list[float]] | None, str | None]:
        """The vectors of ``texts`` from `/embeddings` (one request: the endpoint's `input` array), under the
        retry policy, rate limits, deadlines and budget of completions: (vectors, None), or (None, why not).
        Nothing but numbers is kept from an answer, so there is no string in it to scrub."""
        stats = self.stats
        estimate = sum(len(text) for text in texts) // CHARS_PER_TOKEN + len(texts)
        error, attempts = "no attempt made", 0
        call_ends = time.monotonic() + self.settings.call_deadline
        while attempts <= self.settings.max_retries:
            self._stop_at_run_deadline()
            if self.budget is not None and not self.budget.allows():
                return None, BUDGET_EXHAUSTED
            if not await self._paced(estimate, call_ends):
                error = self._past_call_deadline(error)
                break
            response = await self._send("/embeddings", {"model": model, "input": texts}, call_ends, max(
                self.settings.max_response_bytes, len(texts) * EMBEDDING_RESPONSE_BYTES_PER_INPUT))
            if isinstance(response, _Attempt) and response.over_budget:
                return None, BUDGET_EXHAUSTED
            if isinstance(response, _Attempt) and response.past_deadline:
                self._stop_at_run_deadline()
                error = self._past_call_deadline(error)
                break
            if attempts:
                stats.retries += 1
            attempts += 1
            if isinstance(response, _Attempt):
                failure = response
            else:
                try:
                    body = response.json()
                    vectors = read_embeddings(body, len(texts))
                    usage = usage_of(body.get("usage"))
                except (ValueError, RecursionError, AnswerProblem) as exc:
                    stats.count_error("malformed")
                    failure = _Attempt(error=f"malformed embeddings: {exc}", retryable=True)
                else:
                    tokens = usage["input_tokens"] or estimate
                    charge(stats, self.budget, model, {"input_tokens": tokens})  # the model asked for
                    self.limiter.record_usage(estimate, tokens)
                    stats.calls_made += 1
                    return vectors, None
            error = failure.error or "unknown error"
            if not failure.retryable:
                break
            if not await self._wait_to_retry(attempts, failure.retry_after, call_ends):
                error = self._past_call_deadline(error)
                break
        stats.calls_failed += 1
        return None, scrub(error, self.settings.api_key)

    def _status_failure(self, exc: openai.APIStatusError) -> _Attempt:
        status = exc.status_code
        retry_after = retry_delay_from_headers(exc.response.headers if exc.response is not None else None,
                                               self.settings.max_retry_after)
        request_id = scrub(exc.request_id, self.settings.api_key) if exc.request_id else None
        if status == 429:
            self.stats.count_error("rate_limit")
            # A quota error will not clear by waiting; everything else with 429 will.
            if _error_code(exc) == "insufficient_quota":
                return _Attempt(error="429 insufficient quota", retryable=False, request_id=request_id)
            self.limiter.pause_for(retry_after or 0.0)
            return _Attempt(error="429 rate limited", retryable=True, retry_after=retry_after,
                            request_id=request_id)
        retryable = status >= 500 or status in (408, 409)
        self.stats.count_error("server_error" if status >= 500 else f"http_{status}")
        message = scrub(_first_line(exc), self.settings.api_key)
        return _Attempt(error=f"{status} {message}", retryable=retryable, retry_after=retry_after,
                        request_id=request_id,
                        rename_max_tokens=status == 400 and "max_completion_tokens" in message)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Keep the garbage collector off the objects that exist now (modules, the plan) while calls run.

    A full collection walks every object in the process, ~100 ms with the compiler, the openai
    client and scikit-learn loaded, and all calls in flight wait for it. Frozen objects are skipped
    (gc.freeze), so collections during the calls walk only what the calls create.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _http_client(connections: int, timeout: float, max_body: int = MAX_RESPONSE_BYTES) -> Any:
    """The HTTP layer under the openai client: the SDK's aiohttp transport where installed.

    At 32 calls in flight the client's CPU per call decides the throughput, and aiohttp's C
    HTTP parser costs about a quarter less per call than the default httpx transport (which the
    SDK's own README recommends it for). Without aiohttp, the default transport does the same job.
    Either way no response body is read past ``max_body`` bytes (see _body_limit).
    """
    options = {"limits": _httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
               "timeout": timeout, "verify": _shared_tls_context(),
               "event_hooks": {"response": [_body_limit(max_body)]}}
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client(**options)
        except RuntimeError:  # the SDK was installed without its aiohttp extra
            pass
    return openai.DefaultAsyncHttpxClient(**options)


# A request's own limit on its response body, when it differs from the client's (an embeddings request).
_REQUEST_BODY_LIMIT: ContextVar[int | None] = ContextVar("taskc_request_body_limit", default=None)


def _body_limit(default: int) -> Callable[[Any], Awaitable[None]]:
    """A response hook that stops reading a body at the request's limit (``default`` unless _send set
    another) with ResponseTooLarge.

    Both transports hand the raw bytes to httpx, which decompresses them in pieces of at most 1 MiB,
    so counting what its `aiter_bytes` yields counts the decompressed body as it arrives: a 1 MB gzip
    bomb is stopped after ``limit`` bytes of it, not after a gigabyte. Every reader of the body goes
    through `aiter_bytes` (the SDK reading an answer or an error body, `aread`, `json`), so the hook
    replaces it on the response; a declared Content-Length over the limit is refused before reading.
    """
    async def hook(response: Any) -> None:
        limit = _REQUEST_BODY_LIMIT.get() or default
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(limit)
        read = response.aiter_bytes

        async def capped(chunk_size: int | None = None) -> AsyncIterator[bytes]:
            size = 0
            async with aclosing(read(chunk_size)) as chunks:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise ResponseTooLarge(limit)
                    yield chunk

        response.aiter_bytes = capped
    return hook


@functools.cache
def _shared_tls_context() -> Any:
    """One TLS context for every client of the process: the default one (system or certifi CAs,
    honouring SSL_CERT_FILE and SSL_CERT_DIR), which each client would otherwise build again,
    loading the CA bundle each time (~40 ms)."""
    make = getattr(_httpx, "create_ssl_context", None)
    return make() if make is not None else True


@dataclass(frozen=True)
class _Attempt:
    content: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None
    usage: dict[str, int] = field(default_factory=dict)
    request_id: str | None = None
    model: str | None = None
    rename_max_tokens: bool = False  # the server asked for max_completion_tokens instead of max_tokens
    over_budget: bool = False  # not sent: the run's budget was spent while it waited for a slot
    past_deadline: bool = False  # not sent: the call's or the run's deadline passed while it waited for a slot


def _lost_connection(exc: BaseException) -> BaseException | None:
    """The lost or refused connection behind a failed request, if that (not a timeout) is what failed.

    The SDK's aiohttp transport reports every aiohttp connection error, a refused connection or a
    reset included, as a connect timeout; the aiohttp error it chains tells the two apart.
    """
    link: BaseException | None = exc
    seen = 0
    while link is not None and seen < 10:
        if isinstance(link, (TimeoutError, asyncio.TimeoutError)):  # two classes before Python 3.11
            return None
        if _AiohttpConnectionError is not None and isinstance(link, _AiohttpConnectionError):
            return link
        link, seen = link.__cause__ or link.__context__, seen + 1
    return None


def _transport_error(exc: BaseException) -> BaseException:
    """The error the SDK wrapped: its own message ("Connection error.") says less than the
    transport's ("peer closed connection without sending complete message body")."""
    cause = exc.__cause__
    return cause if cause is not None and str(cause).strip() else exc


def _error_code(exc: openai.APIStatusError) -> str | None:
    # Bodies vary: {"code": ...}, {"error": {"code": ...}}, {"error": "quota exceeded"}, or no JSON at all.
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error")
    code = body.get("code") or (inner.get("code") if isinstance(inner, dict) else None)
    return code if isinstance(code, str) else None


def one_line(exc: BaseException) -> str:
    # Transport errors spread over lines ("400, message:\n  Not enough data ..."); keep all of it.
    if type(exc).__name__ == "ServerDisconnectedError":  # aiohttp's text is a repr of the partial reply
        return "the server closed the connection before a complete reply"
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
