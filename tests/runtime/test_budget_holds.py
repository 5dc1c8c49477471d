"""Limits that hold against a hostile or broken server: money, time, size, and the key (issue #12).

Each test drives the real command (`main(["run", ...])`) or the real client against the
fake OpenAI server made to misbehave one way: it claims another model answered, reports
absurd token usage, asks to be retried in an hour (or never), trickles its reply a byte
at a time, sends a huge body or a gzip bomb, or echoes the bearer token back. The only
timing in here is a generous bound that turns "waits forever" into a failure.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Faults, default_content
from taskc.compiler.pricing import builtin_prices, price_for
from taskc.runtime.cache import ResponseCache
from taskc.runtime.limiter import RateLimiter
from taskc.runtime.provider import (
    MAX_RESPONSE_BYTES,
    CallResult,
    ErrorKind,
    LLMClient,
    ProviderSettings,
    retry_delay_from_headers,
    scrub_in_place,
)
from test_run_cli import _project
from test_run_provider_faults import FAST, _fast_provider  # noqa: F401 - the autouse fixture: short retries here too
from test_runtime_fixtures import API_KEY, TRANSPORTS, chat_requests, files_containing, use_transport

from taskc.cli.main import main

GENEROUS = 60.0  # seconds: only a call that waits (nearly) forever takes this long
MILLION_TOKENS_EACH = '{"prompt_tokens": 1000000, "completion_tokens": 1000000, "total_tokens": 2000000}'


def _responder(body: dict) -> dict | str:
    """Classification calls get a keyword judgement; generation calls the server's schema-valid default."""
    if body["response_format"]["json_schema"]["name"] != "classification":
        return default_content(body)
    text = json.loads(body["messages"][-1]["content"])["text"]
    return {"label": "neg" if any(w in text for w in ("bad", "awful", "rude", "cold")) else "pos",
            "rationales": []}


def _spec(root: Path, *, model: str = "gpt-4o-mini", per_rationale: int = 2, generate: str = "",
          extra: str = "") -> Path:
    """The reviews task with a small plan; ``generate`` is added to its generate section, ``extra`` at the end."""
    spec = _project(root)
    spec.write_text(spec.read_text().replace(
        "  model: gpt-4o-mini\n", f"  model: {model}\n  per_rationale: {per_rationale}\n  per_call: 2\n{generate}")
        + extra)
    return spec


def _run(spec: Path, run_dir: Path, server: FakeOpenAI, *options: str) -> int:
    return main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, *options])


def _ask(settings: ProviderSettings, tmp_path: Path, model: str = "gpt-4o-mini") -> CallResult:
    """One structured call through the real client, bounded by GENEROUS seconds."""
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}

    async def go() -> CallResult:
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            client = LLMClient(settings, cache)
            try:
                return await asyncio.wait_for(client.complete_json(
                    messages=[{"role": "user", "content": "classify"}], model=model,
                    response_format={"type": "json_schema", "json_schema": {"name": "label", "schema": schema}},
                    sampling={"temperature": 0.0}, seed=1, cache_key="k"), GENEROUS)
            finally:
                await client.aclose()

    return asyncio.run(go())


