"""Runtime provider: the client, one structured-output call done reliably.

Everything that talks to an OpenAI-compatible endpoint goes through `LLMClient`:
`complete_json` answers from the response cache when it can, and otherwise makes
the call with the official async `openai` client under a concurrency bound and the
RPM/TPM limiter, retrying 429s, 5xx, timeouts, resets and malformed, truncated or
schema-invalid answers with exponential backoff and full jitter (a server's
Retry-After wins when it is longer, up to `MAX_RETRY_AFTER`); a request the server
refuses in part (structured outputs, a sampling parameter: see adjustments.py) is
sent again at once without that part, and so is every later call of the run. `embed`
does the same for `/embeddings`. It never raises for a provider problem: the caller gets a
`CallResult` (or a `CallFailure`) that says what happened and of which
`ErrorKind`. Only the user's own limit on time does raise: past the run's
`--deadline` no request starts and `RunDeadlinePassed` ends the run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import openai

from ...compiler import CHARS_PER_TOKEN
from ..cache import ResponseCache
from ..limiter import RateLimiter
from .adjustments import MIN_COMPLETION_TOKENS, ServerAdjustments, refusal_of, server_message
from .answers import (
    AnswerProblem,
    answer_record,
    charged_embedding_usage,
    charged_usage,
    embedding_tokens,
    parse_choice,
    read_completion,
    read_embeddings,
)
from .budget import Budget, CallStats, charge, count_requests
from .outcome import BUDGET_EXHAUSTED, CallFailure, CallResult, ErrorKind, status_kind
from .redaction import scrub, scrub_in_place
from .settings import ProviderSettings, RunDeadlinePassed
from .transport import (
    NO_PER_REQUEST_TELEMETRY,
    REQUEST_BODY_LIMIT,
    UNWRAPPED_TRANSPORT_ERRORS,
    ResponseTooLarge,
    client_options,
    error_code,
    http_client,
    httpx,
    lost_connection,
    one_line,
    retry_delay_from_headers,
    transport_error,
)

# An embeddings answer grows with its inputs (a 4,096-number vector is ~64 KiB of JSON): each input of a
# request raises that request's limit by this much, so inputs_per_request up to 2048 stays possible.
EMBEDDING_RESPONSE_BYTES_PER_INPUT = 64 * 1024
_MAX_BACKOFF = 30.0
_DEFAULT_OUTPUT_ESTIMATE = 512
_CONNECTIONS_PER_POOL = 32


class LLMClient:
    """Cached, rate-limited, retrying structured-output calls against an OpenAI-compatible endpoint (without a
    cache, as for embeddings, every completion goes to the network)."""

    def __init__(self, settings: ProviderSettings, cache: ResponseCache | None, budget: Budget | None = None,
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
        self._clients = [openai.AsyncOpenAI(**client_options(settings), http_client=http_client(
                             per_pool * 2, settings.timeout, settings.max_response_bytes, settings.base_url))
                         for _ in range(shards)]
        self._next_client = 0
        # A provider that fails the first calls of a phase for good (see _settle) gets no more of them.
        self._reached = False  # some call got an answer (usable or not) from the provider
        self._unreached = 0  # calls given up on a failure of the provider itself, while none got an answer
        self._provider_down: CallFailure | None = None  # set once that count reaches the calls in flight
        # What the server refused so far (the run's, shared by every phase through the budget): later calls
        # leave it out, see adjustments.py
        self.adjustments = budget.adjustments if budget is not None else ServerAdjustments()

    async def complete_json(self, *, messages: list[dict[str, str]], model: str, response_format: dict[str, Any],
                            sampling: dict[str, Any], seed: int | None, cache_key: str,
                            validate: Callable[[dict], str | None] | None = None) -> CallResult:
        """One call, from the cache or the network; raises RunDeadlinePassed only (see the module doc)."""
        cached = self.cache.get(cache_key) if self.cache is not None else None
        if cached is not None:
            self.stats.calls_cached += 1
            return CallResult(True, cached["content"], None, cached.get("request_id"), cached.get("usage", {}),
                              True, 0)
        estimate = sum(len(m.get("content") or "") for m in messages) // CHARS_PER_TOKEN \
            + int(sampling.get("max_tokens") or _DEFAULT_OUTPUT_ESTIMATE)
        error, request_id, attempts = "no attempt made", None, 0
        kind = ErrorKind.NO_ANSWER
        usage: dict[str, int] = {}
        call_ends = time.monotonic() + self.settings.call_deadline
        while attempts <= self.settings.max_retries:
            self._stop_at_run_deadline()
            if self._provider_down is not None:
                return self._not_sent(request_id, attempts)
            if self.budget is not None and not self.budget.allows():  # spent already: do not even queue
                # Not a failure of the call: a rerun with a larger budget makes it.
                return CallResult(False, None, BUDGET_EXHAUSTED, request_id, usage, False, attempts,
                                  ErrorKind.BUDGET_EXHAUSTED)
            if not await self._paced(estimate, call_ends):
                error, kind = self._past_call_deadline(error), ErrorKind.DEADLINE
                break
            outcome = await self._attempt(messages, model, response_format, sampling, seed, validate, estimate,
                                          call_ends)
            if outcome.over_budget:
                return CallResult(False, None, BUDGET_EXHAUSTED, request_id, usage, False, attempts,
                                  ErrorKind.BUDGET_EXHAUSTED)
            if outcome.past_deadline:
                self._stop_at_run_deadline()
                error, kind = self._past_call_deadline(error), ErrorKind.DEADLINE
                break
            if attempts:
                self.stats.retries += 1
            attempts += 1
            request_id = outcome.request_id or request_id
            if outcome.content is not None:
                usage = outcome.usage
                if self.cache is not None:
                    self.cache.put(cache_key, answer_record(outcome.content, outcome.request_id, usage,
                                                            outcome.model or model))
                self.stats.calls_made += 1
                self._reached = True
                return CallResult(True, outcome.content, None, outcome.request_id, usage, False, attempts)
            error, kind = outcome.error or "unknown error", outcome.kind
            if outcome.rename_max_tokens and "max_tokens" in sampling:
                # Newer models refuse max_tokens and want max_completion_tokens; ask again at once (and so do
                # the later calls, from the start).
                self.adjustments.rename_max_tokens()
                sampling = {("max_completion_tokens" if k == "max_tokens" else k): v for k, v in sampling.items()}
                continue
            if outcome.completion_limit is not None and (capped := self._capped(sampling, outcome.completion_limit,
                                                                                error)) is not None:
                sampling = capped
                continue  # ask again at once, for no more than the server allows
            if outcome.refused_parameter is not None:
                self._drop(outcome.refused_parameter, error)
                continue  # ask again at once, without it
            if outcome.format_step is not None and self.adjustments.step_down_from(
                    outcome.format_step, response_format, self._refusal(error)):
                continue  # ask again at once, with the next format down the ladder
            if not outcome.retryable:
                break
            if not await self._wait_to_retry(attempts, outcome.retry_after, call_ends):
                error, kind = self._past_call_deadline(error), ErrorKind.DEADLINE
                break
        self.stats.calls_failed += 1
        error = scrub(error, self.settings.api_key)
        self._settle(kind, error)
        return CallResult(False, None, error, request_id, usage, False, attempts, kind)

    # -- a provider that is down: a phase stops asking it once its first calls have failed for good

    def _settle(self, kind: ErrorKind, error: str) -> None:
        """Count a call given up on. While no call of this client got an answer, one that failed on the
        provider itself (no connection, timeouts, HTTP errors: a wrong URL, key or model, a server that is
        down) counts towards giving up on the provider: once as many have failed as there are calls in
        flight (--concurrency), later calls are not sent (`_not_sent`) instead of each retrying the same
        dead endpoint, which took minutes a phase (hours for a server that takes requests and never
        answers). An answer that is unusable is still an answer: the provider is up."""
        if kind in (ErrorKind.BAD_ANSWER, ErrorKind.TOO_LARGE):
            self._reached = True
        elif kind.unreachable and not self._reached:
            self._unreached += 1
            if self._unreached >= self.settings.concurrency and self._provider_down is None:
                self._provider_down = CallFailure(kind, f"the provider failed the first {self._unreached} calls "
                                                        f"of this phase ({error})")

    def _given_up(self, attempts: int) -> CallFailure:
        """The failure of a call stopped because the provider is down: "not sent", or "not retried" after
        attempts of its own."""
        down = self._provider_down
        assert down is not None
        self.stats.calls_failed += 1
        return CallFailure(down.kind, f"{'not retried' if attempts else 'not sent'}: {down.message}")

    def _not_sent(self, request_id: str | None, attempts: int) -> CallResult:
        failure = self._given_up(attempts)
        return CallResult(False, None, failure.message, request_id, {}, False, attempts, failure.kind)

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

    # -- a server that refuses part of the planned request (see adjustments.py)

    def _capped(self, sampling: dict[str, Any], limit: tuple[int, bool], error: str) -> dict[str, Any] | None:
        """``sampling`` asking for no more completion tokens than a refusal allows (a limit of the model holds for
        every later call of the run too); None when it asks for no more already, or the limit leaves too few to
        answer in."""
        tokens, model_wide = limit
        key = "max_completion_tokens" if "max_completion_tokens" in sampling else "max_tokens"
        asked = sampling.get(key)
        if not isinstance(asked, int) or tokens >= asked or tokens < MIN_COMPLETION_TOKENS:
            return None
        if model_wide:
            self.adjustments.cap_completion(tokens, self._refusal(error))
        return {**sampling, key: tokens}

    def _drop(self, parameter: str, error: str) -> None:
        """Leave ``parameter`` out of every later call of the run (a call refused for it before another
        call's refusal came asks again without it just the same)."""
        self.adjustments.drop(parameter, self._refusal(error))

    def _refusal(self, error: str) -> str:
        """The server's refusal as a note shows it: "400 <its message>", scrubbed of the key."""
        return scrub(error, self.settings.api_key)

    # -- requests

    async def _attempt(self, messages: list[dict[str, str]], model: str, response_format: dict[str, Any],
                       sampling: dict[str, Any], seed: int | None, validate: Callable[[dict], str | None] | None,
                       estimate: int, call_ends: float) -> _Attempt:
        extra: dict[str, Any] = {} if seed is None else {"seed": seed}
        stats = self.stats
        secret = self.settings.api_key
        step, sent = 0, frozenset[str]()

        def body() -> dict[str, Any]:
            # built once a slot is free: a call that queued for one before the server refused a format or a
            # parameter must not send it again
            nonlocal step, sent
            request = self.adjustments.adjusted({"model": model, "messages": messages,
                                                 "response_format": response_format, **sampling, **extra},
                                                response_format)
            stats.record_adjusted(request, self.adjustments)
            step, sent = request.format_step, frozenset(request.body)
            return request.body

        response = await self._send("/chat/completions", body, call_ends)
        if isinstance(response, _Attempt):
            if response.refused_parameter is not None and response.refused_parameter not in sent:
                # not this request's to refuse (the message names a parameter it did not send)
                response = replace(response, refused_parameter=None)
            return replace(response, format_step=step) if response.refused_format else response
        request_id = response.headers.get("x-request-id")
        request_id = scrub(request_id, secret) if request_id is not None else None
        try:
            completion = scrub_in_place(response.json(), secret)
        except (ValueError, RecursionError):
            stats.count_error("malformed")
            return _Attempt(error="the response body is not JSON", retryable=True, request_id=request_id,
                            kind=ErrorKind.BAD_ANSWER)
        answered = completion.get("id") if isinstance(completion, dict) else None
        request_id = request_id or (answered if isinstance(answered, str) else None)
        try:
            usage, answered_model, choice = read_completion(completion, model)
        except AnswerProblem as problem:
            stats.count_error(problem.kind)
            return _Attempt(error=f"{problem.kind}: {problem}", retryable=True, request_id=request_id,
                            kind=ErrorKind.BAD_ANSWER)
        usage, estimated = charged_usage(completion, usage, messages, response_format, choice)
        charge(stats, self.budget, model, usage, estimated=estimated)  # the model asked for: see charge
        self.limiter.record_usage(estimate, usage["input_tokens"] + usage["output_tokens"])
        try:
            # scrubbed again once parsed: inside the content string the key may hide behind JSON escapes
            content = scrub_in_place(parse_choice(choice, response_format, validate), secret)
        except AnswerProblem as problem:
            stats.count_error(problem.kind)
            return _Attempt(error=f"{problem.kind}: {problem}", retryable=True, request_id=request_id,
                            kind=ErrorKind.BAD_ANSWER)
        return _Attempt(content=content, usage=usage, request_id=request_id, model=answered_model)

    async def _send(self, path: str, body: Callable[[], dict[str, Any]], call_ends: float,
                    max_body: int | None = None) -> httpx.Response | _Attempt:
        """One request through the run's slots, budget, deadlines and counters: the response, or why there is
        none. ``body`` builds the request's body once a slot is free; ``max_body`` replaces the settings' limit
        on the response body for this request."""
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
            limit = REQUEST_BODY_LIMIT.set(max_body)  # seen by the response hook, in this task only
            try:
                # The generic post skips the client's per-call walk of the typed parameters (a quarter
                # of the CPU per call at high concurrency); the body is plain JSON we built ourselves.
                client = self._clients[self._next_client]
                self._next_client = (self._next_client + 1) % len(self._clients)
                return await asyncio.wait_for(client.post(path, cast_to=httpx.Response,
                                                          options=NO_PER_REQUEST_TELEMETRY, body=body()), timeout)
            except asyncio.TimeoutError:
                stats.count_error("timeout")
                return _Attempt(error=f"timed out after {timeout:.3g}s", retryable=True, kind=ErrorKind.TIMEOUT)
            except ResponseTooLarge as exc:
                # Not retried: the same request would most likely be answered the same way, and each try
                # reads the limit's worth again.
                stats.count_error("too_large")
                return _Attempt(error=str(exc), retryable=False, kind=ErrorKind.TOO_LARGE)
            except openai.APIStatusError as exc:
                return self._status_failure(exc)
            except openai.APIConnectionError as exc:  # APITimeoutError is one of these
                lost = lost_connection(exc)
                if isinstance(exc, openai.APITimeoutError) and lost is None:
                    stats.count_error("timeout")
                    return _Attempt(error=f"timed out after {self.settings.timeout:g}s", retryable=True,
                                    kind=ErrorKind.TIMEOUT)
                stats.count_error("connection")
                return _Attempt(error=f"connection failed: {one_line(lost or transport_error(exc))}",
                                retryable=True, kind=ErrorKind.CONNECTION)
            except UNWRAPPED_TRANSPORT_ERRORS as exc:
                stats.count_error("connection")
                return _Attempt(error=f"connection failed: {one_line(exc)}", retryable=True, kind=ErrorKind.CONNECTION)
            finally:
                REQUEST_BODY_LIMIT.reset(limit)
                stats.in_flight -= 1

    async def embed(self, texts: list[str], model: str) -> tuple[list[list[float]] | None, CallFailure | None]:
        """The vectors of ``texts`` from `/embeddings` (one request: the endpoint's `input` array), under the
        retry policy, rate limits, deadlines and budget of completions: (vectors, None), or (None, why not).
        Nothing but numbers is kept from an answer, so there is no string in it to scrub."""
        stats = self.stats
        estimate = embedding_tokens(texts)
        error, attempts = "no attempt made", 0
        kind = ErrorKind.NO_ANSWER
        call_ends = time.monotonic() + self.settings.call_deadline
        while attempts <= self.settings.max_retries:
            self._stop_at_run_deadline()
            if self._provider_down is not None:
                return None, self._given_up(attempts)
            if self.budget is not None and not self.budget.allows():
                return None, CallFailure.budget_exhausted()
            if not await self._paced(estimate, call_ends):
                error, kind = self._past_call_deadline(error), ErrorKind.DEADLINE
                break
            response = await self._send("/embeddings", lambda: {"model": model, "input": texts}, call_ends, max(
                self.settings.max_response_bytes, len(texts) * EMBEDDING_RESPONSE_BYTES_PER_INPUT))
            if isinstance(response, _Attempt) and response.over_budget:
                return None, CallFailure.budget_exhausted()
            if isinstance(response, _Attempt) and response.past_deadline:
                self._stop_at_run_deadline()
                error, kind = self._past_call_deadline(error), ErrorKind.DEADLINE
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
                    usage, estimated = charged_embedding_usage(body, texts)
                except (ValueError, RecursionError, AnswerProblem) as exc:
                    stats.count_error("malformed")
                    failure = _Attempt(error=f"malformed embeddings: {exc}", retryable=True, kind=ErrorKind.BAD_ANSWER)
                else:
                    charge(stats, self.budget, model, usage, estimated=estimated)  # the model asked for
                    self.limiter.record_usage(estimate, usage["input_tokens"])
                    stats.calls_made += 1
                    self._reached = True
                    return vectors, None
            error, kind = failure.error or "unknown error", failure.kind
            if not failure.retryable:
                break
            if not await self._wait_to_retry(attempts, failure.retry_after, call_ends):
                error, kind = self._past_call_deadline(error), ErrorKind.DEADLINE
                break
        stats.calls_failed += 1
        error = scrub(error, self.settings.api_key)
        self._settle(kind, error)
        return None, CallFailure(kind, error)

    def _status_failure(self, exc: openai.APIStatusError) -> _Attempt:
        status = exc.status_code
        retry_after = retry_delay_from_headers(exc.response.headers if exc.response is not None else None,
                                               self.settings.max_retry_after)
        request_id = scrub(exc.request_id, self.settings.api_key) if exc.request_id else None
        if status == 429:
            self.stats.count_error("rate_limit")
            # A quota error will not clear by waiting; everything else with 429 will.
            if error_code(exc) == "insufficient_quota":
                return _Attempt(error="429 insufficient quota", retryable=False, request_id=request_id,
                                kind=ErrorKind.QUOTA)
            self.limiter.pause_for(retry_after or 0.0)
            return _Attempt(error="429 rate limited", retryable=True, retry_after=retry_after,
                            request_id=request_id, kind=ErrorKind.RATE_LIMITED)
        retryable = status >= 500 or status in (408, 409)
        self.stats.count_error("server_error" if status >= 500 else f"http_{status}")
        message = scrub(server_message(exc), self.settings.api_key)
        refusal = refusal_of(status, message, getattr(exc, "param", None))
        return _Attempt(error=f"{status} {message}", retryable=retryable, retry_after=retry_after,
                        request_id=request_id, kind=status_kind(status),
                        rename_max_tokens=refusal.rename_max_tokens, completion_limit=refusal.completion_limit,
                        refused_parameter=refusal.parameter, refused_format=refusal.response_format)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()



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
    refused_format: bool = False  # the server refused the request's response_format (see format_ladder)
    refused_parameter: str | None = None  # the sampling parameter the server refused (see adjustments.py)
    completion_limit: tuple[int, bool] | None = None  # the completion tokens a refusal allows (completion_limit)
    format_step: int | None = None  # of format_ladder, the step whose format the server refused
    over_budget: bool = False  # not sent: the run's budget was spent while it waited for a slot
    past_deadline: bool = False  # not sent: the call's or the run's deadline passed while it waited for a slot
    kind: ErrorKind = ErrorKind.NO_ANSWER  # of the error, when there is one
