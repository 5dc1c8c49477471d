"""End-to-end tests of `run_generation` with the real openai client against the fake server.

Each test compiles the keto example, runs its plan against tests/fake_openai and
checks the run directory: the full run, a warm rerun with zero calls, a fault
storm, the budget guard and its resume, a SIGKILL in the middle and the resume,
the --model override, the concurrency bound, and that the API key is in no file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Faults
from taskc.compiler import canonical_json
from taskc.compiler.driver import CompiledTask
from taskc.compiler.generation_calls import call_indices
from taskc.runtime.datasets import read_jsonl
from taskc.runtime.generation import GenerationOptions, load_generated_examples, planned_calls, run_generation
from taskc.runtime.validate import ExampleValidator
from test_runtime_fixtures import (
    API_KEY,
    TRANSPORTS,
    chat_requests,
    files_containing,
    keto_responder,
    refuse_formats,
    refusing_parameter,
    settings_for,
    use_transport,
)

QUIET = GenerationOptions(quiet=True)


def without_request_ids(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Examples as they compare across servers: the request ids differ, everything else must not."""
    return [{**e, "provenance": {k: v for k, v in e["provenance"].items() if k != "request_id"}} for e in examples]


def test_full_keto_plan_produces_a_valid_dataset(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
    assert summary.calls_total == len(keto.plan) and summary.calls_made == len(keto.plan)
    assert summary.calls_failed == 0 and not summary.stopped_by_budget
    examples = load_generated_examples(tmp_path)
    assert len(examples) == summary.accepted > 0
    assert summary.rejected > 0 and summary.duplicates > 0  # the responder plants both
    validator = ExampleValidator(keto.ir)
    assert all(validator.check({k: e[k] for k in ("dish", "ingredients", "label")}) is None for e in examples)
    assert len({e["id"] for e in examples}) == len(examples)
    jobs = {job.id: job for job in keto.plan}
    for example in examples:
        provenance = example["provenance"]
        job = jobs[provenance["job"]]
        assert provenance["prompt_sha256"] == job.prompt_sha256 and provenance["model"] == job.model
        assert provenance["rationale"] == job.rationale and provenance["request_id"]
        assert isinstance(example["rules"]["fired"], list)
    train, val = read_jsonl(tmp_path / "train.jsonl"), read_jsonl(tmp_path / "val.jsonl")
    assert len(train) + len(val) == len(examples) and val
    first = examples[0]
    expected = keto.training_messages({"dish": first["dish"], "ingredients": first["ingredients"]}, first["label"])
    assert {"messages": expected} in train + val
    rejected = read_jsonl(tmp_path / "rejected.jsonl")
    reasons = {r["reason"]["check"] for r in rejected}
    assert reasons == {"field", "duplicate"}
    assert any(r["reason"]["id"] == "ingredients" and r["reason"]["value"] for r in rejected)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["calls"]["made"] == len(keto.plan)
    assert stats["tokens"]["input"] == summary.input_tokens > 0 and stats["tokens"]["output"] > 0
    assert stats["cost_usd"] > 0 and stats["rejects_by_reason"] == {"field:ingredients": summary.rejected}
    assert sum(stats["duplicates"].values()) == summary.duplicates
    assert json.loads(json.dumps(summary.to_json()))["accepted"] == summary.accepted


def test_requests_carry_the_plan_exactly(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
        bodies = chat_requests(server)
    by_seed = {body["seed"]: body for body in bodies}
    for job, call in zip(keto.plan, call_indices(keto.plan), strict=True):
        body = by_seed[job.seed]
        assert body["model"] == job.model and body["response_format"] == job.response_format
        assert body["messages"] == keto.prompts[job.prompt].as_chat(call)
        assert body["temperature"] == job.temperature and body["max_tokens"] == job.max_tokens


def test_warm_rerun_makes_zero_calls_and_writes_the_same_dataset(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
        first = (tmp_path / "examples.jsonl").read_bytes()
        before = server.stats.snapshot()["total"]
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
        assert server.stats.snapshot()["total"] == before
    assert summary.calls_made == 0 and summary.calls_cached == len(keto.plan) and summary.cost_usd == 0
    assert (tmp_path / "examples.jsonl").read_bytes() == first


def test_fault_storm_completes_with_every_job_accounted_for(keto: CompiledTask, tmp_path: Path) -> None:
    faults = Faults(rate_limit=0.15, server_error=0.15, reset=0.03, malformed=0.1, truncated=0.05,
                    schema_violation=0.05, retry_after=0.02)
    with FakeOpenAI(faults=faults, responder=keto_responder, seed=3) as server:
        summary = run_generation(keto, tmp_path, settings_for(server, max_retries=8, concurrency=16),
                                 QUIET)
        snapshot = server.stats.snapshot()
    faults_sent = snapshot["faults"]
    assert sum(faults_sent.values()) > 10
    stats = json.loads((tmp_path / "stats.json").read_text())
    # Every fault is seen and classified once (a reset as a lost connection), and every one is retried
    # except the last of a call that ran out of attempts.
    assert stats["errors"] == {("connection" if kind == "reset" else kind): n for kind, n in faults_sent.items()}
    assert summary.retries == sum(faults_sent.values()) - summary.calls_failed
    failed_jobs = {f["job"] for f in stats["failed_calls"]}
    examples = load_generated_examples(tmp_path)
    answered_jobs = {e["provenance"]["job"] for e in examples} | {
        r["provenance"]["job"] for r in read_jsonl(tmp_path / "rejected.jsonl")}
    assert answered_jobs | failed_jobs == {job.id for job in keto.plan}
    assert not answered_jobs & failed_jobs
    assert len({e["id"] for e in examples}) == len(examples)
    assert summary.calls_made + summary.calls_failed == len(keto.plan)


def test_hung_calls_time_out_and_are_retried(keto: CompiledTask, tmp_path: Path) -> None:
    faults = Faults(timeout=0.25, timeout_seconds=3.0)
    with FakeOpenAI(faults=faults, responder=keto_responder, seed=4) as server:
        summary = run_generation(keto, tmp_path, settings_for(server, timeout=0.3, max_retries=10, concurrency=16),
                                 QUIET)
        hung = server.stats.snapshot()["faults"]["timeout"]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert hung > 0 and stats["errors"]["timeout"] == hung
    assert summary.calls_made == len(keto.plan) and summary.retries == hung


def test_calls_send_what_the_endpoint_needs_and_no_sdk_telemetry(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
    sent = {name for method, path, headers, _body in server.requests if path.endswith("/chat/completions")
            for name in headers}
    assert {"authorization", "content-type", "user-agent"} <= sent
    assert not {name for name in sent if name.startswith("x-stainless")}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reset_connections_count_as_connection_errors_not_timeouts(
        keto: CompiledTask, tmp_path: Path, transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK's aiohttp transport calls every lost connection a connect timeout; the stats must not.
    # Without the aiohttp extra the client falls back to the default httpx transport, which must agree.
    use_transport(transport, monkeypatch)
    with FakeOpenAI(faults=Faults(reset=0.3), responder=keto_responder, seed=6) as server:
        summary = run_generation(keto, tmp_path, settings_for(server, max_retries=10), QUIET)
        resets = server.stats.snapshot()["faults"]["reset"]
    errors = json.loads((tmp_path / "stats.json").read_text())["errors"]
    assert resets > 0 and errors == {"connection": resets}
    assert summary.calls_made == len(keto.plan)


def test_calls_that_keep_failing_are_recorded_not_raised(keto: CompiledTask, tmp_path: Path) -> None:
    faults = Faults(server_error=0.5, malformed=0.3)
    with FakeOpenAI(faults=faults, responder=keto_responder, seed=5) as server:
        summary = run_generation(keto, tmp_path, settings_for(server, max_retries=0), QUIET)
    assert summary.calls_failed > 0 and summary.calls_made + summary.calls_failed == len(keto.plan)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert len(stats["failed_calls"]) == summary.calls_failed
    assert {"server_error", "malformed"} <= set(stats["errors"])
    assert all(f["error"] for f in stats["failed_calls"])
    # The failed calls are not cached: a rerun against a healthy server makes exactly them.
    with FakeOpenAI(responder=keto_responder) as server:
        again = run_generation(keto, tmp_path, settings_for(server), QUIET)
        assert len(chat_requests(server)) == summary.calls_failed
    assert again.calls_failed == 0 and again.calls_made == summary.calls_failed


def test_budget_guard_stops_cleanly_and_resumes(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        limited = run_generation(keto, tmp_path, settings_for(server, concurrency=4),
                                 GenerationOptions(max_calls=6, quiet=True))
        assert len(chat_requests(server)) == 6
    assert limited.stopped_by_budget and limited.calls_made == 6 and limited.calls_failed == 0
    assert limited.calls_skipped == len(keto.plan) - 6
    assert 0 < len(load_generated_examples(tmp_path)) < 60
    with FakeOpenAI(responder=keto_responder) as server:
        resumed = run_generation(keto, tmp_path, settings_for(server), QUIET)
        assert len(chat_requests(server)) == len(keto.plan) - 6
    assert not resumed.stopped_by_budget and resumed.calls_cached == 6
    with FakeOpenAI(responder=keto_responder) as server:
        clean = tmp_path / "clean"
        run_generation(keto, clean, settings_for(server), QUIET)
    assert without_request_ids(load_generated_examples(tmp_path)) == without_request_ids(
        load_generated_examples(clean))


def test_cost_budget_stops_after_the_cost_is_reached(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        summary = run_generation(keto, tmp_path / "capped", settings_for(server, concurrency=1),
                                 GenerationOptions(max_cost=0.0003, quiet=True))
        # Concurrency 1: the call that crossed the limit is the last one made, so one call fewer stays under it.
        one_fewer = run_generation(keto, tmp_path / "one_fewer", settings_for(server, concurrency=1),
                                   GenerationOptions(max_calls=summary.calls_made - 1, quiet=True))
    assert summary.stopped_by_budget and 0 < summary.calls_made < len(keto.plan)
    assert summary.cost_usd >= 0.0003 > one_fewer.cost_usd
    assert json.loads((tmp_path / "capped" / "stats.json").read_text())["stopped_by_budget"] is True


def test_concurrency_bound_is_never_exceeded(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder, latency=0.05, faults=Faults(rate_limit=0.2, retry_after=0.01)) \
            as server:
        run_generation(keto, tmp_path, settings_for(server, concurrency=3), QUIET)
        snapshot = server.stats.snapshot()
    assert snapshot["max_in_flight"] == 3


def test_retry_after_is_honoured(keto: CompiledTask, tmp_path: Path) -> None:
    import asyncio

    from taskc.runtime.cache import ResponseCache
    from taskc.runtime.provider import LLMClient

    call = planned_calls(keto)[0]

    async def one_call(server: FakeOpenAI) -> tuple[Any, float]:
        with ResponseCache(tmp_path / "c.sqlite") as cache:
            client = LLMClient(settings_for(server, max_retries=1, backoff_base=0.0), cache)
            started = time.monotonic()
            result = await client.complete_json(messages=call.messages, model=call.model,
                                                response_format=call.job.response_format,
                                                sampling=call.job.sampling(), seed=call.job.seed,
                                                cache_key=call.cache_key)
            await client.aclose()
            return result, time.monotonic() - started

    with FakeOpenAI(faults=Faults(rate_limit=1.0, retry_after=0.4)) as server:
        result, elapsed = asyncio.run(one_call(server))
    assert not result.ok and result.attempts == 2 and "429" in (result.error or "")
    assert elapsed >= 0.4  # the second attempt waited for Retry-After, not the zero backoff


def test_model_override_changes_model_and_cache_key(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
        summary = run_generation(keto, tmp_path, settings_for(server, model="my-local-model"), QUIET)
        models = {body["model"] for body in chat_requests(server)}
    assert models == {"gpt-4o-mini", "my-local-model"} and summary.calls_made == len(keto.plan)
    assert {e["provenance"]["model"] for e in load_generated_examples(tmp_path)} == {"my-local-model"}
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["unpriced_models"] == ["my-local-model"]


def test_the_api_key_is_in_no_file(keto: CompiledTask, tmp_path: Path) -> None:
    # Both paths, with failures recorded (their messages are where a key could leak), into separate runs.
    faults = Faults(rate_limit=0.2, server_error=0.2, malformed=0.2)
    with FakeOpenAI(faults=faults, responder=keto_responder, seed=7) as server:
        run_generation(keto, tmp_path / "online", settings_for(server, max_retries=0), QUIET)
        run_generation(keto, tmp_path / "batch", settings_for(server, poll_interval=0.01),
                       GenerationOptions(batch=True, quiet=True))
        endpoints = {(method, path) for method, path, _headers, _body in server.requests}
    assert json.loads((tmp_path / "online" / "stats.json").read_text())["failed_calls"]
    assert {("POST", "/v1/files"), ("POST", "/v1/batches")} <= endpoints
    assert (tmp_path / "online" / "cache.sqlite").exists() and (tmp_path / "batch" / "examples.jsonl").exists()
    assert files_containing(tmp_path, API_KEY) == []
    assert API_KEY not in repr(settings_for(server))


_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_runtime_fixtures import compiled_keto
    from taskc.runtime.generation import GenerationOptions, run_generation
    from taskc.runtime.provider import ProviderSettings
    compiled = compiled_keto(Path({work!r}))
    settings = ProviderSettings(base_url={url!r}, api_key={key!r}, model=None, backoff_base=0.01,
                                concurrency=2)
    run_generation(compiled, Path({run!r}), settings, GenerationOptions(quiet=True))
""")


def _cached_keys(run_dir: Path) -> set[str]:
    path = run_dir / "cache.sqlite"
    if not path.exists():
        return set()
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return {row[0] for row in db.execute("SELECT key FROM responses")}
    except sqlite3.OperationalError:
        return set()  # the child is still creating the schema


def test_killed_run_resumes_without_repeating_or_losing_anything(keto: CompiledTask, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with FakeOpenAI(responder=keto_responder, latency=0.1) as server:
        script = _CHILD.format(tests=str(Path(__file__).parents[1]), work=str(tmp_path / "child"), url=server.base_url,
                               key=API_KEY, run=str(run_dir))
        child = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while len(_cached_keys(run_dir)) < 8 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        done_before_kill = _cached_keys(run_dir)
        assert 8 <= len(done_before_kill) < len(keto.plan)
        assert not (run_dir / "examples.jsonl").exists()
        requests_before = len(chat_requests(server))
        summary = run_generation(keto, run_dir, settings_for(server), QUIET)
        resumed_bodies = chat_requests(server)[requests_before:]
    calls = {call.job.seed: call for call in planned_calls(keto)}
    resumed_keys = [calls[body["seed"]].cache_key for body in resumed_bodies]
    assert not set(resumed_keys) & done_before_kill  # no completed call was repeated
    assert len(resumed_keys) == len(set(resumed_keys)) == len(keto.plan) - len(done_before_kill)
    assert summary.calls_cached == len(done_before_kill)
    with FakeOpenAI(responder=keto_responder) as server:
        run_generation(keto, tmp_path / "clean", settings_for(server), QUIET)
    resumed = load_generated_examples(run_dir)
    clean = load_generated_examples(tmp_path / "clean")
    assert [e["id"] for e in resumed] == [e["id"] for e in clean]
    assert without_request_ids(resumed) == without_request_ids(clean)
    assert files_containing(run_dir, API_KEY) == []


def test_max_tokens_is_renamed_when_the_server_asks_for_max_completion_tokens(keto: CompiledTask,
                                                                             tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    with FakeOpenAI(responder=keto_responder) as server:
        refusing_parameter(server, "max_tokens", ApiError(
            400, "Unsupported parameter: 'max_tokens' is not supported with this model. "
                 "Use 'max_completion_tokens' instead.", "unsupported_parameter"))
        summary = run_generation(keto, tmp_path, settings_for(server), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert sum("max_completion_tokens" in body for body in bodies) == len(keto.plan)
    assert all(body["max_completion_tokens"] == keto.plan[0].max_tokens
               for body in bodies if "max_completion_tokens" in body)


def test_a_server_that_refuses_the_json_schema_format_is_asked_in_json_mode_with_the_schema_in_the_prompt(
        keto: CompiledTask, tmp_path: Path) -> None:
    planned = keto.plan[0].response_format
    with FakeOpenAI(responder=keto_responder) as server:
        refuse_formats(server, [planned], ("json_schema",), "This response_format type is unavailable now")
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=4), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    refused = [b for b in bodies if b["response_format"]["type"] == "json_schema"]
    asked_again = [b for b in bodies if b["response_format"]["type"] == "json_object"]
    assert 1 <= len(refused) <= 4  # the calls in flight when the first refusal came; none after it
    assert len(asked_again) == len(keto.plan)
    schema_text = canonical_json(planned["json_schema"]["schema"])
    assert all(schema_text in b["messages"][0]["content"] for b in asked_again)
    assert all(schema_text not in b["messages"][0]["content"] for b in refused)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["response_format_fallback"] == "json_object"
    assert stats["errors"] == {"http_400": len(refused)}


def test_a_server_without_json_mode_either_is_asked_with_no_response_format(keto: CompiledTask,
                                                                           tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        refuse_formats(server, [keto.plan[0].response_format], ("json_schema", "json_object"),
                 "Invalid parameter: 'response_format' of type 'json_object' is not supported with this model.")
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=1), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert [b.get("response_format", {}).get("type") for b in bodies[:3]] == ["json_schema", "json_object", None]
    assert all("response_format" not in b for b in bodies[2:])
    assert json.loads((tmp_path / "stats.json").read_text())["response_format_fallback"] == "none"


def test_answers_asked_for_without_the_schema_are_still_checked_against_it(keto: CompiledTask,
                                                                          tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        refuse_formats(server, [keto.plan[0].response_format], ("json_schema",), "json_schema is not supported",
                 answer_off_schema=True)
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=1, max_retries=1), QUIET)
    assert summary.calls_made == 0 and summary.calls_failed == len(keto.plan)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["errors"]["schema_violation"] > 0 and "schema_violation" in stats["failed_calls"][0]["error"]


def test_a_sampling_parameter_the_model_refuses_is_left_out_of_every_later_call(keto: CompiledTask,
                                                                                tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    refusal = ApiError(400, "Unsupported value: 'temperature' does not support 0.9 with this model. Only the "
                            "default (1) value is supported.", "unsupported_value", param="temperature")
    with FakeOpenAI(responder=keto_responder) as server:
        refusing_parameter(server, "temperature", refusal)
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=2), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert 1 <= sum("temperature" in b for b in bodies) <= 2  # the calls in flight when the refusal came
    assert len(bodies) - sum("temperature" in b for b in bodies) == len(keto.plan)
    assert all(b["seed"] is not None and b["response_format"]["type"] == "json_schema" for b in bodies)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["dropped_parameters"] == list(summary.to_json()["dropped_parameters"]) == ["temperature"]


def test_a_server_that_forbids_extra_inputs_gets_its_refused_parameter_named(keto: CompiledTask,
                                                                            tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    fastapi = {"detail": [{"type": "extra_forbidden", "loc": ["body", "seed"], "msg": "Extra inputs are not permitted",
                           "input": 1}]}
    with FakeOpenAI(responder=keto_responder) as server:
        refusing_parameter(server, "seed", ApiError(422, "unused", body=fastapi))
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=1), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert ["seed" in b for b in bodies[:2]] == [True, False] and not any("seed" in b for b in bodies[1:])
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["dropped_parameters"] == ["seed"] and stats["errors"] == {"http_422": 1}


def test_an_error_body_without_a_message_is_shown_as_the_server_sent_it(keto: CompiledTask, tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    fastapi = {"detail": [{"type": "missing", "loc": ["body", "messages", 0, "name"], "msg": "Field required"}]}
    with FakeOpenAI(responder=keto_responder) as server:
        refusing_parameter(server, "messages", ApiError(422, "unused", body=fastapi))
        run_generation(keto, tmp_path, settings_for(server, concurrency=1), QUIET)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["failed_calls"][0]["error"].endswith("(422 messages.0.name: Field required)")
    assert "dropped_parameters" not in stats


def test_a_400_about_something_else_is_not_taken_for_a_refused_format(keto: CompiledTask, tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    with FakeOpenAI(responder=keto_responder) as server:
        def bad_request(body: Any, fault: str | None) -> dict[str, Any]:
            raise ApiError(400, "Invalid value for 'temperature': must be at most 2.", "invalid_request_error")

        server._completion = bad_request  # type: ignore[method-assign]
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=1), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_failed == len(keto.plan)
    assert all(b["response_format"]["type"] == "json_schema" for b in bodies)
    assert "response_format_fallback" not in json.loads((tmp_path / "stats.json").read_text())


def test_a_proxy_that_answers_200_with_its_upstreams_error_is_retried_and_named(keto: CompiledTask,
                                                                              tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        answer = server._completion
        failed_once: set[int] = set()

        def flaky_upstream(body: Any, fault: str | None) -> dict[str, Any]:
            if body["seed"] not in failed_once:
                failed_once.add(body["seed"])
                return {"error": {"message": "Provider returned error: upstream overloaded", "code": 502}}
            return answer(body, fault)

        server._completion = flaky_upstream  # type: ignore[method-assign]
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=2), QUIET)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0 and summary.retries == len(keto.plan)
    with FakeOpenAI(responder=keto_responder) as server:
        server._completion = lambda body, fault: {"error": {"message": "Provider returned error"}}  # type: ignore
        run_generation(keto, tmp_path / "down", settings_for(server, concurrency=1, max_retries=1), QUIET)
    stats = json.loads((tmp_path / "down" / "stats.json").read_text())
    assert "answer has no choices, only an error: Provider returned error" in stats["failed_calls"][0]["error"]


def test_a_model_that_takes_fewer_completion_tokens_is_asked_for_no_more(keto: CompiledTask, tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    with FakeOpenAI(responder=keto_responder) as server:
        answer = server._completion

        def smaller_model(body: Any, fault: str | None) -> dict[str, Any]:
            if body["max_tokens"] > 1500:
                raise ApiError(400, f"max_tokens is too large: {body['max_tokens']}. This model supports at most "
                                    f"1500 completion tokens, whereas you provided {body['max_tokens']}.",
                               "invalid_value", param="max_tokens")
            return answer(body, fault)

        server._completion = smaller_model  # type: ignore[method-assign]
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=2), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert 1 <= sum(b["max_tokens"] == 2000 for b in bodies) <= 2  # the calls in flight when the refusal came
    assert sum(b["max_tokens"] == 1500 for b in bodies) == len(keto.plan)


def test_a_request_longer_than_the_context_is_asked_again_for_what_fits(keto: CompiledTask, tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    with FakeOpenAI(responder=keto_responder) as server:
        answer = server._completion

        def small_context(body: Any, fault: str | None) -> dict[str, Any]:
            given = len(json.dumps(body["messages"])) // 4
            if given + body["max_tokens"] > 2048:
                raise ApiError(400, f"This model's maximum context length is 2048 tokens. However, you requested "
                                    f"{given + body['max_tokens']} tokens ({given} in the messages, "
                                    f"{body['max_tokens']} in the completion). Please reduce the length of the "
                                    "messages or completion.", "BadRequestError")
            return answer(body, fault)

        server._completion = small_context  # type: ignore[method-assign]
        summary = run_generation(keto, tmp_path, settings_for(server, concurrency=1), QUIET)
        bodies = chat_requests(server)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert len(bodies) == 2 * len(keto.plan)  # each call's own limit: every call is refused once
    asked = [b["max_tokens"] for b in bodies]
    assert asked.count(2000) == len(keto.plan) and all(2048 - 600 < tokens < 2000 for tokens in asked if tokens != 2000)
