"""The LLM's part in a run, in the report: its generated examples by cell, the LLM as a labeling function
(with the rationale it cited for each of its errors), next steps that name the LLM's data, and every
phase of the run as JSON progress events with --format json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Faults, default_content
from taskc.compiler.driver import compile_task
from test_run_cli import _project
from test_runtime_fixtures import chat_requests, refuse_formats, refusing_parameter

from taskc.cli.main import main


def _contrary(body: dict) -> str:
    """Classification: always the class the keyword rules would not give, citing the first rationale."""
    if body["response_format"]["json_schema"]["name"] != "classification":
        return default_content(body)
    text = json.loads(body["messages"][-1]["content"])["text"]
    label = "pos" if re.search(r"\b(bad|awful|rude|cold|sarcastic)\b", text) else "neg"
    rationales = body["response_format"]["json_schema"]["schema"]["properties"]["rationales"]["items"]["enum"]
    return json.dumps({"label": label, "rationales": rationales[:1]})


def _run(spec: Path, run_dir: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str],
         *extra: str) -> tuple[int, str, str]:
    status = main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, *extra])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def spec(tmp_path: Path, no_provider: None) -> Path:
    path = _project(tmp_path / "project", criterion="accuracy >= 0.95")
    path.write_text(path.read_text().replace("  model: gpt-4o-mini\n", "  model: gpt-4o-mini\n  per_rationale: 4\n"
                                             "  per_call: 2\n"))
    return path


def test_a_contrary_llm_is_named_in_the_next_steps(spec: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(responder=_contrary) as server:
        _run(spec, tmp_path / "run", server, capsys, "--format", "json")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    lf = metrics["llm_labeling_function"]
    assert lf["gold_accuracy"] is not None and lf["gold_accuracy"] < 0.5
    assert lf["pool_labeled"] == sum(1 for line in (tmp_path / "run" / "labeled_pool.jsonl").read_text().splitlines()
                                     if json.loads(line)["label_source"] == "llm")
    worst = lf["rules"][0]
    assert worst["gold_disagree"] > 0 and worst["rule_right"] == worst["gold_disagree"]
    first_rationale = next(iter(lf["errors_by_cited_rationale"]))
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## The LLM as a labeling function" in report
    assert f"The LLM disagrees with rule `{worst['rationale']}` on" in report
    assert f"The LLM leaned on `{first_rationale}` for" in report
    pool = [json.loads(line) for line in (tmp_path / "run" / "labeled_pool.jsonl").read_text().splitlines()]
    assert all(item["llm_rationales"] == [first_rationale] for item in pool if item["label_source"] == "llm")
    html = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>The LLM as a labeling function</h2>" in html and "<h2>Generated examples</h2>" in html


def test_off_target_cells_lead_the_next_steps_when_the_run_fails(spec: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(faults=Faults(off_target=1.0), responder=None) as server:
        status, out, _ = _run(spec, tmp_path / "run", server, capsys, "--json")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    generation = metrics["llm"]["generation"]
    assert generation["rejects_by_reason"].get("label:off_target", 0) > 0 and generation["by_cell"]
    steps = json.loads(out)["next_steps"]
    cells = [cell for cell, counts in generation["by_cell"].items() if counts.get("label:off_target")]
    off = [s for s in steps if s.startswith("Off-target labels in ")]
    if len(cells) <= 2:  # a step per cell
        assert sorted(s.split("cell ")[1].split(":")[0] for s in off) == sorted(cells), steps
    else:  # one for them all, which names the cells most off target first
        assert off == [next(s for s in steps if s.startswith(f"Off-target labels in {len(cells)} cells: "))], steps
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| cell (class/rationale) | accepted | off target |" in report
    assert status == 3
    effect = metrics["llm_data_effect"]  # the model trained again without the LLM's data, on the same dev items
    assert effect["llm_examples"] > 0 and effect["dev_items"] > 0
    low, high = effect["difference_ci"]
    assert low <= effect["difference"] <= high
    criterion_step = report.split("## Next steps")[1].split("\n2.")[0]
    assert "95% CI" in criterion_step  # its scores carry their interval
    if effect["verdict"] == "hurt":  # the criterion's step sends the expert to the LLM's data first
        assert "start with the steps about the LLM's data below" in criterion_step
    else:  # measured no worse: the LLM's data is cleared, the rules come first, and the step says why
        assert "Start with the rules below" in criterion_step and "The LLM's data made" in criterion_step
    assert "## What the LLM's data did" in report


def test_a_generator_that_repeats_itself_gets_a_next_step(spec: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(faults=Faults(repeats=1.0), responder=None) as server:
        _, out, _ = _run(spec, tmp_path / "run", server, capsys, "--json")
    generation = json.loads((tmp_path / "run" / "metrics.json").read_text())["llm"]["generation"]
    answered = generation["accepted"] + generation["duplicates"]
    steps = json.loads(out)["next_steps"]
    assert f"The LLM repeated itself: {generation['duplicates']} of {answered} generated examples were " \
           "duplicates" in steps, steps
    report = (tmp_path / "run" / "report.md").read_text()
    assert "raise generate.temperature (now " in report
    with FakeOpenAI(responder=None) as server:  # a generator that does not repeat itself gets no such step
        _, out, _ = _run(spec, tmp_path / "again", server, capsys, "--json")
    assert not any(step.startswith("The LLM repeated itself") for step in json.loads(out)["next_steps"])


def test_a_server_without_structured_outputs_is_asked_in_json_mode_in_every_phase(
        spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compiled = compile_task(spec).compiled
    assert compiled is not None
    with FakeOpenAI(responder=_contrary) as server:
        refuse_formats(server, [compiled.generation_format, compiled.classification_format], ("json_schema",),
                       "This response_format type is unavailable now")
        status, _, err = _run(spec, tmp_path / "run", server, capsys, "--format", "json")
        bodies = chat_requests(server)
    assert status in (0, 3)
    said = [json.loads(line)["text"] for line in err.splitlines() if '"event": "message"' in line]
    assert [line for line in said if "refused" in line] == [
        "the server refused response_format json_schema (400 This response_format type is unavailable now): "
        "asking in JSON mode, with the response schema in the prompt, from now on"]  # once, as it happens
    refused = [b for b in bodies if b["response_format"]["type"] == "json_schema"]
    assert refused and all(b["response_format"]["json_schema"]["name"] != "classification" for b in refused)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    generation = metrics["llm"]["generation"]
    assert generation["calls_failed"] == 0 and generation["response_format_fallback"] == "json_object"
    assert metrics["llm_labeling_function"]["pool_labeled"] > 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "the server refused the planned response_format (400 This response_format type is unavailable now)" \
        in report
    assert "asked for JSON mode (response_format json_object) with the response schema written into the prompt" \
        in report


def test_batched_phases_take_json_mode_from_the_first_refusal_of_structured_outputs(
        spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compiled = compile_task(spec).compiled
    assert compiled is not None
    with FakeOpenAI(responder=_contrary, batch_polls_to_finish=1) as server:
        refuse_formats(server, [compiled.generation_format, compiled.classification_format], ("json_schema",),
                       "This response_format type is unavailable now")
        status, _, err = _run(spec, tmp_path / "run", server, capsys, "--batch")
        lines = [json.loads(line)["body"] for batch in server.batches.values()
                 for line in server.file_data[batch["input_file_id"]].splitlines()]
        assert server.stats.snapshot()["by_endpoint"].get("POST /v1/chat/completions", 0) == 0  # all batched
    assert status in (0, 3)
    assert err.count("taskc: the server refused response_format json_schema (400 This response_format type is "
                     "unavailable now): asking in JSON mode") == 1
    refused = [b for b in lines if b["response_format"]["type"] == "json_schema"]
    # only generation's first round: the later phases are sent in JSON mode from their start
    assert len(refused) == len(compiled.plan) and all(
        b["response_format"]["json_schema"]["name"] != "classification" for b in refused)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["llm"]["generation"]["calls_failed"] == 0
    assert metrics["llm"]["pool_labeling"]["response_format_fallback"] == "json_object"
    assert metrics["llm_labeling_function"]["pool_labeled"] > 0
    assert "the server refused the planned response_format (400 This response_format type is unavailable now)" \
        in (tmp_path / "run" / "report.md").read_text()


def test_a_model_that_takes_only_the_default_temperature_is_sent_none_in_every_phase(
        spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fake_openai.server import ApiError

    with FakeOpenAI(responder=_contrary) as server:
        refusing_parameter(server, "temperature", ApiError(
            400, "Unsupported value: 'temperature' does not support 0.9 with this model. Only the default (1) "
                 "value is supported.", "unsupported_value", param="temperature"))
        status, _, err = _run(spec, tmp_path / "run", server, capsys)
        bodies = chat_requests(server)
    assert status in (0, 3)
    assert err.count("taskc: the server refused temperature (400 Unsupported value: 'temperature' does not support "
                     "0.9 with this model. Only the default (1) value is supported.): sending the calls without it "
                     "from now on (the server's default applies)") == 1
    refused = [b for b in bodies if "temperature" in b]
    assert refused and all(b["response_format"]["json_schema"]["name"] != "classification" for b in refused)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["llm"]["pool_labeling"]["dropped_parameters"] == ["temperature"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "the server refused 1 sampling parameter of the plan (temperature: 400 Unsupported value: 'temperature' " \
           "does not support 0.9" in report
    assert "so the calls from then on were sent without temperature: the server's default applies" in report


def test_when_the_llms_data_made_the_model_worse_the_next_steps_start_there(
        spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from taskc.runtime import pipeline
    from taskc.runtime.llm_data_effect import LLMDataEffect

    measured: list[LLMDataEffect] = []

    def worse(*args: Any) -> LLMDataEffect:  # as measured on a larger gold set: clearly below zero
        measured.append(LLMDataEffect(40, 60, 200, 0.70, 0.85, -0.15, (-0.22, -0.08)))
        return measured[-1]

    monkeypatch.setattr(pipeline, "llm_data_effect", worse)
    with FakeOpenAI(faults=Faults(off_target=1.0), responder=None) as server:
        status, out, _ = _run(spec, tmp_path / "run", server, capsys, "--json")
    assert status == 3 and measured
    steps = json.loads(out)["next_steps"]
    assert steps[0].startswith("The pass criterion") and steps[1] == "The LLM's data made the model worse", steps
    assert any(s.startswith("Off-target labels in ") for s in steps[2:])
    report = (tmp_path / "run" / "report.md").read_text()
    assert "start with the steps about the LLM's data below" in report
    assert "-0.150, 95% paired interval -0.220 to -0.080, 200 dev items" in report
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["llm_data_effect"]["verdict"] == "hurt"


def test_format_json_reports_every_phase_from_start_to_end(spec: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI() as server:
        _, out, err = _run(spec, tmp_path / "run", server, capsys, "--format", "json")
    json.loads(out)  # stdout is the summary alone
    events = [json.loads(line) for line in err.splitlines()]
    phases = [(e["phase"], e["status"]) for e in events if e["event"] == "phase"]
    names = ["generation", "pool labeling", "training", "gold scoring", "report"]
    assert phases == [(name, status) for name in names for status in ("start", "done")]
    done = [(e["phase"], e["step"]) for e in events if e["event"] == "done"]  # the calls of each LLM phase
    assert done == [("generation", ""), ("pool labeling", ""), ("gold scoring", "prompted LLM")]
    # every progress event names the phase it happens in, as that phase's own events do
    started = None
    for event in events:
        if event["event"] == "phase":
            started = event["phase"] if event["status"] == "start" else None
        elif event["event"] in ("progress", "done"):
            assert event["phase"] == started, event
    assert all(e["seconds"] >= 0 for e in events if e["event"] == "phase" and e["status"] == "done")


def test_format_json_names_the_batched_calls_of_every_phase(spec: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOpenAI(batch_polls_to_finish=1) as server:
        status, _, err = _run(spec, tmp_path / "run", server, capsys, "--format", "json", "--batch")
    assert status in (0, 3)
    events = [json.loads(line) for line in err.splitlines()]
    done = [e for e in events if e["event"] == "done"]
    assert [(e["phase"], e["step"]) for e in done] == [
        ("generation", "batch"), ("pool labeling", "batch"), ("gold scoring", "prompted LLM, batch")]
    assert all(e["done"] == e["total"] > 0 for e in done)
    # a classification is accepted when it is answered, as online; its label is checked afterwards
    assert [(e["accepted"], e["rejected"]) for e in done[1:]] == [(e["done"] - e["failed"], 0) for e in done[1:]]


def test_a_verdict_that_flipped_within_noise_says_so() -> None:
    from types import SimpleNamespace

    from taskc.runtime.history import ScoreChange, SinceLastRun
    from taskc.runtime.report import NextStep
    from taskc.runtime.report.llm import llm_next_steps

    def result(before: float, after: float, before_ci: tuple[float, float], after_ci: tuple[float, float]) -> Any:
        change = SinceLastRun(previous={"passed": False, "number": 1}, current={},
                              scores=(ScoreChange("rules_then_model", "macro_f1", before, after, before_ci, after_ci),),
                              rationales=(), now_wrong=(), now_right=())
        return SimpleNamespace(since=change, criterion=SimpleNamespace(passed=True), primary="rules_then_model",
                               training={"generated": 20, "label_model": 10}, llm={}, llm_function=None,
                               llm_data_effect=None)

    noisy = llm_next_steps(result(0.78, 0.81, (0.70, 0.86), (0.73, 0.89)), NextStep)
    assert noisy[0].title == "The verdict flipped FAILED → PASSED, but within noise"
    assert "+0.030" in noisy[0].detail and "the LLM's answers" in noisy[0].detail
    real = llm_next_steps(result(0.60, 0.90, (0.55, 0.65), (0.86, 0.94)), NextStep)
    assert not any("flipped" in step.title for step in real)


def test_off_target_labels_in_many_cells_make_one_step_most_off_target_first() -> None:
    from types import SimpleNamespace

    from taskc.runtime.report import NextStep
    from taskc.runtime.report.llm import llm_next_steps

    def steps(by_cell: dict[str, dict[str, int]]) -> list[Any]:
        run = SimpleNamespace(since=None, criterion=None, training={}, llm={"generation": {"by_cell": by_cell}},
                              llm_function=None, llm_data_effect=None)
        return llm_next_steps(run, NextStep)

    few = steps({"pos/a": {"accepted": 1, "label:off_target": 3}, "neg/b": {"accepted": 9, "label:off_target": 1}})
    assert [s.title for s in few] == ["Off-target labels in cell pos/a: 3 of 4 generated examples"]  # b: 10%
    many = steps({f"pos/r{i}": {"accepted": 10 - i, "label:off_target": i, "rule_disagrees": 5} for i in range(2, 9)})
    assert [s.title for s in many] == ["Off-target labels in 7 cells: 35 of their 70 generated examples"]
    assert "pos/r8 (8 of 10, added 2), pos/r7 (7 of 10, added 3)" in many[0].detail
    assert "pos/r4 (4 of 10, added 6), and 2 more cells." in many[0].detail


def test_blank_fields_and_broken_constraints_get_a_step_past_a_tenth_of_the_examples() -> None:
    from types import SimpleNamespace

    from taskc.runtime.report import NextStep
    from taskc.runtime.report.llm import llm_next_steps

    by_cell = {"pos/a": {"accepted": 30, "empty:text": 12, "constraint:short": 5, "rule_disagrees": 9},
               "neg/b": {"accepted": 40, "constraint:short": 3, "empty:title": 10}}
    rejects = {"empty:text": 12, "empty:title": 10, "constraint:short": 8}
    run = SimpleNamespace(since=None, criterion=None, training={}, llm_function=None, llm_data_effect=None,
                          llm={"generation": {"by_cell": by_cell, "rejects_by_reason": rejects}})
    titles = [s.title for s in llm_next_steps(run, NextStep)]
    # 100 examples generated: 12 and 10 blank reach a tenth, the constraint's 8 do not
    assert titles == ["The LLM left `text` blank in 12 of 100 generated examples",
                      "The LLM left `title` blank in 10 of 100 generated examples"]
    rejects["constraint:short"] = by_cell["pos/a"]["constraint:short"] = 25
    titles = [s.title for s in llm_next_steps(run, NextStep)]
    assert titles[0] == "Constraint `short` rejected 25 of 120 generated examples" and len(titles) == 2  # 10/120
