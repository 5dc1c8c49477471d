"""Fine-tuning and Batch API lifecycles against the fake server, including their resumption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Faults
from taskc.compiler import canonical_json
from taskc.compiler.driver import CompiledTask
from taskc.runtime import batch as batch_module
from taskc.runtime.finetune import FINETUNE_JOB_FILE, run_finetune, validate_training_file
from taskc.runtime.generation import GenerationOptions, load_generated_examples, run_generation
from taskc.runtime.progress import ProgressReporter
from test_runtime_fixtures import (
    API_KEY,
    files_containing,
    keto_responder,
    refuse_formats,
    refusing_parameter,
    settings_for,
)

QUIET = GenerationOptions(quiet=True)
BATCH = GenerationOptions(batch=True, quiet=True)


class Recorder(ProgressReporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


def endpoint_count(server: FakeOpenAI, name: str) -> int:
    return int(server.stats.snapshot()["by_endpoint"].get(name, 0))


# -- fine-tuning ------------------------------------------------------------------------------------

def test_finetune_lifecycle_uploads_creates_polls_and_records(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder, finetune_polls_to_finish=4) as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
        recorder = Recorder()
        record = run_finetune(keto, tmp_path, settings_for(server), reporter=recorder)
        job = server.jobs[record["job_id"]]
        assert endpoint_count(server, "POST /v1/files") == 2
        uploaded = {server.files[record["training_file"]]["filename"], server.files[record["validation_file"]]
                    ["filename"]}
        assert uploaded == {"train.jsonl", "val.jsonl"}
        assert server.file_data[record["training_file"]] == (tmp_path / "train.jsonl").read_bytes()
    assert keto.finetune.job is not None
    spec = keto.finetune.job.request()
    assert job["model"] == spec["model"] and job["method"] == spec["method"] and job["seed"] == spec["seed"]
    assert job["user_provided_suffix"] == spec["suffix"]
    assert record["status"] == "succeeded" and record["fine_tuned_model"] == job["fine_tuned_model"]
    assert json.loads((tmp_path / FINETUNE_JOB_FILE).read_text()) == record
    assert any("succeeded" in m for m in recorder.messages)
    assert files_containing(tmp_path, API_KEY) == []


def test_finetune_resumes_the_same_job(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder, finetune_polls_to_finish=5) as server:
        run_generation(keto, tmp_path, settings_for(server), QUIET)
        first = run_finetune(keto, tmp_path, settings_for(server), reporter=ProgressReporter(), timeout=0)
        assert first["timed_out"] and first["status"] not in ("succeeded", "failed")
        second = run_finetune(keto, tmp_path, settings_for(server), reporter=ProgressReporter())
        assert endpoint_count(server, "POST /v1/fine_tuning/jobs") == 1
        assert endpoint_count(server, "POST /v1/files") == 2
        third = run_finetune(keto, tmp_path, settings_for(server), reporter=ProgressReporter())
        assert endpoint_count(server, "POST /v1/fine_tuning/jobs") == 1
    assert second["job_id"] == first["job_id"] == third["job_id"] and third["status"] == "succeeded"


def test_finetune_refuses_a_bad_training_file_before_uploading(keto: CompiledTask, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    with FakeOpenAI() as server:
        record = run_finetune(keto, tmp_path, settings_for(server), reporter=ProgressReporter())
        assert server.stats.snapshot()["total"] == 0
    assert record["status"] == "not_started" and "assistant" in record["error"]


def test_training_file_rules(tmp_path: Path) -> None:
    good = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                         {"role": "assistant", "content": "keto"}]}
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(good) + "\n" for _ in range(10)))
    assert validate_training_file(path) == []
    bad_lines = [
        "not json",
        json.dumps({"prompt": "x"}),
        json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": "x", "colour": 1},
                                 {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "late"},
                                 {"role": "assistant", "content": "y"}]}),
        json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": None}]}),
        json.dumps({"messages": [{"role": "user", "content": "x" * 4000}, {"role": "assistant", "content": "y"}]}),
    ]
    path.write_text("\n".join(bad_lines) + "\n")
    problems = validate_training_file(path, max_tokens_per_example=500)
    expected = ["line 1: not valid JSON", "line 2: missing a non-empty 'messages' list", "role 'robot'",
                "unrecognised key(s) colour", "system message; it may only come first", "no text content",
                "over the 500-token limit", "has 7 examples; fine-tuning needs at least 10"]
    for fragment in expected:
        assert any(fragment in p for p in problems), fragment


# -- batches ----------------------------------------------------------------------------------------

def test_batch_lifecycle_gives_the_same_dataset_as_online_calls(keto: CompiledTask, tmp_path: Path) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        summary = run_generation(keto, tmp_path / "batch", settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == 1
        assert endpoint_count(server, "POST /v1/chat/completions") == 0
        online = run_generation(keto, tmp_path / "online", settings_for(server), QUIET)
        before = server.stats.snapshot()["total"]
        again = run_generation(keto, tmp_path / "batch", settings_for(server), BATCH)
        assert server.stats.snapshot()["total"] == before  # all cached: no upload, no batch, no poll
    assert summary.calls_made == len(keto.plan) and again.calls_cached == len(keto.plan)
    assert summary.cost_usd == pytest.approx(online.cost_usd / 2)
    def comparable(run: str) -> list[tuple[str, str, str]]:
        return [(e["id"], e["dish"], e["label"]) for e in load_generated_examples(tmp_path / run)]
    assert comparable("batch") == comparable("online")


def test_batch_splits_by_request_limit_and_retries_failed_lines(keto: CompiledTask, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_module, "MAX_REQUESTS_PER_BATCH", 10)
    faults = Faults(server_error=0.15, malformed=0.15)
    with FakeOpenAI(faults=faults, responder=keto_responder, seed=2) as server:
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        sizes = [b["request_counts"]["total"] for b in server.batches.values()]
    first_round = sizes[:3]
    assert first_round == [10, 10, len(keto.plan) - 20] and len(sizes) > 3  # failed lines went again
    assert summary.calls_made + summary.calls_failed == len(keto.plan) and summary.retries > 0


def test_split_batches_respects_bytes() -> None:
    lines = [(f"k{i}", b"x" * 40 + b"\n") for i in range(10)]
    chunks = batch_module.split_batches(lines, max_requests=4, max_bytes=100)
    assert [len(c.keys) for c in chunks] == [2, 2, 2, 2, 2]
    assert all(len(c.data) <= 100 for c in chunks)
    assert [len(c.keys) for c in batch_module.split_batches(lines, max_requests=4, max_bytes=10_000)] == [4, 4, 2]
    with pytest.raises(ValueError, match="over the 10-byte batch limit"):
        batch_module.split_batches(lines, max_bytes=10)


def test_killed_batch_run_resumes_polling_instead_of_resubmitting(keto: CompiledTask, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    class Killed(BaseException):
        pass

    original = batch_module._BatchRunner._wait_and_ingest

    def die_after_submitting(self: Any, names: list[str]) -> None:
        if names:
            raise Killed()
        original(self, names)

    with FakeOpenAI(responder=keto_responder) as server:
        monkeypatch.setattr(batch_module._BatchRunner, "_wait_and_ingest", die_after_submitting)
        with pytest.raises(Killed):
            run_generation(keto, tmp_path, settings_for(server), BATCH)
        monkeypatch.setattr(batch_module._BatchRunner, "_wait_and_ingest", original)
        assert endpoint_count(server, "POST /v1/batches") == 1
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == 1
    assert summary.calls_made == len(keto.plan) and summary.accepted > 0


def test_batch_created_but_not_journaled_is_found_again(keto: CompiledTask, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill between creating a batch and journaling it: the batch's metadata finds it again."""
    from taskc.runtime.cache import ResponseCache

    class Killed(BaseException):
        pass

    original = ResponseCache.journal_put

    def die_on_batch_journal(self: ResponseCache, name: str, record: Any) -> None:
        if name.startswith("batch/"):
            raise Killed()
        original(self, name, record)

    with FakeOpenAI(responder=keto_responder) as server:
        monkeypatch.setattr(ResponseCache, "journal_put", die_on_batch_journal)
        with pytest.raises(Killed):
            run_generation(keto, tmp_path, settings_for(server), BATCH)
        monkeypatch.setattr(ResponseCache, "journal_put", original)
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == 1
    assert summary.calls_made == len(keto.plan)


