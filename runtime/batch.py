"""Runtime stage: run the generation plan through the OpenAI Batch API (`--batch`).

For plans too large (or too cheap to hurry) for online calls: the calls that are
not cached yet become Batch API input lines (custom_id = the call's cache key),
split so no batch exceeds the provider's limits (50,000 requests, 200 MB), are
uploaded and submitted, polled until done, and every answer goes through the
same `parse_answer` check as an online answer before it enters the response
cache. The dataset is then assembled from the cache exactly as after an online
run. Each submitted batch is journaled in the cache database before anything
waits on it, and carries a fingerprint in its metadata, so a killed run resumes
polling the batches it already paid for instead of submitting them again. Lines
that failed are resubmitted in a further round, a bounded number of times. A line
the server refused a part of that the run can do without (structured outputs, a
sampling parameter, too many completion tokens: see provider/adjustments.py) goes
in the next round without it, as every later call of the run does, online or not;
such a round does not count against the bound. What the server refused is kept in
the journal too, so a killed run's rerun sends its lines as the server takes them
from its first round (a round can take hours).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from ..compiler import BATCH_PRICE_FACTOR, ExitStatus, TaskcError, counted, sha256_hex
from .cache import ResponseCache
from .progress import GENERATION, TRAINING, ProgressReporter, ProgressState
from .provider import (
    MIN_COMPLETION_TOKENS,
    AdjustedRequest,
    AnswerProblem,
    Budget,
    CallFailure,
    CallStats,
    ErrorKind,
    ProviderSettings,
    Refusal,
    RunDeadlinePassed,
    answer_record,
    charge,
    charged_embedding_usage,
    charged_usage,
    count_requests,
    one_line,
    parse_choice,
    read_completion,
    read_embeddings,
    refusal_of,
    scrub,
    scrub_in_place,
    status_kind,
    sync_client,
)


class BatchableCall(Protocol):
    """What a call needs to go through the Batch API: a generation call or a classification call."""

    @property
    def cache_key(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def response_format(self) -> dict[str, Any]: ...
    def request_body(self) -> dict[str, Any]: ...


CHAT_ENDPOINT, EMBEDDINGS_ENDPOINT = "/v1/chat/completions", "/v1/embeddings"  # a batch holds one endpoint's
MAX_REQUESTS_PER_BATCH = 50_000
MAX_BYTES_PER_BATCH = 200 * 1024 * 1024
MAX_ROUNDS = 3  # the first submission plus two resubmissions of failed lines
# Rounds beyond MAX_ROUNDS for lines the server refused a part of (at most one per adjustment the run can make:
# two steps down the format ladder, each droppable parameter, max_completion_tokens, a completion cap).
MAX_ADJUSTED_ROUNDS = 7
_TERMINAL = {"completed", "failed", "expired", "cancelled"}
# A batch that ended so is not submitted again: the same input file fails validation again, and a cancelled
# batch was stopped by someone on purpose. An expired one (its window passed first) is tried again.
_NOT_RESUBMITTED = {"failed", "cancelled"}
COMPLETION_WINDOW = 24 * 3600  # seconds; the only window the Batch API offers ("24h")
# Past its window (expires_at, else created_at + the window) plus this, a batch that is still not in a final
# state is given up on: polling has a bound even without --deadline.
OVERDUE_GRACE = 3600
_JOURNAL_PREFIX = "batch/"
_ADJUSTMENTS_RECORD = "server-adjustments"  # the journal's record of what the server refused (see _recall)


class BatchProviderError(TaskcError):
    """The provider refused or failed an upload, a submission or a status poll of the Batch API."""

    exit_status = ExitStatus.RUNTIME_FAILURE


@dataclass(frozen=True)
class BatchChunk:
    keys: tuple[str, ...]
    data: bytes

    @property
    def fingerprint(self) -> str:
        return sha256_hex("\n".join(self.keys))[:32]


def batch_input_lines(calls: Sequence[BatchableCall], url: str = CHAT_ENDPOINT,
                      body: Callable[[BatchableCall], dict[str, Any]] | None = None) -> list[tuple[str, bytes]]:
    """One Batch API input line per call, as (cache key, JSON line bytes); ``body``: the request body of a call
    (its planned one unless told)."""
    lines = []
    for call in calls:
        request = call.request_body() if body is None else body(call)
        line = {"custom_id": call.cache_key, "method": "POST", "url": url, "body": request}
        lines.append((call.cache_key, (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")))
    return lines


def split_batches(lines: Sequence[tuple[str, bytes]], max_requests: int = MAX_REQUESTS_PER_BATCH,
                  max_bytes: int = MAX_BYTES_PER_BATCH) -> list[BatchChunk]:
    """Group input lines into batches that each respect the request and size limits."""
    chunks: list[BatchChunk] = []
    keys: list[str] = []
    parts: list[bytes] = []
    size = 0
    for key, line in lines:
        if len(line) > max_bytes:
            raise ValueError(f"one batch request is {len(line)} bytes, over the {max_bytes}-byte batch limit")
        if keys and (len(keys) >= max_requests or size + len(line) > max_bytes):
            chunks.append(BatchChunk(tuple(keys), b"".join(parts)))
            keys, parts, size = [], [], 0
        keys.append(key)
        parts.append(line)
        size += len(line)
    if keys:
        chunks.append(BatchChunk(tuple(keys), b"".join(parts)))
    return chunks


def run_batch_generation(calls: Sequence[BatchableCall], cache: ResponseCache, settings: ProviderSettings,
                         budget: Budget, stats: CallStats, reporter: ProgressReporter, *,
                         validate: Callable[[dict], str | None] | None = None,
                         max_requests: int | None = None, max_bytes: int | None = None,
                         phase: str = GENERATION, step: str = "batch") -> dict[str, CallFailure]:
    """Make every uncached call through the Batch API; return {cache key: why not} for those that failed.
    Progress goes to ``reporter`` under ``phase`` and ``step`` (see ProgressState); its final state is the
    caller's to show, with what the caller knows of the answers (see ``batch_outcome_state``)."""
    max_requests = max_requests or MAX_REQUESTS_PER_BATCH
    max_bytes = max_bytes or MAX_BYTES_PER_BATCH
    client = sync_client(settings)
    runner = _BatchRunner(client, cache, settings, budget, stats, reporter, {c.cache_key: c for c in calls},
                          validate, phase=phase, step=step)
    return _driven(runner, client, max_requests, max_bytes, "the model")


