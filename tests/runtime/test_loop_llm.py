"""`taskc run` with an LLM provider (the fake OpenAI server): generation, LLM pool labels, the prompted baseline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Faults, default_content
from test_run_cli import _project

from taskc.cli.main import main


def _responder(body: dict) -> str:
    """Classification calls get a keyword judgement; generation calls get the server's schema-valid default."""
    schema_name = body["response_format"]["json_schema"]["name"]
    if schema_name != "classification":
        return default_content(body)
    text = json.loads(body["messages"][-1]["content"])["text"]
    negative = re.search(r"\b(bad|awful|rude|cold|sarcastic)\b", text)
    return json.dumps({"label": "neg" if negative else "pos", "rationales": []})


@pytest.fixture
def provider(no_provider: None):
    with FakeOpenAI(faults=Faults(server_error=0.1, rate_limit=0.05, retry_after=0.0), responder=_responder,
                    seed=3) as server:
        yield server


def test_with_a_provider_the_llm_labels_open_pool_items_and_is_evaluated(
        tmp_path: Path, provider: FakeOpenAI, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    spec.write_text(spec.read_text().replace("  model: gpt-4o-mini\n", "  model: gpt-4o-mini\n  per_rationale: 2\n"
                                             "  per_call: 2\n"))
    run_dir = tmp_path / "run"
    status = main(["run", str(spec), "-o", str(run_dir), "--base-url", provider.base_url, "--json",
                   "--concurrency", "4"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "no LLM provider configured" not in captured.err
    summary = json.loads(captured.out)
    assert summary["skipped_llm_steps"] == ["fine-tuning (pass --finetune)"]
    assert set(summary["metrics"]) == {"labeling_functions", "local_model", "rules_then_model", "llm"}
    assert summary["metrics"]["llm"]["all"]["accuracy"] == 1.0  # the responder knows the sarcasm the rules miss
    pool = [json.loads(line) for line in (run_dir / "labeled_pool.jsonl").read_text().splitlines()]
    by_text = {item["text"]: item for item in pool}
    assert by_text["nothing to say"]["label_source"] == "llm"  # no rule fired
    assert by_text["good but cold"]["label_source"] == "llm"  # the rules conflict
    assert by_text["good but cold"]["label"] == "neg"
    assert by_text["good food"]["label_source"] == "label_model"
    assert summary["training"]["llm"] == 2 and summary["training"]["label_model"] == 12
    classification_calls = summary["llm"]["pool_labeling"]["calls_made"]
    assert classification_calls == 2

    # a second run answers every call from the cache
    assert main(["run", str(spec), "-o", str(run_dir), "--base-url", provider.base_url, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["llm"]["pool_labeling"]["calls_made"] == 0
    assert again["llm"]["pool_labeling"]["calls_cached"] == 2
    assert again["metrics"] == summary["metrics"]