def test_batch_lines_that_failed_every_round_are_tried_again_by_a_rerun(keto: CompiledTask,
                                                                        tmp_path: Path) -> None:
    with FakeOpenAI(faults=Faults(malformed=1.0), responder=keto_responder) as server:
        failed = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == batch_module.MAX_ROUNDS
        server.set_faults(Faults())
        fixed = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == batch_module.MAX_ROUNDS + 1
    assert failed.calls_failed == len(keto.plan) and failed.accepted == 0
    # (the rerun rewrote stats.json; the first run's failures were all unusable answers)
    assert fixed.retries == 0 and fixed.calls_cached == 0
    assert fixed.calls_made == len(keto.plan) and fixed.calls_failed == 0 and fixed.accepted > 0


def batch_bodies(server: FakeOpenAI) -> list[list[dict[str, Any]]]:
    """The request bodies of each batch submitted, in order."""
    return [[json.loads(line)["body"] for line in server.file_data[batch["input_file_id"]].splitlines()]
            for batch in server.batches.values()]


def test_batch_lines_the_server_refused_a_part_of_go_again_without_it_in_rounds_of_their_own(
        keto: CompiledTask, tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    planned = keto.plan[0].response_format
    with FakeOpenAI(responder=keto_responder) as server:
        refuse_formats(server, [planned], ("json_schema", "json_object"),
                       "Invalid parameter: 'response_format' of type 'json_object' is not supported with this model.")
        refusing_parameter(server, "temperature", ApiError(
            400, "Unsupported value: 'temperature' does not support 0.9 with this model. Only the default (1) value "
                 "is supported.", "unsupported_value", param="temperature"))
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        rounds = batch_bodies(server)
    # refused: temperature, then json_schema, then json_object; answered: the fourth round, past MAX_ROUNDS
    assert len(rounds) == 4 > batch_module.MAX_ROUNDS and all(len(r) == len(keto.plan) for r in rounds)
    assert summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert [{"temperature" in body for body in r} for r in rounds] == [{True}, {False}, {False}, {False}]
    assert [{body.get("response_format", {}).get("type") for body in r} for r in rounds] == [
        {"json_schema"}, {"json_schema"}, {"json_object"}, {None}]
    schema = canonical_json(planned["json_schema"]["schema"])
    assert all(schema in body["messages"][0]["content"] for body in rounds[2] + rounds[3])
    assert not any(schema in body["messages"][0]["content"] for body in rounds[0] + rounds[1])
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["errors"] == {"http_400": 3 * len(keto.plan)}
    assert stats["response_format_fallback"] == "none" and stats["dropped_parameters"] == ["temperature"]
    assert summary.cost_usd > 0


def test_a_rerun_sends_its_batch_lines_as_the_server_takes_them_from_the_first_round(keto: CompiledTask,
                                                                                    tmp_path: Path) -> None:
    from taskc.runtime.cache import ResponseCache
    from taskc.runtime.datasets import CACHE_FILE
    from taskc.runtime.provider import Budget

    planned = keto.plan[0].response_format
    refusal = "This response_format type is unavailable now"
    with FakeOpenAI(responder=keto_responder) as server:
        refuse_formats(server, [planned], ("json_schema",), refusal)
        run_generation(keto, tmp_path / "first", settings_for(server), BATCH)
        with ResponseCache(tmp_path / "first" / CACHE_FILE) as cache:
            learned = cache.journal_get("server-adjustments")
        # a killed run's rerun finds the record in its journal (here: put into a fresh run's cache)
        with ResponseCache(tmp_path / "rerun" / CACHE_FILE) as cache:
            cache.journal_put("server-adjustments", learned)
        said: list[str] = []
        budget = Budget()
        budget.adjustments.announce = said.append
        server.batches.clear()  # (or the rerun would find the first run's batches of the same lines again)
        summary = run_generation(keto, tmp_path / "rerun", settings_for(server), BATCH, budget=budget)
        rounds = batch_bodies(server)
        # another endpoint's record is not taken on
        with ResponseCache(tmp_path / "elsewhere" / CACHE_FILE) as cache:
            cache.journal_put("server-adjustments", {**learned, "base_url": "http://127.0.0.1:1/v1"})
        server.batches.clear()
        run_generation(keto, tmp_path / "elsewhere", settings_for(server), BATCH)
        elsewhere = batch_bodies(server)
    assert learned["response_format"] == "json_object" and learned["format_refusal"] == f"400 {refusal}"
    assert len(rounds) == 1 and {body["response_format"]["type"] for body in rounds[0]} == {"json_object"}
    assert summary.calls_made == len(keto.plan) and summary.response_format_fallback == "json_object"
    assert said == ["an earlier run learned that the server refuses response_format (now json_object): sending the "
                    "batch lines as it takes them from the first round"]
    assert [{body["response_format"]["type"] for body in r} for r in elsewhere] == [{"json_schema"}, {"json_object"}]


def test_batch_lines_refused_for_their_max_tokens_go_again_as_the_model_takes_them(keto: CompiledTask,
                                                                                  tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    planned_tokens = keto.plan[0].max_tokens
    with FakeOpenAI(responder=keto_responder) as server:
        answer = server._completion

        def newer_model(body: Any, fault: str | None) -> dict[str, Any]:
            if "max_tokens" in body:
                raise ApiError(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                    "'max_completion_tokens' instead.", "unsupported_parameter", param="max_tokens")
            if body["max_completion_tokens"] > 1000:
                raise ApiError(400, f"max_tokens is too large: {body['max_completion_tokens']}. This model supports "
                                    "at most 1000 completion tokens, whereas you provided "
                                    f"{body['max_completion_tokens']}.", param="max_tokens")
            return answer(body, fault)

        server._completion = newer_model  # type: ignore[method-assign]
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        rounds = batch_bodies(server)
    assert planned_tokens > 1000 and summary.calls_made == len(keto.plan) and summary.calls_failed == 0
    assert [{(body.get("max_tokens"), body.get("max_completion_tokens")) for body in r} for r in rounds] == [
        {(planned_tokens, None)}, {(None, planned_tokens)}, {(None, 1000)}]


def test_a_batch_line_refused_for_something_else_keeps_to_the_rounds_bound(keto: CompiledTask,
                                                                          tmp_path: Path) -> None:
    from fake_openai.server import ApiError

    with FakeOpenAI(responder=keto_responder) as server:
        def bad_request(body: Any, fault: str | None) -> dict[str, Any]:
            raise ApiError(400, "Invalid value for 'temperature': must be at most 2.", "invalid_request_error")

        server._completion = bad_request  # type: ignore[method-assign]
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        rounds = batch_bodies(server)
    assert len(rounds) == batch_module.MAX_ROUNDS and summary.calls_failed == len(keto.plan)
    assert all(body == rounds[0][i] for r in rounds for i, body in enumerate(r))  # every round as planned
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert "response_format_fallback" not in stats and "dropped_parameters" not in stats
    assert "must be at most 2" in stats["failed_calls"][0]["error"]


def test_a_training_line_holding_a_unicode_line_separator_is_one_line(tmp_path: Path) -> None:
    """JSON Lines ends lines at "\\n" only; U+2028 inside a JSON string (written unescaped) is content."""
    from taskc.runtime.finetune import validate_training_file

    example = {"messages": [{"role": "system", "content": "Label the dish."},
                            {"role": "user", "content": "cauliflower\u2028rice"},
                            {"role": "assistant", "content": "keto"}]}
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(example, ensure_ascii=False) + "\n" for _ in range(10)), encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")
    assert validate_training_file(path) == []


# -- batches that do not end well: bounded waits, no blind resubmission, the server's reason ---------------

def test_polling_a_batch_stops_at_the_run_deadline_and_the_rerun_resumes_it(keto: CompiledTask,
                                                                            tmp_path: Path) -> None:
    from taskc.runtime.provider import RunDeadline, RunDeadlinePassed

    with FakeOpenAI(responder=keto_responder, batch_polls_to_finish=10**9) as server:  # never ends
        with pytest.raises(RunDeadlinePassed):
            run_generation(keto, tmp_path, settings_for(server, run_deadline=RunDeadline.after(0.3)), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == 1
        server.batch_polls_to_finish = 0  # it ends at its next poll
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == 1  # the same batch, not paid for twice
    assert summary.calls_made == len(keto.plan)


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_failed_or_cancelled_batch_is_not_submitted_again_and_says_why(keto: CompiledTask, tmp_path: Path,
                                                                        status: str) -> None:
    with FakeOpenAI(responder=keto_responder) as server:
        def end_badly(batch: dict[str, Any]) -> None:
            batch.update(status=status, errors={"object": "list", "data": [
                {"code": "invalid_request", "message": "Line 3: model 'gpt-9' does not exist.", "line": 3}]})

        server._finish_batch = end_badly  # type: ignore[method-assign]
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == 1
    assert summary.calls_made == 0 and summary.calls_failed == len(keto.plan)
    reasons = {failure.message for _, failure in summary.failures}
    assert len(reasons) == 1 and reasons.pop().endswith(f"ended {status} without an answer: "
                                                        "Line 3: model 'gpt-9' does not exist.")


@pytest.mark.parametrize("batch, now, overdue", [
    ({"status": "in_progress", "created_at": 0, "expires_at": 86400}, 86400 + 3600, None),  # within the grace
    ({"status": "in_progress", "created_at": 0, "expires_at": 86400}, 86400 + 3601, 3601),
    ({"status": "finalizing", "created_at": 0, "expires_at": None}, 86400 + 7200, 7200),  # from created_at
    ({"status": "validating"}, 10**12, None),  # the server tells neither: bounded by --deadline alone
])
def test_a_batch_still_running_an_hour_past_its_window_is_overdue(batch: dict[str, Any], now: float,
                                                                  overdue: float | None) -> None:
    from types import SimpleNamespace

    assert batch_module._overdue_by(SimpleNamespace(**batch), now) == overdue


def test_an_overdue_batch_fails_its_calls_in_this_run_and_is_looked_at_again_by_the_next(
        keto: CompiledTask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI(responder=keto_responder, batch_polls_to_finish=10**9) as server:
        monkeypatch.setattr(batch_module, "_overdue_by", lambda batch, now: 7200.0)
        summary = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert summary.calls_failed == len(keto.plan)
        assert all("2.0 h past its 24 h completion window" in f.message for _, f in summary.failures)
        monkeypatch.undo()
        server.batch_polls_to_finish = 0
        again = run_generation(keto, tmp_path, settings_for(server), BATCH)
        assert endpoint_count(server, "POST /v1/batches") == 1
    assert again.calls_made == len(keto.plan)
