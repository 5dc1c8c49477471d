"""`finetune.provider: transformers` end to end: `taskc run` trains the student on the run's training set, scores
it as `finetuned` / `rules_then_finetuned`, saves it, and `taskc predict` serves it. Skipped without the extra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_run_cli import GOLD, POOL, _project  # noqa: E402
from test_transformer_student import tiny_model  # noqa: E402

from taskc.cli.main import main  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(no_provider: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_run_trains_scores_and_saves_the_transformers_student_and_predict_serves_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(tmp_path / "tiny", [*POOL, *(text for text, _ in GOLD)])
    spec = _project(tmp_path / "project")
    spec.write_text(spec.read_text() + f"finetune:\n  provider: transformers\n  base_model: {model}\n  epochs: 2\n"
                                       "  batch_size: 8\n  learning_rate: 0.001\n  max_length: 32\n")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "--json"]) in (0, 3)
    summary = json.loads(capsys.readouterr().out)
    assert {"finetuned", "rules_then_finetuned"} <= set(summary["metrics"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    student = metrics["student"]
    assert student["provider"] == "transformers" and student["model"] == str(model)
    assert student["training_size"] == sum(metrics["training"].values())
    assert (run_dir / "model" / "student" / "student.json").is_file()

    inputs = tmp_path / "new.jsonl"
    inputs.write_text("".join(json.dumps({"text": text}) + "\n" for text in POOL[:5]))
    assert main(["predict", str(run_dir), str(inputs), "--predictor", "finetuned", "-q"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["line"] for a in answers] == [1, 2, 3, 4, 5]
    assert {a["predictor"] for a in answers} == {"finetuned"}
    assert all(a["label"] in ("pos", "neg") for a in answers)


def test_a_transformers_student_without_a_model_is_an_error_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    spec.write_text(spec.read_text() + "finetune:\n  provider: transformers\n")
    assert main(["check", str(spec)]) == 1
    assert "E037" in capsys.readouterr().err
