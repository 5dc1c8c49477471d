"""`taskc run` when the provider misbehaves: budgets, outages, odd bodies, a damaged cache, and the key.

Each test drives the real command (`main(["run", ...])`) or the real client against
the fake OpenAI server, or against a closed localhost port for an outage. Retries
and polls are shortened by wrapping `provider_settings_from_env`, so an outage
costs milliseconds rather than the minutes of backoff a real run would wait.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Faults, default_content
from fake_openai.server import ApiError, Response
from taskc.runtime import provider as provider_module
from taskc.runtime.cache import CacheError, ResponseCache
from taskc.runtime.provider import (
    Budget,
    CallFailure,
    CallResult,
    CallStats,
    ErrorKind,
    LLMClient,
    ProviderSettings,
)
from test_run_cli import GOLD, _project
from test_runtime_fixtures import (
    API_KEY,
    CARBS,
    TRANSPORTS,
    chat_requests,
    files_containing,
    keto_responder,
    use_transport,
)

from taskc.cli.main import main

FAST = {"max_retries": 1, "backoff_base": 0.01, "poll_interval": 0.01, "timeout": 5.0}


@pytest.fixture(autouse=True)
def _fast_provider(monkeypatch: pytest.MonkeyPatch, no_provider: None) -> None:
    """No inherited provider configuration, and short retries / polls for every run in this file."""
    original = provider_module.provider_settings_from_env

    def fast(*args: Any, **kwargs: Any) -> ProviderSettings | None:
        settings = original(*args, **kwargs)
        return None if settings is None else dataclasses.replace(settings, **FAST)

    monkeypatch.setattr(provider_module, "provider_settings_from_env", fast)


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there once the probe is closed


def _responder(body: dict) -> dict | str:
    """Classification calls get a keyword judgement; generation calls get the server's schema-valid default."""
    schema_name = body["response_format"]["json_schema"]["name"]
    if schema_name != "classification":
        return default_content(body)
    text = json.loads(body["messages"][-1]["content"])["text"]
    return {"label": "neg" if any(w in text for w in ("bad", "awful", "rude", "cold")) else "pos",
            "rationales": []}


def _small_generation(spec: Path, per_rationale: int = 2) -> Path:
    spec.write_text(spec.read_text().replace(
        "  model: gpt-4o-mini\n", f"  model: gpt-4o-mini\n  per_rationale: {per_rationale}\n  per_call: 2\n"))
    return spec


# -- one budget per run ---------------------------------------------------------------------------

@pytest.mark.parametrize("max_calls", [1, 5])
def test_max_calls_bounds_every_phase_of_the_run_together(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          max_calls: int) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    with FakeOpenAI(responder=_responder) as server:
        status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url,
                       "--max-calls", str(max_calls), "--json"])
        sent = len(chat_requests(server))
    captured = capsys.readouterr()
    assert status == 0, captured.err  # a budget stop is not a runtime failure
    assert sent == max_calls  # the budget is spent, not exceeded
    summary = json.loads(captured.out)
    assert any("budget" in note and f"--max-calls {max_calls}" in note for note in summary["notes"])
    phases = summary["llm"]
    assert phases["generation"]["calls_total"] + len(GOLD) > max_calls  # the run wanted more than it got
    if max_calls == 1:
        assert "llm" not in summary["metrics"]  # a predictor that labeled nothing is not scored
        assert any("prompted LLM labeled no gold item" in note for note in summary["notes"])
    # the calls the budget stopped are "not made" in the progress, not failed
    finals = [event for line in captured.err.splitlines() if (event := json.loads(line))["event"] == "done"]
    assert sum(event["skipped"] for event in finals) > 0 and all(event["failed"] == 0 for event in finals)
    assert phases["pool_labeling"]["skipped_by_budget"] + phases["prompted_baseline"]["skipped_by_budget"] > 0


