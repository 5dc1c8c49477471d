"""`taskc run` as a user runs it: exit statuses, the --gold override, the report files, located data errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from spec_edits import edit
from test_runtime_fixtures import write_jsonl

from taskc.cli.main import main

SPEC = """\
taskc: 1
task:
  name: reviews
  description: Is a short restaurant review positive or negative?
input:
  text:
    type: string
    description: The review.
    max_length: 200
classes:
  pos:
    description: The reviewer liked it.
  neg:
    description: The reviewer did not like it.
rationales:
  - id: praise
    class: pos
    text: Praise words mean the reviewer liked it.
    rule: matches(lower(text), "\\\\b(good|great|lovely|tasty)\\\\b")
  - id: complaint
    class: neg
    text: Complaint words mean the reviewer did not like it.
    rule: matches(lower(text), "\\\\b(bad|awful|rude|cold)\\\\b")
pool:
  path: data/pool.jsonl
generate:
  model: gpt-4o-mini
eval:
  gold: data/gold.jsonl
  pass: PASS_CRITERION
  split: {test_fraction: 0}  # nine gold items: too few to halve; every item is shown and judges
"""

POOL = ["good food", "great service", "lovely staff", "tasty soup", "good value and great view", "great pasta",
        "bad food", "awful service", "rude staff", "cold soup", "bad value and awful view", "cold pasta",
        "nothing to say", "good but cold"]
GOLD = [("good staff", "pos"), ("great soup", "pos"), ("tasty food", "pos"), ("lovely view", "pos"),
        ("awful staff", "neg"), ("rude service", "neg"), ("cold food", "neg"), ("bad soup and bad pasta", "neg"),
        ("sarcastic: great, just great", "neg")]


def _project(root: Path, criterion: str = "accuracy >= 0.8") -> Path:
    spec = root / "reviews.task.yaml"
    root.mkdir(parents=True, exist_ok=True)
    spec.write_text(edit(SPEC, "PASS_CRITERION", criterion), encoding="utf-8")
    write_jsonl(root / "data" / "pool.jsonl", [{"text": t} for t in POOL])
    write_jsonl(root / "data" / "gold.jsonl", [{"text": t, "label": lab} for t, lab in GOLD])
    return spec


@pytest.fixture(autouse=True)
def _offline(no_provider: None) -> None:
    """Every run here is offline unless a test names a provider."""


def test_a_passing_criterion_exits_0_and_writes_every_file(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    notice, *phases = err.splitlines()
    assert "no LLM provider configured: skipped generation" in notice
    # an offline run shows its phases too, each as it starts and ends
    assert [line.split(":")[0] for line in phases[1::2]] == ["pool labeling", "training", "gold scoring", "report"]
    assert all(line.endswith(": started") or ": started (" in line for line in phases[0::2])
    assert all(": done in " in line for line in phases[1::2])
    assert "OPENAI_API_KEY" in err and "--base-url" in err
    assert "PASSED: accuracy >= 0.8 on the rules, then the local model (accuracy = 0.889)" in out
    assert "report: " in out and "report.html" in out
    for name in ("labeled_pool.jsonl", "metrics.json", "report.md", "report.html", "model/model.joblib",
                 "model/metadata.json"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("*.tmp")), "temporary files left behind"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["criterion"]["passed"] is True
    assert metrics["criterion"]["split"] == "all"  # test_fraction 0: no test half
    local = metrics["predictors"]["local_model"]["all"]
    assert local["accuracy"] == pytest.approx(8 / 9) and local["coverage"] == 1.0
    assert metrics["predictors"]["local_model"]["test"] is None
    rules = metrics["predictors"]["labeling_functions"]["all"]
    assert rules["coverage"] == 1.0 and rules["accuracy"] == pytest.approx(8 / 9)
    low, high = rules["accuracy_ci"]
    assert low < 8 / 9 <= high <= 1.0
    pool = [json.loads(line) for line in (run_dir / "labeled_pool.jsonl").read_text().splitlines()]
    assert len(pool) == len(POOL)
    assert pool[12]["label"] is None and pool[12]["label_source"] is None  # no rule fired: stays unlabeled
    assert pool[0]["label"] == "pos" and pool[0]["label_source"] == "label_model"
    assert pool[0]["votes"] == {"praise": "pos"}


def test_a_failing_criterion_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path, criterion='accuracy >= 0.8 and recall["neg"] >= 0.95')
    assert main(["run", str(spec), "-o", str(tmp_path / "run")]) == 3
    out = capsys.readouterr().out
    assert 'FAILED: accuracy >= 0.8 and recall["neg"] >= 0.95 on the rules, then the local model' in out
    assert 'recall["neg"] = 0.800' in out


def test_the_report_groups_errors_by_rationale(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--quiet"]) == 0
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "## Errors grouped by rationale" in markdown
    praise = markdown.split("### `praise` → pos")[1].split("###")[0]
    assert "Fired on 5 gold items: **4 correct, 1 wrong**" in praise
    assert "Voted wrong on 1 misclassified item:" in praise
    assert "sarcastic: great, just great — gold **neg**, predicted pos; rules: praise→pos (line 9)" in praise
    complaint = markdown.split("### `complaint` → neg")[1].split("###")[0]
    assert "Fired on 4 gold items: **4 correct, 0 wrong**" in complaint
    assert "Silent on 1 misclassified neg item (see *neg errors no neg rule caught*)" in complaint
    assert "### neg errors no neg rule caught" in markdown
    steps = markdown.split("## Next steps")[1]
    assert "**Narrow `praise`: it has the most false votes.**" in steps
    assert "Settle the conflict between `praise` and `complaint`" in steps
    page = (tmp_path / "run" / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "Errors grouped by rationale" in page
    assert "<code>praise</code> → pos" in page and "4 correct" in page
    # self-contained: no scripts, stylesheets, images or fonts fetched from anywhere
    for reference in ("<script", "<link", "<img", "src=", "url(", "@import"):
        assert reference not in page
    assert page.count("http") == page.count('xmlns="http://www.w3.org/2000/svg"')


def test_gold_override_with_a_file_outside_the_project(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project")
    held_out = tmp_path / "elsewhere" / "held_out.jsonl"
    write_jsonl(held_out, [{"text": "tasty and lovely", "label": "pos"}, {"text": "awful and cold", "label": "neg"},
                            {"text": "great staff", "label": "pos"}, {"text": "rude waiter", "label": "neg"},
                            {"text": "lovely " * 30, "label": "pos", "source": "a real review, over the limit"}])
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "--gold", str(held_out), "--quiet"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["gold"] == str(held_out) and metrics["gold_items"] == 5
    assert f"{held_out}:5: field 'text' is longer than 200 (kept)" in metrics["notes"]
    assert metrics["predictors"]["local_model"]["all"]["accuracy"] == 1.0
    assert str(held_out) in (run_dir / "report.md").read_text()


def test_json_summary_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path)
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["passed"] is True
    assert summary["metrics"]["local_model"]["all"]["accuracy"] == pytest.approx(8 / 9)
    assert summary["pool"] == {"items": 14, "labeled": 13, "by_source": {"label_model": 13}}
    assert summary["skipped_llm_steps"][0] == "generation"
    assert summary["files"]["report_html"].endswith("report.html")


def test_with_format_json_the_task_files_errors_are_diagnostic_events(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    broken = Path(__file__).resolve().parent.parent / "broken" / "E021_unknown_field.task.yaml"
    assert main(["run", str(broken), "-o", str(tmp_path / "run"), "--format", "json"]) == 1
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in err.splitlines()]
    assert any(e["event"] == "diagnostic" and e["code"] == "E021" and e["line"] > 0 for e in events)
    assert events[-1]["event"] == "error" and json.loads(out)["exit_status"] == 1


def test_with_format_json_a_usage_error_of_the_run_is_json_too(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    assert main(["run", str(_project(tmp_path)), "-o", str(tmp_path / "file"), "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert json.loads(err.splitlines()[-1])["message"].startswith("RUN_DIR is a file")
    assert json.loads(out)["exit_status"] == 2


@pytest.mark.parametrize(("which", "line", "located"), [
    ("gold", '{"text": "fine", "label": "pos"', "gold.jsonl:3:"),
    ("gold", '{"text": "fine", "label": "meh"}', "gold.jsonl:3: label \"meh\" is not a class"),
    ("pool", '{"txt": "fine"}', "pool.jsonl:3: missing field 'text'"),
])
def test_bad_data_lines_exit_1_with_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    which: str, line: str, located: str) -> None:
    spec = _project(tmp_path)
    path = tmp_path / "data" / f"{which}.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    assert main(["run", str(spec), "-o", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert f"taskc: error: data/{located}" in err or f"taskc: error: {tmp_path}/data/{located}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_run_that_fails_before_it_trains_stops_its_model_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from taskc.runtime import model_process

    monkeypatch.setenv(model_process.ENVIRONMENT_SWITCH, "1")  # a child even though this process has scikit-learn
    started: list[Any] = []
    start_early = model_process.start_early
    monkeypatch.setattr(model_process, "start_early", lambda *a, **k: (start_early(*a, **k),
                                                                       started.append(model_process._early)))
    spec = _project(tmp_path)
    (tmp_path / "data" / "pool.jsonl").write_text('{"txt": "fine"}\n')
    assert main(["run", str(spec), "-o", str(tmp_path / "run")]) == 1  # bad data: before any training
    assert "missing field 'text'" in capsys.readouterr().err
    assert model_process._early is None and started and started[0] is not None
    assert started[0]._child.poll() is not None  # stopped, not left for the next command of this process


def test_missing_gold_override_and_spec_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path)
    assert main(["run", str(spec), "--gold", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "run")]) == 1
    assert f"taskc: error: {tmp_path / 'nope.jsonl'}: file not found" in capsys.readouterr().err
    spec.write_text(edit(spec.read_text(), "class: neg", "class: negative"))
    assert main(["run", str(spec), "-o", str(tmp_path / "run")]) == 1
    assert "error" in capsys.readouterr().err


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "3  the pass criterion does not hold on the primary predictor" in out
    assert "--gold FILE" in out and "--base-url URL" in out


def test_the_keto_example_runs_offline(keto_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    status = main(["run", str(keto_project), "-o", str(keto_project.parent / "run")])
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    metrics = json.loads((keto_project.parent / "run" / "metrics.json").read_text())
    assert status == 0 and metrics["criterion"]["passed"] and metrics["primary"] == "rules_then_model"
    assert metrics["gold_items"] >= 150 and metrics["gold_split"]["test"] >= 75
    assert set(metrics["predictors"]) == {"labeling_functions", "local_model", "rules_then_model"}
    primary, rules = (metrics["predictors"][name]["all"] for name in ("rules_then_model", "labeling_functions"))
    assert primary["macro_f1"] >= rules["macro_f1"] and primary["accuracy"] >= rules["accuracy"]
    assert metrics["data_shift"]["knowledge_gaps"] == []  # the example's rules read the dish name too
    assert "starchy_dish_name" in out and "report:" in out
    report = (keto_project.parent / "run" / "report.md").read_text()
    for rationale in ("rice_pasta_noodles", "added_sugar", "starchy_dish_name", "keto_by_name", "fat_and_protein"):
        assert f"### `{rationale}` →" in report
    print(f"keto run took {elapsed:.1f}s")  # informational; timings are benchmarked in bench/, not asserted


def test_without_a_gold_set_nothing_is_judged_and_the_run_exits_0(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path)
    spec.write_text(spec.read_text().split("eval:")[0])
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["passed"] is None and summary["metrics"] == {}
    assert any("no gold set" in note for note in summary["notes"])
    assert (tmp_path / "run" / "model" / "model.joblib").is_file()


def test_a_run_that_cannot_train_removes_the_previous_model(tmp_path: Path) -> None:
    spec = _project(tmp_path)
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "model" / "model.joblib").is_file()
    spec.write_text(edit(spec.read_text(), '    rule: matches(lower(text), "\\\\b(bad|awful|rude|cold)\\\\b")\n', ""))
    assert main(["run", str(spec), "-o", str(run_dir), "--quiet"]) == 3  # primary local_model could not train
    assert not (run_dir / "model" / "model.joblib").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "local_model" not in metrics["predictors"]
    assert "only 'pos'; no example of 'neg'" in " ".join(metrics["notes"])


def test_quiet_prints_only_the_verdict_and_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # not even the notice that the LLM steps were skipped
    assert out.splitlines()[0].startswith("PASSED:") and out.splitlines()[1].startswith("report: ")
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "--json"]) == 0
    assert "no LLM provider configured" in capsys.readouterr().err  # --json keeps it, on stderr


def test_run_dir_that_is_a_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n", encoding="utf-8")
    assert main(["run", str(spec), "-o", str(taken)]) == 2
    assert capsys.readouterr().err == f"taskc: error: RUN_DIR is a file, not a directory: {taken}\n"
    assert taken.read_text(encoding="utf-8") == "mine\n"


@pytest.mark.parametrize("ends", ["with a report", "in a usage error"])
def test_a_run_leaves_the_garbage_collector_as_it_found_it(ends: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The run pauses the collector for its start-up and freezes what that made (cmd_run); both end with it."""
    import gc

    spec = _project(tmp_path / "project")
    seen: list[tuple[bool, int]] = []
    from taskc.runtime import pipeline

    real_run = pipeline.run

    def watched_run(*args: object, **kwargs: object) -> object:
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run", watched_run)
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n", encoding="utf-8")
    assert main(["run", str(spec), "-o", str(taken if ends == "in a usage error" else tmp_path / "run"), "-q"]) \
        == (2 if ends == "in a usage error" else 0)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    if ends == "with a report":  # collecting during the run's own work, not walking the start-up's objects
        assert seen and seen[0][0] and seen[0][1] > 0