@pytest.fixture
def server_with(request: pytest.FixtureRequest) -> Iterator[Any]:
    servers: list[FakeOpenAI] = []

    def start(faults: Faults, **options: Any) -> FakeOpenAI:
        servers.append(FakeOpenAI(faults=faults, **options).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _settings(server: FakeOpenAI, **overrides: Any) -> ProviderSettings:
    return ProviderSettings(base_url=server.base_url, api_key=API_KEY, **{**FAST, **overrides})


# -- money: priced as asked, and --max-cost refuses what it cannot price -------------------------------

def test_a_server_that_renames_its_model_is_still_priced_as_asked(tmp_path: Path, server_with: Any,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path / "project")
    server = server_with(Faults(answer_model="my-local-model", usage_json=MILLION_TOKENS_EACH),
                         responder=_responder)
    status = _run(spec, tmp_path / "run", server, "--max-cost", "1", "--concurrency", "1", "--json")
    captured = capsys.readouterr()
    assert status == 0, captured.err  # a budget stop is not a failure
    # gpt-4o-mini: $0.15 + $0.60 for a million tokens each way, so the second call spends the dollar
    assert len(chat_requests(server)) == 2
    summary = json.loads(captured.out)
    assert any("budget" in note and "--max-cost 1" in note for note in summary["notes"])
    generation = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert generation["cost_usd"] == pytest.approx(1.5) and generation["unpriced_models"] == []
    examples = [json.loads(line) for line in (tmp_path / "run" / "examples.jsonl").read_text().splitlines()]
    assert examples and {e["provenance"]["model"] for e in examples} == {"my-local-model"}  # for the record


@pytest.mark.parametrize("model, extra, named", [
    ("house-llm", "", "'house-llm' (generate.model)"),
    ("gpt-4o-mini", "finetune:\n  provider: embeddings\n  base_model: my-embedder\n",
     "'my-embedder' (finetune.base_model)"),
])
def test_max_cost_refuses_to_start_when_a_model_it_calls_has_no_price(
        tmp_path: Path, server_with: Any, capsys: pytest.CaptureFixture[str], model: str, extra: str,
        named: str) -> None:
    spec = _spec(tmp_path / "project", model=model, extra=extra)
    server = server_with(Faults(), responder=_responder)
    status = _run(spec, tmp_path / "run", server, "--max-cost", "5")
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"taskc: error: --max-cost needs a price for every model the run calls, and there is none for {named}" \
        in err
    assert "generate.prices" in err and "price table" in err
    assert server.requests == [] and not (tmp_path / "run").exists()  # refused before anything ran


def test_max_cost_suggests_the_priced_model_a_name_was_meant_to_be(tmp_path: Path, server_with: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path / "project", model="gpt-4o-mimi")
    assert _run(spec, tmp_path / "run", server_with(Faults()), "--max-cost", "5", "-q") == 2
    assert "did you mean 'gpt-4o-mini' for 'gpt-4o-mimi'?" in capsys.readouterr().err


def test_without_max_cost_a_model_with_no_price_is_said_to_show_no_cost(tmp_path: Path, server_with: Any,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path / "project")
    status = _run(spec, tmp_path / "run", server_with(Faults(), responder=_responder), "--model", "qwen2.5-7b")
    assert status in (0, 3)
    assert ("taskc: no price for 'qwen2.5-7b' (--model): the costs shown for its calls are $0, not what the "
            "provider charges") in capsys.readouterr().err


@pytest.mark.parametrize("url, why", [
    ("localhost:8765/v1", "--base-url must be an http:// or https:// address, got 'localhost:8765/v1' (did you "
                          "mean 'http://localhost:8765/v1'?)"),
    ("ftp://example.org/v1", "--base-url must be an http:// or https:// address, got 'ftp://example.org/v1'"),
])
def test_a_base_url_without_its_scheme_is_a_usage_error(tmp_path: Path, url: str, why: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path / "project")
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", url]) == 2
    assert capsys.readouterr().err.strip() == f"taskc: error: {why}"


@pytest.mark.parametrize("model, generate, extra", [
    ("openai/gpt-4o-mini", "", ""),  # a router's provider prefix: priced as the base model
    ("house-llm", "  prices:\n    house-llm: {input: 0.5, output: 1.5}\n", ""),  # priced by the task itself
    ("gpt-4o-mini", "", "finetune:\n  provider: embeddings\n"),  # text-embedding-3-small is in the table
])
def test_max_cost_runs_when_every_model_has_a_price(tmp_path: Path, server_with: Any,
                                                    capsys: pytest.CaptureFixture[str], model: str, generate: str,
                                                    extra: str) -> None:
    spec = _spec(tmp_path / "project", model=model, generate=generate, extra=extra)
    server = server_with(Faults(), responder=_responder)
    status = _run(spec, tmp_path / "run", server, "--max-cost", "5", "-q")
    assert status == 0, capsys.readouterr().err
    generation = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert generation["cost_usd"] > 0 and generation["unpriced_models"] == []  # every call counted against it


def test_provider_prefixed_and_dated_names_are_priced_as_their_base_model() -> None:
    table = builtin_prices()
    for name in ("openai/gpt-4o-mini", "openrouter/openai/gpt-4o-mini-2024-07-18", "ft:openai/gpt-4o-mini:o::x"):
        assert price_for(table, name) == table["gpt-4o-mini"], name
    assert price_for({**table, "openai/gpt-4o-mini": (9.0, 9.0)}, "openai/gpt-4o-mini") == (9.0, 9.0)
    assert price_for(table, "my-local-model") is None


@pytest.mark.parametrize("usage", ['{"prompt_tokens": 1e999, "completion_tokens": 5}',
                                   '{"prompt_tokens": NaN}', '{"prompt_tokens": -5}',
                                   '{"completion_tokens": 2.5}', '{"prompt_tokens": 1e300}'])
def test_absurd_token_usage_is_a_malformed_answer_never_a_crash(tmp_path: Path, server_with: Any,
                                                                usage: str) -> None:
    server = server_with(Faults(usage_json=usage))
    result = _ask(_settings(server), tmp_path)
    assert not result.ok and result.error is not None and result.error.startswith("malformed: usage: "), result
    assert result.attempts == 2  # retried once, as any malformed answer


def test_a_run_whose_server_reports_infinite_usage_exits_4_not_70(tmp_path: Path, server_with: Any,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    server = server_with(Faults(usage_json='{"prompt_tokens": 1e999}'), responder=_responder)
    status = _run(_spec(tmp_path / "project"), tmp_path / "run", server, "-q")
    err = capsys.readouterr().err
    assert status == 4, err
    assert "the LLM provider failed all" in err and "malformed: usage: prompt_tokens is inf" in err
    assert "internal error" not in err


# -- time: Retry-After capped, a deadline per request, per call and per run ---------------------------

@pytest.mark.parametrize("retry_after", ["3600", "inf", "1e999", "nan"])
def test_retry_after_never_holds_a_call_longer_than_the_cap(tmp_path: Path, server_with: Any,
                                                            retry_after: str) -> None:
    server = server_with(Faults(rate_limit=1.0, retry_after_header=retry_after))
    result = _ask(_settings(server, max_retries=2, max_retry_after=0.05), tmp_path)  # within GENEROUS seconds
    assert not result.ok and result.error == "429 rate limited" and result.attempts == 3


def test_retry_delays_from_headers_are_capped_and_must_be_finite() -> None:
    assert retry_delay_from_headers({"retry-after": "3600"}, cap=60.0) == 60.0
    assert retry_delay_from_headers({"x-ratelimit-reset-requests": "5h"}, cap=60.0) == 60.0
    for value in ("inf", "-inf", "nan", "1e999", "-5"):
        assert retry_delay_from_headers({"retry-after": value}) is None, value
        assert retry_delay_from_headers({"retry-after-ms": value}) is None, value
    assert retry_delay_from_headers({"retry-after": "inf", "x-ratelimit-reset-tokens": "2s"}) == 2.0
    limiter = RateLimiter(max_pause=1.5)
    limiter.pause_for(float("inf"))
    assert not limiter.holds()  # a pause of no finite length is no pause
    limiter.pause_for(3600.0)
    assert limiter.holds() and limiter._paused_until - limiter._now() <= 1.5


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_trickling_its_reply_is_cut_by_the_request_deadline(tmp_path: Path, server_with: Any,
                                                                     transport: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    use_transport(transport, monkeypatch)
    server = server_with(Faults(trickle_seconds=0.05))  # a byte every 50 ms: each read is quick, the reply is not
    result = _ask(_settings(server, timeout=1.0, max_retries=0), tmp_path)
    assert not result.ok and result.error == "timed out after 1s" and result.kind is ErrorKind.TIMEOUT


def test_a_call_gives_up_at_its_deadline_however_many_retries_are_left(tmp_path: Path,
                                                                       server_with: Any) -> None:
    server = server_with(Faults(server_error=1.0))
    result = _ask(_settings(server, max_retries=1000, backoff_base=0.05, call_deadline=0.5), tmp_path)
    assert not result.ok and result.error is not None
    # the last error is the server's 500, or the timeout of a last try the deadline left little time for
    assert result.error.startswith("timed out: the call took longer than its deadline (0.5s, retries included); "
                                   "last error: "), result.error
    assert result.attempts < 1000 and result.kind is ErrorKind.DEADLINE and result.kind.unreachable


def test_the_run_deadline_ends_the_run_with_exit_4_and_keeps_the_answers(tmp_path: Path, server_with: Any,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path / "project", per_rationale=40)  # 40 generation calls and more: far more than 3 s
    run_dir = tmp_path / "run"
    server = server_with(Faults(), latency=0.5, responder=_responder)
    status = _run(spec, run_dir, server, "--deadline", "3", "--concurrency", "1", "-q")
    err = capsys.readouterr().err
    assert status == 4, err
    assert ("taskc: error: the run's deadline (--deadline 3) passed, so no new LLM requests were started after it "
            "and the run stopped; answered calls are cached") in err
    with ResponseCache(run_dir / "cache.sqlite") as cache:
        answered = len(cache)
    assert 1 <= answered <= len(chat_requests(server)) < 40  # stopped early, with what it had kept
    server.latency = 0.0
    assert _run(spec, run_dir, server, "-q") == 0, capsys.readouterr().err  # the same command finishes it
    stats = json.loads((run_dir / "stats.json").read_text())
    assert stats["calls"]["cached"] == answered and stats["calls"]["made"] == stats["calls"]["total"] - answered


# -- size: bodies capped while they are read, rejected examples cut short ----------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("faults, limit, message", [
    (Faults(padding_bytes=2 * 1024 * 1024), 1024 * 1024, "response larger than 1 MiB"),  # declared too long
    (Faults(padding_bytes=64 * 1024 * 1024, gzip=True), MAX_RESPONSE_BYTES, "response larger than 8 MiB"),  # bomb
    (Faults(padding_bytes=3000, gzip=True), 2000, "response larger than 2000 bytes"),
])
def test_an_oversize_body_is_refused_while_it_is_read(tmp_path: Path, server_with: Any, transport: str,
                                                      monkeypatch: pytest.MonkeyPatch, faults: Faults, limit: int,
                                                      message: str) -> None:
    use_transport(transport, monkeypatch)
    server = server_with(faults)
    result = _ask(_settings(server, max_response_bytes=limit), tmp_path)
    assert not result.ok and result.error == message
    assert result.kind is ErrorKind.TOO_LARGE and not result.kind.unreachable  # the server answered, at length
    assert result.attempts == 1  # not retried: the same request would be answered the same way


def test_a_gzip_answer_under_the_limit_is_read(tmp_path: Path, server_with: Any) -> None:
    server = server_with(Faults(padding_bytes=1000, gzip=True))
    assert _ask(_settings(server), tmp_path).ok


def test_an_embeddings_answer_may_grow_with_its_inputs(tmp_path: Path, server_with: Any) -> None:
    """A completion's limit would refuse many vectors at once; an embeddings request's grows per input."""
    server = server_with(Faults())

    async def embed() -> tuple[Any, str | None]:
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            client = LLMClient(_settings(server, max_response_bytes=1000), cache)
            try:
                return await client.embed(["grilled salmon", "rice bowl", "butter"], "text-embedding-3-small")
            finally:
                await client.aclose()

    vectors, error = asyncio.run(embed())
    assert error is None and len(vectors) == 3  # ~2 KB of JSON: over 1000 bytes, under 3 x 64 KiB


def test_a_huge_rejected_example_is_kept_short_with_a_note(tmp_path: Path, server_with: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    def responder(body: dict) -> dict | str:
        if body["response_format"]["json_schema"]["name"] == "classification":
            return _responder(body)
        return {"examples": [{"text": "great " * 50_000, "label": "pos"}, {"text": "good soup", "label": "pos"}]}

    server = server_with(Faults(), responder=responder)
    assert _run(_spec(tmp_path / "project"), tmp_path / "run", server, "-q") == 0, capsys.readouterr().err
    lines = (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()
    cut = [record for record in map(json.loads, lines) if "example_truncated" in record]
    assert cut and all(len(line) < 8192 for line in lines)
    size = len(json.dumps({"text": "great " * 50_000, "label": "pos"}))
    for record in cut:
        assert record["reason"]["id"] == "text" and len(record["example"]) == 4096
        assert '"text": "great great' in record["example"]
        assert record["example_truncated"] == (f"the example is {size} characters of JSON; only the first 4096 "
                                               "are kept here (the whole answer is in the cache)")


# -- the key: scrubbed where a response enters taskc --------------------------------------------------

def test_a_server_echoing_the_key_gets_it_into_no_file_of_the_run(tmp_path: Path, server_with: Any,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    run_dir = tmp_path / "run"
    server = server_with(Faults(echo_key=True), responder=_responder)
    status = _run(_spec(tmp_path / "project"), run_dir, server, "--json")
    captured = capsys.readouterr()
    assert status in (0, 3), captured.err
    assert {"cache.sqlite", "examples.jsonl", "train.jsonl", "stats.json", "model.joblib"} <= {
        p.name for p in run_dir.rglob("*") if p.is_file()}
    assert files_containing(run_dir, API_KEY) == []
    # the local model's vocabulary is lower-cased: the key's random part must not be in it either
    assert files_containing(run_dir, API_KEY.rsplit("-", 1)[-1].lower()) == []
    assert API_KEY not in captured.out + captured.err
    examples = (run_dir / "examples.jsonl").read_text()
    assert "[redacted]" in examples  # the server did echo it, into the request ids and the content


def test_scrubbing_reaches_every_string_of_a_parsed_answer() -> None:
    deep: Any = f"x{API_KEY}"
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    value = {"id": API_KEY, f"key {API_KEY}": [1, None, {"model": f"m-{API_KEY}"}], "deep": deep}
    scrubbed = scrub_in_place(value, API_KEY)
    inner = scrubbed.pop("deep")
    while isinstance(inner, list):
        [inner] = inner
    assert inner == "x[redacted]"
    assert API_KEY not in json.dumps(scrubbed) and "key [redacted]" in scrubbed
    assert scrub_in_place(f"Bearer {API_KEY}", API_KEY) == "Bearer [redacted]"
    assert scrub_in_place({"a": "taskc-no-key"}, "taskc-no-key") == {"a": "taskc-no-key"}


def test_batch_output_lines_are_scrubbed_and_priced_as_asked(tmp_path: Path) -> None:
    from taskc.runtime.batch import _BatchRunner
    from taskc.runtime.generation import examples_shape_problem, planned_calls
    from taskc.runtime.progress import ProgressReporter
    from taskc.runtime.provider import Budget, CallFailure, CallStats, ErrorKind
    from test_runtime_fixtures import compiled_keto

    [call] = planned_calls(compiled_keto(tmp_path))[:1]
    key = call.cache_key
    example = {"dish": f"Salmon {API_KEY}", "ingredients": ["salmon", "butter"], "label": "keto"}
    escaped = json.dumps({"examples": [example]}).replace("sk-", "\\u0073k-")  # the key behind a JSON escape
    answer = {"custom_id": key, "response": {"status_code": 200, "request_id": f"req_{API_KEY}", "body": {
        "model": f"my-local-model-{API_KEY}", "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000},
        "choices": [{"finish_reason": "stop", "message": {"content": escaped}}]}}}
    settings = ProviderSettings(base_url=None, api_key=API_KEY, **FAST)
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        runner = _BatchRunner(None, cache, settings, Budget(), CallStats(), ProgressReporter(),  # type: ignore[arg-type]
                              {key: call}, examples_shape_problem)
        runner._ingest_line(json.dumps(answer), {key})
        absurd = {**answer, "response": {**answer["response"], "body": {**answer["response"]["body"],
                                                                        "usage": {"prompt_tokens": float("inf")}}}}
        runner.answered.clear()
        runner._ingest_line(json.dumps(absurd).replace("Infinity", "1e999"), {key})
        record = cache.get(key)
    assert record is not None and API_KEY not in json.dumps(record)
    assert record["request_id"] == "req_[redacted]" and record["model"] == "my-local-model-[redacted]"
    assert record["content"]["examples"][0]["dish"] == "Salmon [redacted]"
    assert runner.stats.cost_usd == pytest.approx((0.15 + 0.60) * 0.5)  # gpt-4o-mini's prices at the Batch discount
    assert runner.failures == {key: CallFailure(ErrorKind.BAD_ANSWER,
                                                "malformed: usage: prompt_tokens is inf, not a whole number of tokens")}


# -- a server that reports no usage: charged by length, never as free ------------------------------

def test_an_answer_without_usage_is_charged_by_its_length(tmp_path: Path, server_with: Any,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(tmp_path / "project")
    status = _run(spec, tmp_path / "run", server_with(Faults(usage_json="null"), responder=_responder), "-q")
    assert status in (0, 3), capsys.readouterr().err
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["usage_estimated"] == stats["calls"]["made"] > 0
    assert stats["cost_usd"] > 0 and stats["tokens"]["input"] > 0 and stats["tokens"]["output"] > 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert any("came without token usage" in note for note in metrics["notes"])


def test_max_cost_holds_against_a_server_that_reports_no_usage(tmp_path: Path, server_with: Any) -> None:
    spec = _spec(tmp_path / "project", per_rationale=6)
    server = server_with(Faults(usage_json="null"), responder=_responder)
    _run(spec, tmp_path / "run", server, "--max-cost", "0.0001", "--concurrency", "1", "-q")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["stopped_by_budget"] and stats["calls"]["skipped_by_budget"] > 0  # free calls would never stop
    assert stats["cost_usd"] >= 0.0001 and stats["usage_estimated"] == stats["calls"]["made"]


@pytest.mark.parametrize("usage_json, estimated_side", [
    ('{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}', "both"),
    ('{"prompt_tokens": 1200}', "output"),  # the prompt only
    ('{"completion_tokens": 40}', "input"),
])
def test_max_cost_holds_against_a_server_that_counts_nothing_or_one_side(tmp_path: Path, server_with: Any,
                                                                         usage_json: str,
                                                                         estimated_side: str) -> None:
    """A request always has tokens, and so has an answer with content: a 0 or missing side is estimated."""
    spec = _spec(tmp_path / "project", per_rationale=6)
    server = server_with(Faults(usage_json=usage_json), responder=_responder)
    _run(spec, tmp_path / "run", server, "--max-cost", "0.0001", "--concurrency", "1", "-q")
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["stopped_by_budget"] and stats["calls"]["skipped_by_budget"] > 0
    assert stats["usage_estimated"] == stats["calls"]["made"] > 0
    made = stats["calls"]["made"]
    if estimated_side == "output":
        assert stats["tokens"]["input"] == 1200 * made and stats["tokens"]["output"] > 0
    if estimated_side == "input":
        assert stats["tokens"]["output"] == 40 * made and stats["tokens"]["input"] > 100 * made


def test_a_usage_that_counts_both_sides_is_charged_as_reported() -> None:
    from taskc.runtime.provider import charged_usage

    body = {"usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    assert charged_usage(body, {"input_tokens": 7, "output_tokens": 3}, [{"role": "user", "content": "x" * 4000}],
                         {}, {"message": {"content": "y" * 4000}}) == ({"input_tokens": 7, "output_tokens": 3}, False)


def test_the_estimate_of_a_call_without_usage_is_its_length_in_tokens() -> None:
    from taskc.runtime.provider import estimated_usage

    messages = [{"role": "user", "content": "x" * 400}]
    usage = estimated_usage(messages, {"type": "json_object"}, {"message": {"content": "y" * 80}})
    assert 100 < usage["input_tokens"] < 120 and usage["output_tokens"] == 20
    assert estimated_usage(messages, {}, None)["output_tokens"] == 0
