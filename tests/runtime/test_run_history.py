"""The expert's loop: every run is recorded (append-only), and the next report says what changed and whether it
mattered: the task's edits, each predictor's scores with their intervals, per-rationale figures, flipped items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spec_edits import edit
from taskc.runtime.history import ScoreChange, read_history
from test_run_cli import _project

from taskc.cli.main import main


@pytest.fixture(autouse=True)
def _offline(no_provider: None) -> None:
    """Every run here is offline."""


def test_each_run_appends_a_record_and_the_next_report_says_what_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    first = (run_dir / "history.jsonl").read_text()
    records = read_history(run_dir)
    assert [r["number"] for r in records] == [1]
    record = records[0]
    assert record["primary"] == "rules_then_model" and record["passed"] is True
    assert record["spec_hash"] and record["taskc_version"] and record["time"].endswith("Z")
    assert record["scores"]["rules_then_model"]["all"]["accuracy"] == pytest.approx(8 / 9)
    assert set(record["rationales"]) and len(record["gold_correct"]) == 9
    assert "Since the last run" not in (run_dir / "report.md").read_text()

    # the expert widens a rule; the rerun's report compares
    spec.write_text(edit(spec.read_text(), "lovely|tasty", "lovely|nice|tasty", count=1))
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) in (0, 3)
    capsys.readouterr()
    assert (run_dir / "history.jsonl").read_text().startswith(first)  # the first run's facts are kept as they were
    second = read_history(run_dir)
    assert [r["number"] for r in second] == [1, 2]
    assert second[0]["spec_hash"] != second[1]["spec_hash"]
    report = (run_dir / "report.md").read_text()
    assert "## Since the last run" in report
    assert "Compared with run 1" in report and "a changed task" in report
    assert "rule changed" in report  # the edit is listed
    html = (run_dir / "report.html").read_text()
    assert "Since the last run" in html and "<svg role=\"img\" aria-label=\"macro-F1" in html

    assert main(["runs", str(run_dir)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith("#") and listing[1].startswith("1 ") and listing[2].startswith("2 ")
    assert main(["runs", str(run_dir), "--format", "json", "--last", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["number"] == 2


def test_a_wording_edit_is_a_changed_task_file_though_the_model_would_be_the_same(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """spec_hash follows what a trained model computes; "the same task file" means the same bytes."""
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    spec.write_text(edit(spec.read_text(), "Praise words mean the reviewer liked it.",
                         "Words of praise mean the reviewer liked it.", count=1))
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) in (0, 3)
    capsys.readouterr()
    first, second = read_history(run_dir)
    assert first["spec_hash"] == second["spec_hash"] and first["files_hash"] != second["files_hash"]
    report = (run_dir / "report.md").read_text()
    assert "a changed task" in report and "the same task file" not in report


def test_a_torn_last_line_of_a_killed_run_is_skipped(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    with (run_dir / "history.jsonl").open("a") as history:
        history.write('{"format": 1, "number": 2, "ti')
    assert [r["number"] for r in read_history(run_dir)] == [1]
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    assert [r["number"] for r in read_history(run_dir)] == [1, 2]


def test_a_change_inside_both_intervals_is_noise_and_one_outside_is_not() -> None:
    assert ScoreChange("p", "macro_f1", 0.80, 0.83, (0.74, 0.86), (0.77, 0.89)).within_noise
    assert not ScoreChange("p", "macro_f1", 0.70, 0.90, (0.64, 0.76), (0.85, 0.95)).within_noise
    assert not ScoreChange("p", "macro_f1", None, 0.90, None, (0.85, 0.95)).within_noise


def test_runs_without_a_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err