def test_the_error_analysis_runs_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from taskc.runtime import report

    calls: list[int] = []
    original = report.analyse_errors

    def counted(result: object) -> report.Findings:
        calls.append(1)
        return original(result)  # type: ignore[arg-type]

    monkeypatch.setattr(report, "analyse_errors", counted)
    assert main(["run", str(_project(tmp_path / "project")), "-o", str(tmp_path / "run")]) == 0
    assert len(calls) == 1 and "next steps" in capsys.readouterr().out


def test_without_a_criterion_the_html_verdict_is_neutral(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project")
    spec.write_text(spec.read_text().split("eval:")[0], encoding="utf-8")
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 0
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<p class=muted><strong>" in html and "<p class=fail>" not in html


def _run_in_a_fresh_process(spec: Path, run_dir: Path, hash_seed: str, **environment: str) -> dict[str, bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI_")}
    done = subprocess.run([sys.executable, "-m", "taskc", "run", str(spec), "-o", str(run_dir), "-q"],
                          env=env | {"PYTHONHASHSEED": hash_seed} | environment, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_two_offline_runs_write_the_same_bytes_whatever_the_hash_seed(tmp_path: Path) -> None:
    """The model, the labelled pool, the metrics and the reports are the same bytes run after run; only the run's
    history (when it ran) and its lock differ."""
    spec = _project(tmp_path / "project")
    first = _run_in_a_fresh_process(spec, tmp_path / "a", "1")
    second = _run_in_a_fresh_process(spec, tmp_path / "b", "2024")
    assert sorted(first) == sorted(second) and "model/model.joblib" in first
    differing = sorted(name for name, data in first.items() if second[name] != data)
    assert differing == [".lock", "history.jsonl"]


LOADED_LIBRARIES = """
import sys
from taskc.cli.main import main
status = main(sys.argv[1:])
print(sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"}))
sys.exit(status)
"""


def test_a_run_fits_its_model_in_a_process_of_its_own_and_writes_the_same_bytes(tmp_path: Path) -> None:
    """A fresh `taskc run` leaves scikit-learn to the model process (see runtime/model_process.py): the run's own
    process never imports it, and the files are the bytes of a run that fits the model itself."""
    spec = _project(tmp_path / "project")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("OPENAI_") and key != "TASKC_MODEL_PROCESS"}
    done = subprocess.run([sys.executable, "-c", LOADED_LIBRARIES, "run", str(spec), "-o", str(tmp_path / "a"), "-q"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    apart = {str(p.relative_to(tmp_path / "a")): p.read_bytes() for p in sorted((tmp_path / "a").rglob("*"))
             if p.is_file()}
    here = _run_in_a_fresh_process(spec, tmp_path / "b", "0", TASKC_MODEL_PROCESS="0")
    assert sorted(apart) == sorted(here) and "model/model.joblib" in here
    assert sorted(name for name, data in apart.items() if here[name] != data) == [".lock", "history.jsonl"]


def test_with_format_json_an_internal_error_is_json_too(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from taskc.runtime import pipeline

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.delenv("TASKC_DEBUG", raising=False)
    monkeypatch.setattr(pipeline, "run", broken)
    spec = str(_project(tmp_path))
    assert main(["run", spec, "-o", str(tmp_path / "run"), "--format", "json"]) == 70
    out, err = capsys.readouterr()
    last = json.loads(err.splitlines()[-1])
    assert last["event"] == "error" and last["message"].startswith("internal error: RuntimeError: a bug")
    assert json.loads(out) == {"error": last["message"], "exit_status": 70}
    assert main(["run", spec, "-o", str(tmp_path / "run")]) == 70  # in text, one line on stderr
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines()[-1].startswith("taskc: internal error: RuntimeError: a bug")