def test_a_batched_phase_counts_the_calls_the_budget_stopped_too(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    with FakeOpenAI(responder=_responder) as server:
        status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "--batch",
                       "--max-calls", "5", "--json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    phases = json.loads(captured.out)["llm"]
    assert phases["pool_labeling"]["skipped_by_budget"] + phases["prompted_baseline"]["skipped_by_budget"] > 0


def test_the_progress_line_tells_calls_the_budget_stopped_from_failed_ones() -> None:
    from taskc.runtime.progress import ProgressState

    state = ProgressState(103, 103, 59, 0, 0, 1000, 200, 0.5, "pool labeling", skipped=44)
    assert state.line() == ("pool labeling: 103/103 calls, 59 accepted, 0 rejected, 0 failed, 44 not made (budget), "
                            "1,200 tokens, $0.5000")


def test_without_a_budget_the_same_run_makes_every_call(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    with FakeOpenAI(responder=_responder) as server:
        assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "--json"]) == 0
        sent = len(chat_requests(server))
    summary = json.loads(capsys.readouterr().out)
    assert sent > 5 and not any("budget" in note for note in summary["notes"])
    assert summary["metrics"]["llm"]["all"]["coverage"] == 1.0


def test_the_budget_prices_calls_with_the_tasks_own_prices() -> None:
    budget = Budget(max_cost=1.0, prices={"house-model": (500_000.0, 0.0)})
    stats = CallStats()
    provider_module.charge(stats, budget, "house-model", {"input_tokens": 1, "output_tokens": 0})
    assert budget.cost_usd == pytest.approx(0.5) and budget.allows()
    provider_module.charge(CallStats(), budget, "house-model", {"input_tokens": 1, "output_tokens": 0})
    assert not budget.allows()  # two phases' spending adds up in the one budget


# -- outages --------------------------------------------------------------------------------------

def test_an_unreachable_provider_exits_4_with_one_clear_message(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", _closed_port_url(), "-q"])
    out, err = capsys.readouterr()
    assert status == 4
    assert "taskc: error: the LLM provider failed all" in err and "connection failed" in err
    assert "internal error" not in err and "Traceback" not in err and out == ""


def test_with_format_json_a_failed_run_ends_with_an_error_event_and_a_json_document(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every stderr line is a JSON event, the last one the error; stdout is JSON too, for the script reading it."""
    spec = _small_generation(_project(tmp_path / "project"))
    status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", _closed_port_url(),
                   "--format", "json"])
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in err.splitlines()]  # no line of plain text among them
    assert status == 4 and events[-1]["event"] == "error" and events[-1]["exit_status"] == 4
    assert "the LLM provider failed all" in events[-1]["message"]
    assert json.loads(out) == {"error": events[-1]["message"], "exit_status": 4}


_ANSWER = (b'{"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "stop", '
           b'"message": {"role": "assistant", "content": "{}"}}]}')
_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
ODD_REPLIES = {  # what a broken server or proxy may send, and how the call ends
    "not HTTP at all": (b"\x00\x01this is not HTTP\r\n\r\n{}", "connection failed"),
    "body shorter than its length": (_HEAD + b"Content-Length: 500\r\n\r\n" + _ANSWER, "connection failed"),
    "broken gzip": (_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!", "connection failed"),
    "broken chunks": (_HEAD + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nxx", "connection failed"),
    "headers, then hang up": (_HEAD, "connection failed"),
    "an HTML page": (_HEAD.replace(b"application/json", b"text/html") + b"Content-Length: 6\r\n\r\n<html>",
                     "the response body is not JSON"),
    "HTTP/1.0 without a length": (b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + _ANSWER, None),
    "gzip": (_HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(_ANSWER))
             + gzip.compress(_ANSWER), None),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("reply", ODD_REPLIES)
def test_an_odd_reply_is_a_failed_call_never_a_crash(tmp_path: Path, reply: str, transport: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    use_transport(transport, monkeypatch)
    raw, expected_error = ODD_REPLIES[reply]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(raw)
        await writer.drain()
        writer.close()

    async def ask() -> tuple[CallResult, CallStats]:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = ProviderSettings(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, model=None, **FAST)
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            client = LLMClient(settings, cache)
            try:
                result = await client.complete_json(
                    messages=[{"role": "user", "content": "salmon?"}], model="gpt-4o-mini",
                    response_format={"type": "json_object"}, sampling={}, seed=None, cache_key="k")
            finally:
                await client.aclose()
                server.close()
        return result, client.stats

    result, stats = asyncio.run(ask())
    if expected_error is None:
        assert result.ok and result.content == {}
    else:
        assert not result.ok and result.error is not None and result.error.startswith(expected_error)
        # what the run decides on: a connection the server broke is the provider failing, an HTML page is not
        kind = ErrorKind.CONNECTION if expected_error == "connection failed" else ErrorKind.BAD_ANSWER
        assert result.kind is kind and result.kind.unreachable == (kind is ErrorKind.CONNECTION)
        assert stats.retries == FAST["max_retries"] and stats.calls_failed == 1


def test_an_outage_in_pool_labeling_stops_the_run_before_later_phases(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Generation switched off: the first phase to hit the dead provider is pool labeling, and it stops."""
    spec = _project(tmp_path / "project")
    spec.write_text(spec.read_text().replace(
        "  model: gpt-4o-mini\n", "  model: gpt-4o-mini\n  per_rationale: 0\n  per_class: 0\n  near_misses: 0\n"))
    status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", _closed_port_url(), "--json"])
    captured = capsys.readouterr()
    assert status == 4, captured.err
    assert "failed all 2 calls of the pool labeling" in captured.err  # two open pool items, no gold calls
    assert json.loads(captured.out)["exit_status"] == 4  # --json: the failure, not a summary


def test_a_phase_stops_asking_a_provider_that_failed_its_first_calls(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec = _small_generation(_project(tmp_path / "project"), per_rationale=40)  # many more calls than in flight
    with FakeOpenAI(faults=Faults(server_error=1.0)) as server:
        status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url,
                       "--concurrency", "2", "-q"])
        sent = len(chat_requests(server))
    err = capsys.readouterr().err
    assert status == 4, err
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    planned = stats["calls"]["total"]
    # the calls under way (a few more than the 2 slots: runtime/call_runner.py) tried and retried; no other
    # was sent, where every one of them would have been tried twice
    assert planned == 40 and sent <= (2 + 4) * (FAST["max_retries"] + 1) + 2
    assert stats["calls"]["failed"] == planned
    not_sent = [call for call in stats["failed_calls"] if call["error"].startswith("not sent: ")]
    assert len(not_sent) >= planned - (2 + 4) - 2  # but those under way: every worker, and the slots
    # the others failed on their own, or were under way when the phase stopped asking
    assert all(call["error"].startswith(("not sent: ", "not retried: ", "500 ")) for call in stats["failed_calls"])
    assert not_sent[0]["error"].startswith("not sent: the provider failed the first 2 calls of this phase (500 ")
    assert "the LLM provider failed all" in err


def test_a_provider_that_answers_badly_is_asked_every_call(tmp_path: Path) -> None:
    spec = _small_generation(_project(tmp_path / "project"), per_rationale=10)
    with FakeOpenAI(faults=Faults(malformed=1.0)) as server:  # answers: up, but of no use
        main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "--concurrency", "2",
              "-q"])
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert not any(call["error"].startswith("not sent") for call in stats["failed_calls"])
    assert stats["calls"]["requests"] == stats["calls"]["total"] * (FAST["max_retries"] + 1) == 20


