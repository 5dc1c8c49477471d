"""Unit tests of the runtime's parts that need no server: settings, cache, limiter, answer checks,
validation, dedupe, the train/val split and progress output."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from taskc.compiler.driver import CompiledTask
from taskc.compiler.ir import DedupePolicy
from taskc.runtime import dedupe as dedupe_module
from taskc.runtime.cache import ResponseCache
from taskc.runtime.datasets import split_train_val
from taskc.runtime.dedupe import Deduplicator, dedupe_key
from taskc.runtime.limiter import RateLimiter
from taskc.runtime.progress import (
    JsonProgress,
    PlainProgress,
    ProgressReporter,
    ProgressState,
    RichProgress,
    make_reporter,
)
from taskc.runtime.provider import (
    PLACEHOLDER_API_KEY,
    AnswerProblem,
    Budget,
    ProviderSettings,
    parse_answer,
    parse_choice,
    provider_settings_from_env,
    retry_delay_from_headers,
    scrub,
)
from taskc.runtime.validate import ExampleValidator
from test_runtime_fixtures import API_KEY, keto_example

# -- settings ---------------------------------------------------------------------------------------

def test_settings_need_a_key_or_a_base_url() -> None:
    assert provider_settings_from_env(environ={}) is None
    local = provider_settings_from_env(environ={"OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert local is not None and local.api_key == PLACEHOLDER_API_KEY and local.base_url.endswith("/v1")
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": "http://env/v1"}
    chosen = provider_settings_from_env("http://flag/v1", "m", environ=env, concurrency=32, rpm=None)
    assert chosen is not None and chosen.base_url == "http://flag/v1" and chosen.model == "m"
    assert chosen.api_key == API_KEY and chosen.concurrency == 32 and chosen.rpm is None
    assert API_KEY not in repr(chosen)


def test_settings_reject_impossible_limits() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        ProviderSettings(base_url=None, api_key="k", concurrency=0)


def test_scrub_removes_the_key() -> None:
    assert scrub(f"401 bad key {API_KEY}", API_KEY) == "401 bad key [redacted]"


# -- cache ------------------------------------------------------------------------------------------

def test_cache_round_trip_survives_reopening(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert cache.get("k") is None
        cache.put("k", {"content": {"examples": []}, "usage": {"input_tokens": 3}})
        cache.journal_put("batch/x", {"state": "submitted"})
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert cache.get("k") == {"content": {"examples": []}, "usage": {"input_tokens": 3}}
        assert "k" in cache and len(cache) == 1 and cache.keys() == {"k"}
        assert cache.journal_names("batch/") == ["batch/x"] and cache.journal_names("other") == []
        assert cache.journal_get("batch/x") == {"state": "submitted"}


def test_cache_checkpoints_in_the_background_and_stops_with_the_cache(tmp_path: Path) -> None:
    record = {"content": {"examples": [{"dish": "salmon " * 20, "label": "keto"}]}, "usage": {}}
    largest_log = 0
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        for number in range(3000):
            cache.put(f"key-{number}", record)
            if number % 100 == 0:
                largest_log = max(largest_log, (tmp_path / "c.sqlite-wal").stat().st_size)
        assert any(thread.name == "taskc-cache-checkpoint" for thread in threading.enumerate())
    assert largest_log < 16 * 2**20  # the log is recycled; 3,000 answers write ~40 MiB of log pages
    assert not any(thread.name == "taskc-cache-checkpoint" for thread in threading.enumerate())
    assert not (tmp_path / "c.sqlite-wal").exists()  # closing checkpointed the rest
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert len(cache) == 3000


# -- limiter ----------------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_limiter_spaces_requests_evenly_at_the_rpm(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("taskc.runtime.limiter.asyncio.sleep", clock.sleep)
    limiter = RateLimiter(rpm=120, clock=clock)
    starts = []

    async def go() -> None:
        for _ in range(5):
            await limiter.acquire()
            starts.append(clock.now)

    asyncio.run(go())
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:], strict=False)] == [0.5] * 4


def test_limiter_token_bucket_and_retry_after_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("taskc.runtime.limiter.asyncio.sleep", clock.sleep)
    limiter = RateLimiter(tpm=600, clock=clock)

    async def go() -> list[float]:
        times = []
        for _ in range(3):
            await limiter.acquire(300)
            times.append(clock.now)
        limiter.pause_for(7.0)
        await limiter.acquire(0)
        times.append(clock.now)
        return times

    times = asyncio.run(go())
    # 600 tokens a minute = 10 a second: two calls of 300 fit the first minute, the third waits 30 s.
    assert [round(t - 100.0, 6) for t in times] == [0.0, 0.0, 30.0, 37.0]


# -- answers ----------------------------------------------------------------------------------------

def test_retry_delay_headers() -> None:
    assert retry_delay_from_headers({"retry-after": "2"}) == 2.0
    assert retry_delay_from_headers({"retry-after-ms": "250"}) == 0.25
    assert retry_delay_from_headers({"x-ratelimit-reset-requests": "1m30s"}) == 90.0
    assert retry_delay_from_headers({"x-ratelimit-reset-tokens": "120ms"}) == pytest.approx(0.12)
    assert retry_delay_from_headers({"x-ratelimit-reset-tokens": "soon"}) is None
    assert retry_delay_from_headers({}) is None


def test_a_plain_http_endpoint_loads_no_certificates_until_a_tls_handshake() -> None:
    import ssl

    from taskc.runtime.provider import transport

    lazy = transport.tls_context_for("http://127.0.0.1:8000/v1")
    assert isinstance(lazy, ssl.SSLContext) and lazy.cert_store_stats()["x509_ca"] == 0
    # a redirect to https: the handshake is the default context's, which verifies the server
    connection = lazy.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.com")
    assert connection.context is transport.tls_context_for("https://api.example.com/v1")
    assert connection.context.verify_mode == ssl.CERT_REQUIRED and connection.context.check_hostname
    assert transport.tls_context_for(None) is connection.context  # the SDK's default endpoint is https


def test_parse_answer_kinds(keto: CompiledTask) -> None:
    fmt = keto.generation_format
    good = {"examples": [{"dish": "Eggs", "ingredients": ["eggs", "butter"], "label": "keto"}]}
    assert parse_answer(json.dumps(good), "stop", fmt) == good
    cases = [("{\"examples\": [", "length", "truncated"), ("Sure! {", "stop", "malformed"),
             ("[1]", "stop", "malformed"), (json.dumps({"examples": [{"dish": "x"}]}), "stop", "schema_violation")]
    for content, finish, kind in cases:
        with pytest.raises(AnswerProblem) as caught:
            parse_answer(content, finish, fmt)
        assert caught.value.kind == kind
    assert parse_answer("```json\n" + json.dumps(good) + "\n```", "stop", fmt) == good
    # what a model asked without a response_format, or a reasoning model served without a reasoning parser,
    # writes around its JSON
    for wrapped in ("<think>The user wants one keto dish {maybe eggs}.</think>\n" + json.dumps(good),
                    "Here is the JSON you asked for:\n```json\n" + json.dumps(good) + "\n```\nEnjoy!",
                    "Sure! " + json.dumps(good) + " Let me know if you need more.",
                    json.dumps(good) + "\n\nI hope this helps."):
        assert parse_answer(wrapped, "stop", fmt) == good, wrapped
    for broken in ("Sure! Here is the JSON: " + json.dumps(good)[:40], "<think>eggs?</think> {\"examples\": ["):
        with pytest.raises(AnswerProblem) as caught:
            parse_answer(broken, "stop", fmt)
        assert caught.value.kind == "malformed", broken
    parts = {"message": {"content": [{"type": "text", "text": json.dumps(good)[:10]},
                                     {"type": "text", "text": json.dumps(good)[10:]}]}, "finish_reason": "stop"}
    assert parse_choice(parts, fmt) == good
    assert parse_answer(json.dumps(good), "length", fmt) == good  # whole all the same: nothing was cut
    with pytest.raises(AnswerProblem, match="the model refused: I can't help with that"):
        parse_choice({"message": {"content": None, "refusal": "I can't  help with that"}, "finish_reason": "stop"},
                     fmt)
    with pytest.raises(AnswerProblem, match="too few"):
        parse_answer(json.dumps(good), "stop", fmt, lambda value: "too few")


def test_budget_prices_dated_and_fine_tuned_models() -> None:
    budget = Budget(prices={"my-model": (1.0, 2.0)})
    assert budget.cost("my-model", 1_000_000, 1_000_000) == 3.0
    assert budget.cost("gpt-4o-mini-2024-07-18", 1000, 0) == budget.cost("gpt-4o-mini", 1000, 0)
    assert budget.cost("ft:gpt-4o-mini:org::abc", 1000, 0) == budget.cost("gpt-4o-mini", 1000, 0)
    assert budget.cost("unknown-model", 10, 10) is None


# -- validation -------------------------------------------------------------------------------------

def test_validator_names_the_check_and_value(keto: CompiledTask) -> None:
    validator = ExampleValidator(keto.ir)
    ok = {"dish": "Bacon and eggs", "ingredients": ["bacon", "eggs"], "label": "keto"}
    assert validator.check(ok) is None
    cases = [
        ({**ok, "ingredients": ["bacon"]}, "field:ingredients", ["bacon"]),
        ({**ok, "ingredients": "bacon, eggs"}, "field:ingredients", "bacon, eggs"),
        ({**ok, "dish": "x" * 81}, "field:dish", "x" * 81),
        ({"ingredients": ["a", "b"], "label": "keto"}, "field:dish", None),
        ({**ok, "label": "paleo"}, "label:label", "paleo"),
        ({**ok, "ingredients": ["rice", "eggs"]}, "constraint:no_starch_in_keto",
         {"dish": "Bacon and eggs", "ingredients": ["rice", "eggs"]}),
    ]
    for example, reason, value in cases:
        rejection = validator.check(example)
        assert rejection is not None and rejection.reason == reason and rejection.value == value, example
    assert "starch" in (validator.check(cases[-1][0]).message or "")  # the constraint's own message


def test_rule_votes_record_agreement(keto: CompiledTask) -> None:
    validator = ExampleValidator(keto.ir)
    pasta = {"dish": "Pasta bake", "ingredients": ["pasta", "cheese", "eggs"]}
    assert validator.votes(pasta, "not_keto").to_json() == {"fired": ["starch_base"], "votes": ["not_keto"],
                                                             "agrees": True}
    assert validator.votes(pasta, "keto").agrees is False
    assert validator.votes({"dish": "Tea", "ingredients": ["tea", "water"]}, "keto").agrees is None


# -- dedupe -----------------------------------------------------------------------------------------

def test_exact_duplicates_after_normalisation() -> None:
    deduper = Deduplicator(DedupePolicy(True, 1.0, ("dish", "ingredients")), ("dish", "ingredients"))
    assert deduper.add({"dish": "Cauliflower Rice!", "ingredients": ["eggs", "Cauliflower rice"]}) is None
    duplicate = deduper.add({"dish": "cauliflower  rice", "ingredients": ["cauliflower rice", "EGGS"]})
    assert duplicate is not None and duplicate.kind == "exact" and duplicate.original == 0
    assert deduper.add({"dish": "cauliflower rice bowl", "ingredients": ["eggs", "cauliflower rice"]}) is None


def test_near_duplicates_use_the_threshold() -> None:
    first = {"dish": "Creamy garlic salmon skillet", "ingredients": ["salmon", "butter", "garlic", "spinach"]}
    close = {"dish": "Creamy garlic salmon skilet", "ingredients": ["salmon", "butter", "garlic", "spinach"]}
    other = {"dish": "Honey glazed ham", "ingredients": ["ham", "honey", "mustard"]}
    strict = Deduplicator(DedupePolicy(True, 1.0, ()), ("dish", "ingredients"))
    loose = Deduplicator(DedupePolicy(True, 0.9, ()), ("dish", "ingredients"))
    assert [strict.add(example) for example in (first, close, other)] == [None, None, None]
    assert loose.add(first) is None and loose.add(other) is None
    near = loose.add(close)
    assert near is not None and near.kind == "near" and near.original == 0 and 0.9 <= near.similarity < 1
    assert dedupe_key(first, ("dish",), True) == "creamy garlic salmon skillet"


def test_lsh_path_finds_the_same_near_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(0)
    examples = [keto_example(rng, rng.choice(["keto", "not_keto"])) for _ in range(400)]
    variants = [{**e, "dish": e["dish"] + "s"} for e in examples[:100]]  # a one-letter change

    def outcome() -> list[Any]:
        deduper = Deduplicator(DedupePolicy(True, 0.9, ("dish", "ingredients")), ("dish", "ingredients"))
        return [deduper.add(e) for e in examples + variants]

    exhaustive = outcome()
    monkeypatch.setattr(dedupe_module, "EXHAUSTIVE_LIMIT", 0)
    indexed = outcome()
    found = [d for d in indexed[400:] if d is not None]
    assert len(found) >= 95  # MinHash LSH is probabilistic, but a one-letter change is almost always caught
    assert all(d.original < 400 for d in found)
    assert sum(d is not None for d in exhaustive[400:]) == 100


def test_the_lsh_index_is_built_only_when_needed_and_then_as_if_from_the_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1)
    examples = [keto_example(rng, rng.choice(["keto", "not_keto"])) for _ in range(300)]

    def fed(limit: int) -> Deduplicator:
        monkeypatch.setattr(dedupe_module, "EXHAUSTIVE_LIMIT", limit)
        deduper = Deduplicator(DedupePolicy(True, 0.9, ("dish", "ingredients")), ("dish", "ingredients"))
        for example in examples:
            deduper.add(example)
        return deduper

    small = fed(1000)
    assert not small._buckets  # never past the limit: no band was ever worked out
    late, early = fed(120), fed(0)
    assert len(late._kept) == len(early._kept) > 120
    assert late._kept == early._kept and late._buckets == early._buckets  # backfilled in the same order


# -- split and progress -----------------------------------------------------------------------------

def test_split_is_deterministic_and_stratified() -> None:
    examples = [{"id": f"e{i}", "label": "keto" if i % 3 else "not_keto"} for i in range(30)]
    train, val = split_train_val(examples, 0.2)
    assert len(val) == 4 + 2 and {e["label"] for e in val} == {"keto", "not_keto"}
    shuffled = examples[::-1]
    assert {e["id"] for e in split_train_val(shuffled, 0.2)[1]} == {e["id"] for e in val}
    assert split_train_val(examples, 0.0)[1] == []


def test_progress_reporters() -> None:
    state = ProgressState(3, 10, 20, 2, 1, 100, 50, 0.0123)
    assert state.line() == "generation: 3/10 calls, 20 accepted, 2 rejected, 1 failed, 150 tokens, $0.0123"
    plain = io.StringIO()
    reporter = PlainProgress(plain, interval=0)
    reporter.update(state)
    reporter.finish()
    reporter.finish(dataclasses.replace(state, done=10))
    assert plain.getvalue().splitlines() == [state.line(), dataclasses.replace(state, done=10).line()]
    machine = io.StringIO()
    JsonProgress(machine, interval=0).update(state)
    assert json.loads(machine.getvalue())["accepted"] == 20
    terminal = io.StringIO()
    bar = RichProgress(terminal)
    bar.start(10)
    bar.update(state)
    bar.finish(dataclasses.replace(state, done=10, accepted=30))
    assert "30 accepted" in terminal.getvalue()
    # each bar is drawn once: a later phase's display does not draw the finished phases' bars again
    bar.start(5, "pool labeling")
    bar.finish(dataclasses.replace(state, done=5, total=5, phase="pool labeling"))
    bar.start(4, "gold scoring", "prompted LLM")
    bar.start(4, "gold scoring", "fine-tuned model")
    bar.finish(dataclasses.replace(state, done=4, total=4, phase="gold scoring", step="fine-tuned model"))
    drawn = terminal.getvalue()
    assert [drawn.count(label) for label in ("generation", "pool labeling", "(prompted", "(fine-tuned")] \
        == [1, 1, 1, 1]
    assert type(make_reporter(quiet=True, json_progress=True)) is ProgressReporter
    # a batch's answers are checked after it completes: its progress counts no accepted or rejected answers
    batch = ProgressState(64, 64, None, None, 0, 57_000, 396, 0.0051, "gold scoring", step="prompted LLM, batch")
    assert batch.line() == "gold scoring (prompted LLM, batch): 64/64 calls, 0 failed, 57,396 tokens, $0.0051"
    assert isinstance(make_reporter(quiet=False, json_progress=False, stream=io.StringIO()), PlainProgress)


def test_which_refusals_take_a_part_of_the_request_out() -> None:
    from taskc.runtime.provider.adjustments import Refusal, refusal_of

    def refusal(message: str, param: str | None = None) -> tuple[str | None, bool]:
        found = refusal_of(400, message, param)
        return found.parameter, found.response_format

    assert refusal("Unsupported value: 'temperature' does not support 0.9 with this model. Only the default (1) "
                   "value is supported.", "temperature") == ("temperature", False)
    assert refusal("Unrecognized request argument supplied: seed") == ("seed", False)
    assert refusal("top_p: Extra inputs are not permitted") == ("top_p", False)
    assert refusal("This response_format type is unavailable now") == (None, True)
    assert refusal("Invalid JSON payload received. Unknown name \"additionalProperties\" at "
                   "'generation_config.response_schema': Cannot find field.") == (None, True)
    assert refusal("Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                   "response_format")[1]
    # not refusals of a part the run can do without
    assert refusal("Invalid value for 'temperature': must be at most 2.") == (None, False)
    assert refusal("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                   "'max_completion_tokens' instead.", "max_tokens") == (None, False)
    assert refusal("The model `gpt-5-turbo` does not exist or you do not have access to it.") == (None, False)
    assert refusal("Unknown model: seed-oss-36b") == (None, False)
    renamed = ("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
               "instead.")
    assert refusal_of(400, renamed, "max_tokens") == Refusal(rename_max_tokens=True)
    # only a 400 or 422 refuses a part of the request: any other status is no refusal at all
    assert not refusal_of(500, "Unrecognized request argument supplied: seed")
    assert refusal_of(422, "top_p: Extra inputs are not permitted") == Refusal(parameter="top_p")


def test_a_planned_request_is_sent_as_the_server_takes_it_once_it_refused_parts_of_it() -> None:
    from taskc.runtime.provider.adjustments import AdjustedRequest, ServerAdjustments

    planned = {"type": "json_schema", "json_schema": {"name": "example", "schema": {"type": "object"}}}
    body = {"model": "m", "messages": [{"role": "system", "content": "Write one."}, {"role": "user", "content": "x"}],
            "response_format": planned, "temperature": 0.9, "seed": 3, "max_tokens": 4000}
    said: list[str] = []
    adjustments = ServerAdjustments(announce=said.append)
    assert adjustments.adjusted(body, planned) == AdjustedRequest(body, 0, frozenset())  # nothing refused yet
    adjustments.drop("temperature", "400 Only the default (1) value is supported.")
    adjustments.rename_max_tokens()
    adjustments.cap_completion(1000, "400 supports at most 1000 completion tokens")
    assert adjustments.step_down_from(0, planned, "400 json_schema is not supported")
    request = adjustments.adjusted(body, planned)
    assert request.format_step == 1 and request.dropped == {"temperature"}
    assert request.body == {
        "model": "m", "response_format": {"type": "json_object"}, "seed": 3, "max_completion_tokens": 1000,
        "messages": [{"role": "system", "content": "Write one.\n\nAnswer with one JSON object and nothing else (no "
                      'prose, no code fence), valid against this JSON Schema:\n{"type":"object"}'},
                     {"role": "user", "content": "x"}]}
    assert body["temperature"] == 0.9 and body["messages"][0]["content"] == "Write one."  # the plan is left alone
    # a call refused at a step the run has left already asks again at the current one
    assert adjustments.step_down_from(0, planned, "400 json_schema is not supported")
    assert adjustments.step_for(planned) == 1
    assert adjustments.step_down_from(1, planned, "400 json_object is not supported")
    assert "response_format" not in adjustments.adjusted(body, planned).body
    assert not adjustments.step_down_from(2, planned, "400 response_format is required")  # no step left
    assert len(said) == 4  # temperature, the cap and two steps down: the rename is no news to the expert
    # a call planned in JSON mode has one step down only
    assert adjustments.step_for({"type": "json_object"}) == 1
    # what a run learned, taken on by a later one: as far as it is something the run can do without
    later = ServerAdjustments()
    assert later.recall(adjustments.to_json()) == ["response_format (now none)", "temperature",
                                                   "more than 1,000 completion tokens",
                                                   "max_tokens (now max_completion_tokens)"]
    assert later.to_json() == adjustments.to_json()
    assert later.recall(adjustments.to_json()) == []  # nothing new
    assert ServerAdjustments().recall("damaged") == []
    assert ServerAdjustments().recall({"response_format": "json_schema", "dropped": {"messages": "400"},
                                       "completion_cap": True, "max_completion_tokens": "yes"}) == []


def test_what_a_refusal_of_max_tokens_allows() -> None:
    from taskc.runtime.provider.adjustments import ServerAdjustments, completion_limit

    assert completion_limit("max_tokens is too large: 100000. This model supports at most 16384 completion tokens, "
                            "whereas you provided 100000.") == (16384, True)
    assert completion_limit("max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for "
                            "claude-sonnet") == (64000, True)
    assert completion_limit("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens "
                            "(1000 in the messages, 4000 in the completion).") == (3096, False)
    assert completion_limit("'max_tokens' or 'max_completion_tokens' is too large: 4000. This model's maximum context "
                            "length is 4096 tokens and your request has 1000 input tokens (4000 > 4096 - 1000).") \
        == (3096, False)
    assert completion_limit("This model's maximum context length is 4096 tokens.") is None  # how much is input?
    said: list[str] = []
    adjustments = ServerAdjustments(announce=said.append)
    adjustments.cap_completion(16384, "400 supports at most 16384 completion tokens")
    adjustments.cap_completion(20000, "400 a looser limit later")  # the tighter limit stays
    assert adjustments.completion_cap == 16384 and len(said) == 1
    assert adjustments.notes() == ["the server allows at most 16,384 completion tokens (400 supports at most 16384 "
                                   "completion tokens), so the calls that planned more were sent with that many: an "
                                   "answer longer than that is truncated (lower generate.per_call if many are)"]