def batch_outcome_state(calls: int, failures: dict[str, CallFailure], stats: CallStats, phase: str, step: str
                        ) -> ProgressState:
    """The progress of a batched phase that has ended: every call done (failed ones too) but those the budget
    stopped, as an online phase counts them."""
    skipped = sum(failure.stopped_by_budget for failure in failures.values())
    return ProgressState(calls - skipped, calls, None, None,
                         len(failures) - skipped, stats.input_tokens, stats.output_tokens, stats.cost_usd, phase,
                         skipped, step)


def _driven(runner: _BatchRunner, client: openai.OpenAI, max_requests: int, max_bytes: int, model: str
            ) -> dict[str, CallFailure]:
    """Run ``runner`` to the end; a failure of the Batch API itself is a BatchProviderError naming ``model``."""
    try:
        return runner.run(max_requests, max_bytes)
    except openai.APIError as exc:
        if isinstance(exc, openai.APIStatusError) and exc.status_code in (404, 405, 501):
            # many OpenAI-compatible servers (vLLM, Ollama, llama.cpp, proxies) serve completions only
            raise BatchProviderError(
                f"the server has no Batch API ({exc.request.method} {exc.request.url.path} answered "
                f"{exc.status_code}): run without --batch, which makes the same calls online") from None
        # Submitted batches are journaled in the cache, so the same command resumes polling them.
        raise BatchProviderError(
            f"the Batch API failed: {scrub(one_line(exc), runner.settings.api_key)}.\nCheck --base-url / "
            f"OPENAI_BASE_URL, the key and {model}; submitted batches are remembered, so the same command "
            "resumes them.") from None
    finally:
        client.close()


@dataclass(frozen=True)
class EmbeddingRequest:
    """One `/v1/embeddings` request of a batch: its texts, and the keys their vectors are cached under."""

    keys: tuple[str, ...]
    texts: tuple[str, ...]
    model: str

    @property
    def cache_key(self) -> str:
        return sha256_hex("embedding-request\0" + "\0".join(self.keys))

    @property
    def response_format(self) -> dict[str, Any]:
        return {}

    def request_body(self) -> dict[str, Any]:
        return {"model": self.model, "input": list(self.texts)}