def test_requests_that_time_out_say_which_option_gives_them_longer(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FAST, "timeout", 0.2)
    spec = _small_generation(_project(tmp_path / "project"))
    with FakeOpenAI(latency=2.0) as server:
        status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "-q"])
    err = capsys.readouterr().err
    assert status == 4, err
    assert "timed out after 0.2s" in err and "Each request may take 0.2 s (--request-timeout)" in err


def test_a_batch_api_outage_exits_4_not_an_internal_error(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", _closed_port_url(), "--batch",
                   "-q"])
    err = capsys.readouterr().err
    assert status == 4, err
    assert "taskc: error: the Batch API failed" in err and "internal error" not in err


def test_a_server_without_a_batch_api_is_told_to_run_without_batch(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    with FakeOpenAI() as server:
        def missing(*args: Any) -> Response:
            raise ApiError(404, "Not Found", "not_found")

        server._routes = [(verb, pattern, missing if name == "POST /v1/files" else handler, name)
                          for verb, pattern, handler, name in server._routes]
        status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "--batch",
                       "-q"])
    err = capsys.readouterr().err
    assert status == 4, err
    assert "the server has no Batch API (POST /v1/files answered 404): run without --batch" in err


def test_a_batch_api_error_is_scrubbed_of_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with FakeOpenAI() as server:
        def refuse(*args: Any) -> Response:
            raise ApiError(400, f"key {API_KEY} may not upload files", "invalid_request")

        server._routes = [(verb, pattern, refuse if name == "POST /v1/files" else handler, name)
                          for verb, pattern, handler, name in server._routes]
        status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "--batch",
                       "-q"])
    err = capsys.readouterr().err
    assert status == 4 and "the Batch API failed" in err and "[redacted]" in err and API_KEY not in err


