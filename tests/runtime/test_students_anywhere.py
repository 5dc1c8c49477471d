"""After OpenAI fine-tuning: the student trains anywhere (finetune.provider: embeddings), and the OpenAI path
tells the truth about its future (W108, a refusal is exit 4 with the way out)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Faults
from spec_edits import edit
from taskc.compiler.driver import compile_task
from test_run_cli import _project

from taskc.cli.main import main

EMBEDDINGS = "finetune:\n  provider: embeddings\n  base_model: text-embedding-3-small\n  inputs_per_request: 4\n"


def _embeddings_project(root: Path) -> Path:
    spec = _project(root)
    text = spec.read_text()
    spec.write_text(edit(text, "  model: gpt-4o-mini\n", "  model: gpt-4o-mini\n  per_rationale: 0\n"
                                                       "  near_misses: 0\n", count=1) + EMBEDDINGS)
    return spec


def test_the_embeddings_student_is_trained_scored_named_and_a_rerun_embeds_nothing(
        tmp_path: Path, no_provider: None, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _embeddings_project(tmp_path / "project")
    run_dir = tmp_path / "run"
    with FakeOpenAI(faults=Faults(server_error=0.1, retry_after=0.0), seed=1) as server:
        status = main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "--json"])
        first = json.loads(capsys.readouterr().out)
        assert status == 0
        asked = list(server.embedded_texts)
        assert asked and len(asked) == len(set(asked)), "a text was embedded twice"
        batches = [body for method, path, _, body in server.requests if path.endswith("/embeddings")]
        assert all(1 <= len(body["input"]) <= 4 for body in batches)  # finetune.inputs_per_request
        assert main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert server.embedded_texts == asked  # the rerun read every vector from the run's cache
    assert {"finetuned", "rules_then_finetuned"} <= set(first["metrics"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    student = metrics["student"]
    assert student["provider"] == "embeddings" and student["model"] == "text-embedding-3-small"
    assert student["training_size"] == sum(metrics["training"].values())
    assert any("text embedding (64 dimensions" in f for f in student["features"])
    assert any(f.startswith("rule votes") for f in student["features"])
    assert metrics["llm"]["embeddings"]["requests"] == 0 and metrics["llm"]["embeddings"]["vectors_cached"] > 0
    assert again["metrics"]["finetuned"] == first["metrics"]["finetuned"]
    report = (run_dir / "report.md").read_text()
    assert "## The student" in report and "text-embedding-3-small" in report
    manifest = json.loads((run_dir / "model" / "predictor.json").read_text())
    assert manifest["student"]["provider"] == "embeddings"


def test_predict_serves_the_embeddings_student_embedding_new_inputs_in_batches(
        tmp_path: Path, no_provider: None, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _embeddings_project(tmp_path / "project")
    run_dir = tmp_path / "run"
    inputs = tmp_path / "new.jsonl"
    inputs.write_text("".join(json.dumps({"text": f"meal number {n} was good"}) + "\n" for n in range(10)))
    with FakeOpenAI() as server:
        assert main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "-q"]) == 0
        capsys.readouterr()
        before = len(server.embedded_texts)
        assert main(["predict", str(run_dir), str(inputs), "--predictor", "finetuned",
                     "--base-url", server.base_url, "-q"]) == 0
        answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(server.embedded_texts) - before == 10
    assert [a["line"] for a in answers] == list(range(1, 11))
    assert {a["predictor"] for a in answers} == {"finetuned"}
    # without an endpoint the student cannot embed: a clear error, while the offline predictors still serve
    assert main(["predict", str(run_dir), str(inputs), "--predictor", "finetuned", "-q"]) == 1
    assert "configure the endpoint" in capsys.readouterr().err
    assert main(["predict", str(run_dir), str(inputs), "--predictor", "rules_then_model", "-q"]) == 0


def test_a_run_killed_while_embedding_resumes_without_asking_for_a_vector_twice(
        tmp_path: Path, no_provider: None) -> None:
    spec = _embeddings_project(tmp_path / "project")
    spec.write_text(edit(spec.read_text(), "inputs_per_request: 4", "inputs_per_request: 1"))
    run_dir = tmp_path / "run"
    with FakeOpenAI(latency=0.05) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
        command = [sys.executable, "-m", "taskc", "run", str(spec), "-o", str(run_dir), "-q",
                   "--concurrency", "1"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(server.embedded_texts) < 5 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_after = len(server.embedded_texts)
        assert 5 <= killed_after
        server.latency = 0.0
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        asked = server.embedded_texts
    # at most the one request in flight at the kill is asked again
    repeated = len(asked) - len(set(asked))
    assert repeated <= 1, f"{repeated} texts embedded twice"
    assert len(set(asked)) > killed_after


def test_an_embeddings_endpoint_that_keeps_failing_is_exit_4_with_the_way_out(
        tmp_path: Path, no_provider: None, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _embeddings_project(tmp_path / "project")
    with FakeOpenAI(faults=Faults(embeddings_down=True, retry_after=0.0)) as server:
        status = main(["run", str(spec), "-o", str(tmp_path / "run"), "--base-url", server.base_url, "-q"])
    assert status == 4
    err = capsys.readouterr().err
    assert "embeddings endpoint failed" in err and "finetune.inputs_per_request (4 texts a request" in err


def test_without_an_endpoint_the_embeddings_student_is_a_note_not_a_failure(
        tmp_path: Path, no_provider: None, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _embeddings_project(tmp_path / "project")
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "finetuned" not in summary["metrics"]
    assert any("finetune.provider is 'embeddings', but no endpoint" in note for note in summary["notes"])


OPENAI = "finetune:\n  provider: openai\n  base_model: gpt-4o-mini-2024-07-18\n"


def test_the_openai_student_warns_with_the_dates_and_the_alternatives(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project")
    spec.write_text(spec.read_text() + OPENAI)
    warnings = [d for d in compile_task(str(spec)).diagnostics if d.code == "W108"]
    assert len(warnings) == 1
    assert "2027-01-06" in warnings[0].message and "closed to new users" in warnings[0].message
    assert "embeddings" in (warnings[0].hint or "") and "taskc export" in (warnings[0].hint or "")


def test_a_platform_that_refuses_fine_tuning_is_a_clear_error_with_the_same_hint(tmp_path: Path) -> None:
    from taskc.runtime.datasets import TRAIN_FILE
    from taskc.runtime.finetune import FinetuningRefused, refuses_finetuning, run_finetune
    from taskc.runtime.provider import ProviderSettings

    spec = _project(tmp_path / "project")
    spec.write_text(spec.read_text() + OPENAI)
    compiled = compile_task(str(spec)).compiled
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = [{"messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": f"meal {n}"},
                           {"role": "assistant", "content": "pos" if n % 2 else "neg"}]} for n in range(12)]
    (run_dir / TRAIN_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    with FakeOpenAI(faults=Faults(refuse_finetuning=True)) as server:
        settings = ProviderSettings(base_url=server.base_url, api_key="sk-test", max_retries=0)
        with pytest.raises(FinetuningRefused) as refused:
            run_finetune(compiled, run_dir, settings)
    message = str(refused.value)
    assert "refused fine-tuning (403" in message and "not available for your organization" in message
    assert "winding down" in message and "finetune.provider: embeddings" in message
    # a bad request that fixing the data would cure is not a refusal
    assert not refuses_finetuning(400, "training_file has too few examples")
    assert refuses_finetuning(404, "Fine-tuning is not available for this model or organization")