def run_batch_embeddings(requests: Sequence[EmbeddingRequest], cache: ResponseCache, settings: ProviderSettings,
                         budget: Budget, stats: CallStats, reporter: ProgressReporter,
                         encode: Callable[[list[float]], bytes], *, phase: str = TRAINING,
                         step: str = "embeddings, batch") -> dict[str, CallFailure]:
    """Ask for every request's vectors through the Batch API; each vector enters the cache (``encode``d) under
    its text's key. Returns {request key: why not} for the requests that failed."""
    client = sync_client(settings)
    runner = _EmbeddingsBatchRunner(client, cache, settings, budget, stats, reporter,
                                    {r.cache_key: r for r in requests}, encode, phase=phase, step=step)
    return _driven(runner, client, MAX_REQUESTS_PER_BATCH, MAX_BYTES_PER_BATCH, "finetune.base_model")


class _BatchRunner:
    def __init__(self, client: openai.OpenAI, cache: ResponseCache, settings: ProviderSettings, budget: Budget,
                 stats: CallStats, reporter: ProgressReporter, calls: dict[str, BatchableCall],
                 validate: Callable[[dict], str | None] | None = None, *, phase: str = GENERATION,
                 step: str = "batch") -> None:
        self.client, self.cache, self.settings = client, cache, settings
        self.phase, self.step = phase, step  # what the progress calls these calls
        self.budget, self.stats, self.reporter, self.calls = budget, stats, reporter, calls
        self.validate = validate  # the caller's check of an answer's shape, as in LLMClient.complete_json
        self.failures: dict[str, CallFailure] = {}
        self.answered: set[str] = set()  # keys of the calls with an answer in the cache, kept as they arrive
        self.not_retried: set[str] = set()  # keys of a failed or cancelled batch: not submitted again
        self.done = 0
        # What the run's server refused (shared with every phase's online client), and what each line was sent
        # as, to tell a refusal of what it sent from one of a part it no longer sends.
        self.adjustments = budget.adjustments
        self.sent: dict[str, AdjustedRequest] = {}
        self.adjusted = False  # a line of the batches waited on was refused a part the run can do without

    def run(self, max_requests: int, max_bytes: int) -> dict[str, CallFailure]:
        self.answered = self._answered_already()
        self.stats.calls_cached += len(self.answered)
        self.done = len(self.answered)
        self.reporter.start(len(self.calls), self.phase, self.step)
        self._recall()
        # First finish what an earlier, interrupted run submitted (it is paid for already).
        self._wait_and_ingest(self._unfinished_journal())
        round_number, rounds = 0, MAX_ROUNDS
        while round_number < rounds:
            pending = [call for key, call in self.calls.items()
                       if key not in self.answered and key not in self.not_retried]
            if not pending:
                break
            pending = self._within_budget(pending)
            if not pending:
                break
            if round_number:
                self.stats.retries += len(pending)
            lines = batch_input_lines(pending, self.endpoint, self._line_body)
            names = [self._submit(chunk) for chunk in split_batches(lines, max_requests, max_bytes)]
            self.adjusted = False
            self._wait_and_ingest(names)
            if self.adjusted:
                self._remember()
                if rounds < MAX_ROUNDS + MAX_ADJUSTED_ROUNDS:
                    rounds += 1  # the refused lines go again as the server takes them: not a round lost
            round_number += 1
        for key in self.calls:
            if key not in self.answered and key not in self.failures:
                self.failures[key] = (CallFailure.budget_exhausted() if self.budget.exhausted else
                                      CallFailure(ErrorKind.NO_ANSWER, "no answer from the batch"))
        self.stats.calls_failed += sum(1 for failure in self.failures.values() if not failure.stopped_by_budget)
        return self.failures

    def _within_budget(self, pending: list[BatchableCall]) -> list[BatchableCall]:
        if not self.budget.allows():
            return []
        room = self.budget.room()  # what the whole run may still spend, not only this phase
        if room is not None and room < len(pending):
            self.budget.exhausted = True
            pending = pending[:room]
        return pending

    # -- submission

    def _submit(self, chunk: BatchChunk) -> str:
        # The same calls may be tried more than once (lines that failed); each try has its own tag.
        attempt = 0
        while (entry := self.cache.journal_get(f"{_JOURNAL_PREFIX}{chunk.fingerprint}-{attempt}")) is not None:
            if entry.get("state") == "submitted":
                return f"{_JOURNAL_PREFIX}{chunk.fingerprint}-{attempt}"  # still running: wait for it
            attempt += 1
        tag = f"{chunk.fingerprint}-{attempt}"
        name = f"{_JOURNAL_PREFIX}{tag}"
        batch_id = self._find_submitted(tag)
        if batch_id is None:
            uploaded = self.client.files.create(file=(f"taskc-batch-{tag}.jsonl", chunk.data), purpose="batch")
            batch = self.client.batches.create(input_file_id=uploaded.id, endpoint=self.endpoint,  # type: ignore[arg-type]
                                               completion_window="24h", metadata={"taskc_chunk": tag})
            batch_id = batch.id
        self.cache.journal_put(name, {"batch_id": batch_id, "keys": list(chunk.keys), "state": "submitted"})
        count_requests(self.stats, self.budget, len(chunk.keys))
        requests = len(chunk.keys)
        self.reporter.message(f"submitted batch {batch_id} ({counted(requests, 'request')})")
        return name

    def _find_submitted(self, tag: str) -> str | None:
        """A batch for this try of a chunk, created by a run killed before it could journal it."""
        try:
            for batch in self.client.batches.list(limit=100):
                metadata = batch.metadata or {}
                if metadata.get("taskc_chunk") == tag and batch.status not in ("failed", "expired",
                                                                                      "cancelled"):
                    return str(batch.id)
        except openai.APIError:
            return None  # listing is a convenience; without it we submit anew
        return None

    def _unfinished_journal(self) -> list[str]:
        names = []
        for name in self.cache.journal_names(_JOURNAL_PREFIX):
            entry = self.cache.journal_get(name)
            if entry and entry.get("state") == "submitted" and any(k in self.calls for k in entry["keys"]):
                names.append(name)
        return names

    # -- polling and results

    def _wait_and_ingest(self, names: list[str]) -> None:
        """Poll the batches until each is in a final state (or overdue), ingesting each as it gets there.

        Bounded twice: by the run's --deadline (RunDeadlinePassed; the batches stay journalled as submitted,
        so the same command resumes them without paying again), and by each batch's completion window."""
        waiting = list(dict.fromkeys(names))
        while waiting:
            still = []
            for name in waiting:
                entry = self.cache.journal_get(name)
                batch = self.client.batches.retrieve(entry["batch_id"])
                if batch.status in _TERMINAL:
                    self._ingest(name, entry, batch)
                elif (overdue := _overdue_by(batch, time.time())) is not None:
                    self._give_up(entry, batch, overdue)
                else:
                    still.append(name)
            waiting = still
            self._report()
            if waiting:
                self._sleep_before_polling()

    def _sleep_before_polling(self) -> None:
        deadline = self.settings.run_deadline
        if deadline is None:
            time.sleep(self.settings.poll_interval)
            return
        if deadline.remaining() <= 0:
            raise RunDeadlinePassed(deadline)
        time.sleep(min(self.settings.poll_interval, deadline.remaining()))  # one last poll at the deadline

    def _give_up(self, entry: dict[str, Any], batch: Any, overdue: float) -> None:
        """This run's failures for a batch still running past its window (the journal keeps it: a rerun
        looks at it again, and ingests it if it has ended meanwhile)."""
        window = COMPLETION_WINDOW // 3600
        why = scrub(f"batch {batch.id} is still {batch.status} {overdue / 3600:.1f} h past its {window} h "
                    "completion window; cancel it on the provider, or run the same command again to look once "
                    "more", self.settings.api_key)
        self.reporter.message(why)
        for key in entry["keys"]:
            if key in self.calls and key not in self.answered:
                self.failures.setdefault(key, CallFailure(ErrorKind.NO_ANSWER, why))
                self.not_retried.add(key)

    def _ingest(self, name: str, entry: dict[str, Any], batch: Any) -> None:
        keys = set(entry["keys"])
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                text = self.client.files.content(file_id).text
                for line in text.split("\n"):  # not splitlines: a JSON string may hold U+2028 unescaped
                    if line.strip():
                        self._ingest_line(line, keys)
        reason = _batch_errors(batch)
        unanswered = CallFailure(ErrorKind.NO_ANSWER, scrub(
            f"batch {batch.id} ended {batch.status} without an answer" + (f": {reason}" if reason else ""),
            self.settings.api_key))
        for key in keys:  # not answered at all (a failed, cancelled or expired batch)
            if key not in self.answered:
                self.failures.setdefault(key, unanswered)
                if batch.status in _NOT_RESUBMITTED:
                    self.not_retried.add(key)
        self.cache.journal_put(name, {**entry, "state": "ingested", "status": batch.status})

    def _ingest_line(self, line: str, keys: set[str]) -> None:
        try:
            # where an answer enters taskc: nothing of it is kept with the key in it (see scrub_in_place)
            item = scrub_in_place(json.loads(line), self.settings.api_key)
        except (ValueError, RecursionError):
            return  # an unreadable output line cannot be attributed; its call stays pending
        if not isinstance(item, dict):
            return
        key = item.get("custom_id")
        call = self.calls.get(key) if isinstance(key, str) else None
        if call is None or key not in keys or key in self.answered:
            return
        response = _mapping(item.get("response"))
        body = _mapping(response.get("body"))
        if response.get("status_code") != 200:
            self._failed_line(key, call, item.get("error") or body.get("error") or {}, response.get("status_code"))
            return
        try:
            self._accept(key, call, body, response)
        except AnswerProblem as problem:
            self.stats.count_error(problem.kind)
            self.failures[key] = CallFailure(ErrorKind.BAD_ANSWER, scrub(f"{problem.kind}: {problem}",
                                                                         self.settings.api_key))
            return
        self.answered.add(key)
        self.failures.pop(key, None)
        self.stats.calls_made += 1
        self.done += 1

    def _failed_line(self, key: str, call: BatchableCall, error: Any, status: Any) -> None:
        """A line the server answered with an error status (or none): its failure, and, where it refuses a part
        of the request the run can do without, the round marked as adjusted (see _adapt)."""
        code = error.get("code") if isinstance(error, dict) else None
        known = isinstance(status, int)
        self.stats.count_error("rate_limit" if status == 429 else "expired" if code == "batch_expired" else
                               f"http_{status}" if known and 400 <= status < 500 else "server_error")
        message = str((error.get("message") if isinstance(error, dict) else error) or "no error message")
        text = scrub(f"{status if known else 'no status'} {message}", self.settings.api_key)
        self.failures[key] = CallFailure(status_kind(status) if known else ErrorKind.HTTP_ERROR, text)
        param = error.get("param") if isinstance(error, dict) else None
        if known and self._adapt(key, call, refusal_of(status, message, param), text):
            self.adjusted = True

    # -- a server that refuses part of the planned request (see provider/adjustments.py)

    def _line_body(self, call: BatchableCall) -> dict[str, Any]:
        """A call's request body as the server takes it, from what the run has learned so far."""
        request = self.adjustments.adjusted(call.request_body(), call.response_format)
        self.stats.record_adjusted(request, self.adjustments)
        self.sent[call.cache_key] = request
        return request.body

    def _server(self) -> dict[str, Any]:
        """What a record of the server's refusals holds for: this endpoint and these calls' models."""
        models = sorted({call.model for call in self.calls.values()})
        return {"base_url": self.settings.base_url or "", "models": models}

    def _remember(self) -> None:
        self.cache.journal_put(_ADJUSTMENTS_RECORD, {**self._server(), **self.adjustments.to_json()})

    def _recall(self) -> None:
        """Take on what an earlier run of these calls learned the server refuses (a killed run, rerun)."""
        record = self.cache.journal_get(_ADJUSTMENTS_RECORD)
        if not isinstance(record, dict) or {key: record.get(key) for key in ("base_url", "models")} != self._server():
            return
        taken = self.adjustments.recall(record)
        if taken:
            self.adjustments.announce(f"an earlier run learned that the server refuses {', '.join(taken)}: sending "
                                      "the batch lines as it takes them from the first round")

    def _adapt(self, key: str, call: BatchableCall, refusal: Refusal, error: str) -> bool:
        """Whether a refused line goes again without the part refused (what the run learns from ``refusal``
        holds for every later line and call); False when the refusal is of nothing it can do without."""
        sent = self.sent.get(key) or AdjustedRequest(call.request_body(), 0, frozenset())  # a resumed batch's
        body = sent.body
        if refusal.rename_max_tokens and "max_tokens" in body:
            self.adjustments.rename_max_tokens()
            return True
        asked = body.get("max_completion_tokens", body.get("max_tokens"))
        if refusal.completion_limit is not None and refusal.completion_limit[1] and isinstance(asked, int):
            tokens = refusal.completion_limit[0]
            if MIN_COMPLETION_TOKENS <= tokens < asked:
                self.adjustments.cap_completion(tokens, error)
                return True
        if refusal.parameter is not None and refusal.parameter in body:
            self.adjustments.drop(refusal.parameter, error)
            return True
        if refusal.response_format:
            return self.adjustments.step_down_from(sent.format_step, call.response_format, error)
        return False

    # -- what the endpoint's answers are (chat completions here; embeddings in _EmbeddingsBatchRunner)

    endpoint = CHAT_ENDPOINT

    def _answered_already(self) -> set[str]:
        return self.cache.keys() & self.calls.keys()  # one query, not one per call and round

    def _accept(self, key: str, call: BatchableCall, body: dict[str, Any], response: dict[str, Any]) -> None:
        """Check, charge and cache one answer (AnswerProblem: it is no usable answer)."""
        usage, model, choice = read_completion(body, call.model)
        usage, estimated = charged_usage(body, usage, call.request_body().get("messages"), call.response_format,
                                         choice)
        # priced as asked, not answered
        charge(self.stats, self.budget, call.model, usage, BATCH_PRICE_FACTOR, estimated=estimated)
        content = scrub_in_place(parse_choice(choice, call.response_format, self.validate), self.settings.api_key)
        self.cache.put(key, answer_record(content, response.get("request_id") or body.get("id"), usage, model,
                                          batch=True))

    def _report(self) -> None:
        skipped = sum(failure.stopped_by_budget for failure in self.failures.values())
        self.reporter.update(ProgressState(self.done, len(self.calls), None, None, len(self.failures) - skipped,
                                           self.stats.input_tokens, self.stats.output_tokens, self.stats.cost_usd,
                                           self.phase, skipped, self.step))