# -- odd provider bodies --------------------------------------------------------------------------

WEIRD_BODIES: list[Any] = [
    [1, 2, 3],
    {"choices": "none"},
    {"choices": [5]},
    {"choices": [{"message": "just text"}]},
    {"choices": [{"message": {"content": 5}}], "usage": "lots", "model": ["x"], "id": 7},
    {"choices": [{"message": {"content": "{\"label\": \"pos\"}"}, "finish_reason": 3}],
     "usage": {"prompt_tokens": "many", "completion_tokens": None}},
]


def _call(settings: ProviderSettings, key: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
    return {"messages": [{"role": "user", "content": "classify"}], "model": "gpt-4o-mini",
            "response_format": {"type": "json_schema", "json_schema": {"name": "label", "schema": schema}},
            "sampling": {"temperature": 0.0}, "seed": 1, "cache_key": key}


def _complete(server: FakeOpenAI, tmp_path: Path, keys: list[str]) -> list[CallResult]:
    settings = ProviderSettings(base_url=server.base_url, api_key=API_KEY, **FAST)

    async def go() -> list[CallResult]:
        with ResponseCache(tmp_path / "cache.sqlite") as cache:
            client = LLMClient(settings, cache)
            try:
                return list(await asyncio.gather(*(client.complete_json(**_call(settings, k)) for k in keys)))
            finally:
                await client.aclose()

    return asyncio.run(go())


def _answer_with(server: FakeOpenAI, answer: Callable[[dict], Any]) -> None:
    server._completion = lambda body, fault: answer(body)  # type: ignore[method-assign]


@pytest.mark.parametrize("index", range(len(WEIRD_BODIES)))
def test_a_malformed_completion_body_is_a_recorded_failure(tmp_path: Path, index: int) -> None:
    with FakeOpenAI() as server:
        _answer_with(server, lambda body: Response(200, WEIRD_BODIES[index]))
        [result] = _complete(server, tmp_path, ["k"])
    if index == len(WEIRD_BODIES) - 1:  # odd usage and finish_reason, but a usable answer
        # a usage of no numbers counts no tokens, so both sides are estimated from the length
        assert result.ok and result.content == {"label": "pos"}
        assert result.usage["input_tokens"] > 0 and result.usage["output_tokens"] > 0
    else:
        assert not result.ok and result.error and result.attempts == 2  # retried once, then recorded
        assert result.kind is ErrorKind.BAD_ANSWER and not result.kind.unreachable


@pytest.mark.parametrize("body, retried", [({"error": "quota exceeded"}, True), ("quota exceeded", True),
                                           ({"error": {"code": "insufficient_quota"}}, False),
                                           ({"code": "insufficient_quota"}, False)])
def test_odd_429_bodies_are_classified_without_raising(tmp_path: Path, body: Any, retried: bool) -> None:
    with FakeOpenAI() as server:
        _answer_with(server, lambda request: Response(429, body))
        [result] = _complete(server, tmp_path, ["k"])
    assert not result.ok and result.attempts == (2 if retried else 1)
    assert result.error == ("429 rate limited" if retried else "429 insufficient quota")
    assert result.kind is (ErrorKind.RATE_LIMITED if retried else ErrorKind.QUOTA) and result.kind.unreachable


def test_malformed_batch_output_lines_become_failures(tmp_path: Path) -> None:
    from taskc.runtime.batch import _BatchRunner
    from taskc.runtime.generation import examples_shape_problem, planned_calls
    from taskc.runtime.progress import ProgressReporter
    from test_runtime_fixtures import compiled_keto

    calls = planned_calls(compiled_keto(tmp_path))[:1]
    key = calls[0].cache_key
    settings = ProviderSettings(base_url=None, api_key=API_KEY, **FAST)
    bad, http = ErrorKind.BAD_ANSWER, ErrorKind.HTTP_ERROR
    lines = [  # each output line, and the failure it leaves (None: it cannot be attributed to a call)
        ("[1, 2]", None), ("not json", None),
        (json.dumps({"custom_id": key, "response": "ok"}), CallFailure(http, "no status no error message")),
        (json.dumps({"custom_id": key, "response": {"status_code": 200, "body": []}}),
         CallFailure(bad, "malformed: answer has no choices")),
        (json.dumps({"custom_id": key, "response": {"status_code": 200, "body": {"choices": ["x"]}}}),
         CallFailure(bad, "malformed: answer has no choices")),
        (json.dumps({"custom_id": key, "response": {"status_code": 200, "body": {
            "error": {"message": "Upstream provider\nrate limited", "code": 429}}}}),
         CallFailure(bad, "malformed: answer has no choices, only an error: Upstream provider rate limited")),
        (json.dumps({"custom_id": key, "response": {"status_code": 200, "body": {
            "choices": [{"message": "hi"}], "usage": [], "model": 3}}}), CallFailure(bad, "malformed: empty answer")),
        (json.dumps({"custom_id": key, "response": {"status_code": 500, "body": "oops"}, "error": None}),
         CallFailure(http, "500 no error message")),
        (json.dumps({"custom_id": key, "response": {"status_code": 401, "body": {"error": {"message": "bad key"}}}}),
         CallFailure(ErrorKind.AUTH, "401 bad key")),
    ]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        runner = _BatchRunner(None, cache, settings, Budget(), CallStats(), ProgressReporter(),  # type: ignore[arg-type]
                              {key: calls[0]}, examples_shape_problem)
        for line, failure in lines:
            runner.failures.clear()
            runner._ingest_line(line, {key})
            assert runner.failures == ({} if failure is None else {key: failure}), line
        assert key not in cache
    assert runner.stats.errors == {"server_error": 2, "http_401": 1, "malformed": 4}  # counted as online calls are


# -- the cache ------------------------------------------------------------------------------------

def test_a_damaged_cache_exits_4_and_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _small_generation(_project(tmp_path / "project"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "cache.sqlite").write_bytes(b"this is not a database, it only has the name of one" * 100)
    with FakeOpenAI(responder=_responder) as server:
        status = main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "-q"])
    err = capsys.readouterr().err
    assert status == 4, err
    assert "cache.sqlite is damaged or locked" in err and "delete it to start over" in err
    assert "internal error" not in err


