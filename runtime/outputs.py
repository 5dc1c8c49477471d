"""Runtime stage: the run directory's outputs, written last, and the run's history record.

labeled_pool.jsonl, training_set.jsonl, the saved predictors (model/), the expert loop's files,
metrics.json, report.md and report.html, each written atomically; then the run's record is appended
to the history, last, so that a run recorded is a run whose outputs are all written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import expert_loop, history
from .datafiles import write_text_atomic
from .datasets import write_json, write_jsonl
from .features import spec_hash
from .result import RunResult
from .training_set import TRAINING_SET_FILE, training_row


def write_outputs(result: RunResult) -> None:
    """Write every output of the run into its directory, and record the run in the history."""
    from taskc._version import __version__

    from . import report

    run_dir = result.run_dir
    task = result.task
    write_jsonl(run_dir / "labeled_pool.jsonl", (item.to_json(task) for item in result.pool))
    result.files["labeled_pool"] = run_dir / "labeled_pool.jsonl"
    write_jsonl(run_dir / TRAINING_SET_FILE, (training_row(task, e) for e in result.examples))
    result.files["training_set"] = run_dir / TRAINING_SET_FILE
    if result.predictors is not None:
        result.predictors.save(run_dir / "model", primary=result.primary,
                               spec_path=Path(task.project_dir) / Path(task.source).name, taskc_version=__version__)
        result.files["model"] = run_dir / "model"
    result.files["metrics"] = run_dir / "metrics.json"
    result.files["report_md"] = run_dir / "report.md"
    result.files["report_html"] = run_dir / "report.html"
    findings = result.findings = report.analyse_errors(result)
    result.expert = expert_loop.analyse(result)
    expert_loop.write_files(result)
    result.shift = report.data_shift(result)
    record = _history_record(result, __version__)
    metrics = {
        "task": task.name, "gold": result.gold_display, "gold_items": len(result.gold),
        "gold_split": {"dev": len(result.dev_indices), "test": len(result.gold) - len(result.dev_indices),
                       "test_fraction": task.eval.test_fraction if task.eval else None,
                       "seed": task.eval.split_seed if task.eval else None},
        "primary": result.primary, "criterion": None if result.criterion is None else result.criterion.to_json(),
        "predictors": {name: m.to_json() for name, m in result.metrics.items()},
        "labeling_functions": None if result.analysis is None else result.analysis.to_json(),
        "expert_loop": result.expert.to_json() if result.expert is not None else None,
        "local_model": report.model_facts(result),
        "student": report.student_facts(result),
        "data_shift": result.shift.to_json() if result.shift is not None else None,
        "training": result.training, "notes": result.notes, "llm": result.llm,
        "llm_labeling_function": None if result.llm_function is None else result.llm_function.to_json(),
        "llm_data_effect": None if result.llm_data_effect is None else result.llm_data_effect.to_json(),
        "note": ("every predictor is scored over all gold items of a split, abstentions counted as errors; "
                 "coverage is the share it labeled; *_ci are 95% bootstrap intervals; null means n/a (the "
                 "predictor labeled nothing); the criterion is judged on the test half"),
    }
    write_json(result.files["metrics"], metrics)
    write_text_atomic(result.files["report_md"], report.render_markdown(result, findings))
    write_text_atomic(result.files["report_html"], report.render_html(result, findings))
    history.append_record(run_dir, record)  # last: a run recorded is a run whose outputs are all written
    result.files["history"] = run_dir / history.HISTORY_FILE


def _history_record(result: RunResult, taskc_version: str) -> dict[str, Any]:
    """This run's history record (with a copy of its task file), and what changed since the run before."""
    task, run_dir = result.task, result.run_dir
    earlier = history.read_history(run_dir)
    number = history.next_number(earlier)
    spec = Path(task.project_dir) / Path(task.source).name
    small_files = [lexicon.file for lexicon in task.lexicons if lexicon.file] + list(task.generate.templates.values())
    try:
        snapshot = history.snapshot_spec(run_dir, number, spec, small_files)
    except OSError:
        snapshot = None
    primary = result.predictions.get(result.primary, [])
    rationales = {} if result.analysis is None else {
        f.rationale_id: {"coverage": f.coverage, "gold_accuracy": f.empirical_accuracy, "votes": f.votes}
        for f in result.analysis.functions}
    record = history.build_record(
        number=number, task=task.name, spec_hash=spec_hash(task), taskc_version=taskc_version,
        commit=history.git_commit(Path(task.project_dir)), primary=result.primary,
        passed=None if result.criterion is None else result.criterion.passed,
        metrics={name: m.to_json() for name, m in result.metrics.items()}, rationales=rationales,
        cost_estimate_usd=result.estimate_usd,
        gold_correct={history.gold_key(g.values): label == g.label  # no predictions: no gold item is right
                      for g, label in zip(result.gold, primary or [None] * len(result.gold), strict=True)},
        snapshot=snapshot, expert_answers=len(result.answers.records) if result.answers is not None else 0,
        files_hash=history.files_hash(spec, small_files))
    result.history = [*earlier, record]
    if earlier:
        split = result.criterion.split if result.criterion is not None else "test"
        result.since = history.since_last_run(earlier[-1], record, split)
        previous = earlier[-1].get("snapshot")
        result.spec_changes = history.spec_changes(run_dir / previous, task) if previous else None
    return record


__all__ = ["write_outputs"]