class _EmbeddingsBatchRunner(_BatchRunner):
    """The same submission, journal and polling for `/v1/embeddings` requests: an answer is vectors."""

    endpoint = EMBEDDINGS_ENDPOINT

    def __init__(self, client: openai.OpenAI, cache: ResponseCache, settings: ProviderSettings, budget: Budget,
                 stats: CallStats, reporter: ProgressReporter, requests: dict[str, EmbeddingRequest],
                 encode: Callable[[list[float]], bytes], *, phase: str, step: str) -> None:
        super().__init__(client, cache, settings, budget, stats, reporter, dict(requests), phase=phase, step=step)
        self.requests, self.encode = requests, encode

    def _line_body(self, call: BatchableCall) -> dict[str, Any]:
        return call.request_body()  # an embeddings request has nothing a server refuses that it can do without

    def _adapt(self, key: str, call: BatchableCall, refusal: Refusal, error: str) -> bool:
        return False  # (nor does one get asked without anything)

    def _answered_already(self) -> set[str]:
        """The requests whose every text has its vector in the cache (one query for them all)."""
        cached = self.cache.vectors(sorted({key for request in self.requests.values() for key in request.keys}))
        return {key for key, request in self.requests.items() if all(k in cached for k in request.keys)}

    def _accept(self, key: str, call: BatchableCall, body: dict[str, Any], response: dict[str, Any]) -> None:
        request = self.requests[key]
        try:
            vectors = read_embeddings(body, len(request.texts))
        except ValueError as exc:
            raise AnswerProblem("malformed", f"malformed embeddings: {exc}") from None
        usage, estimated = charged_embedding_usage(body, request.texts)
        charge(self.stats, self.budget, request.model, usage, BATCH_PRICE_FACTOR, estimated=estimated)
        self.cache.put_vectors(list(zip(request.keys, map(self.encode, vectors), strict=True)))


def _mapping(value: Any) -> dict[str, Any]:
    """A part of an output line that should be an object; anything else counts as missing."""
    return value if isinstance(value, dict) else {}


def _overdue_by(batch: Any, now: float) -> float | None:
    """Seconds a batch that is not in a final state is past its window and the grace; None while it is not
    (or when the server tells neither when it expires nor when it was created)."""
    expires = getattr(batch, "expires_at", None)
    if not isinstance(expires, (int, float)):
        created = getattr(batch, "created_at", None)
        expires = created + COMPLETION_WINDOW if isinstance(created, (int, float)) else None
    if expires is None:
        return None
    overdue = now - expires
    return overdue if overdue > OVERDUE_GRACE else None


def _batch_errors(batch: Any) -> str:
    """The server's own words for why a batch ended without answers (its `errors.data`), on one line."""
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) if errors is not None else None
    messages = [str(getattr(error, "message", None) or getattr(error, "code", None) or "")
                for error in (data or [])[:3]]
    return " ".join("; ".join(m for m in messages if m).split())[:300]