def test_the_cache_turns_sqlite_errors_into_one_message(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(CacheError, match=r"cache\.sqlite is damaged or locked: .*delete it"):
        ResponseCache(path)
    good = ResponseCache(tmp_path / "good.sqlite")
    good.close()
    with pytest.raises(CacheError):
        good.get("anything")  # a closed database is reported the same way, not as sqlite3.ProgrammingError


def test_a_cache_record_that_is_not_json_is_a_cache_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        cache.put("k", {"content": {}})
        cache.journal_put("batch/x", {"state": "submitted"})
    with sqlite3.connect(path) as other:  # changed by something other than taskc
        other.execute("UPDATE responses SET record = 'not json'")
        other.execute("UPDATE journal SET record = 'not json'")
    with ResponseCache(path) as cache:
        with pytest.raises(CacheError, match=r"cache\.sqlite is damaged: .*delete it"):
            cache.get("k")
        with pytest.raises(CacheError, match=r"cache\.sqlite is damaged: .*delete it"):
            cache.journal_get("batch/x")


# -- the API key ----------------------------------------------------------------------------------

def test_a_full_run_with_finetuning_writes_the_key_nowhere(keto_project: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    spec = keto_project
    text = spec.read_text()
    assert "  provider: local\n" in text
    spec.write_text(text.replace("  provider: local\n", "  provider: openai\n")
                    .replace("  per_rationale: 30\n", "  per_rationale: 10\n").replace("  near_misses: 10\n", "")
                    .replace("  per_class: 20\n", ""))
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    run_dir = tmp_path / "run"

    def responder(body: dict) -> dict:  # the fine-tuned model is asked for a bare label
        if body["response_format"]["json_schema"]["name"] != "label":
            return keto_responder(body)
        dish = body["messages"][-1]["content"]
        return {"label": "not_keto" if any(carb in dish for carb in CARBS) else "keto"}

    with FakeOpenAI(responder=responder, finetune_polls_to_finish=2) as server:
        status = main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "--finetune",
                       "--json"])
    captured = capsys.readouterr()
    assert status in (0, 3), captured.err
    summary = json.loads(captured.out)
    assert "finetuned" in summary["metrics"], summary["notes"]
    written = {p.name for p in run_dir.rglob("*") if p.is_file()}
    assert {"metrics.json", "report.md", "report.html", "finetune_job.json", "cache.sqlite"} <= written
    assert files_containing(run_dir, API_KEY) == []
    assert API_KEY not in captured.out + captured.err
