"""The report's tables, built once for every renderer: metrics, dev/test halves, rules, the student, features.

Part of the report stage. Each `*_rows` function reads the run's result and
returns (header, rows) of plain strings; `markdown`, `html` and `terminal` lay
them out. `scoring_note` and the run's facts (`_run_lines`) are the text that
goes with them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from taskc.compiler import counted

from ..authors import grouped_by_author
from ..result import RunResult
from .analysis import _counts, _pct, model_facts, predictor_title, student_facts


def metrics_rows(result: RunResult, split: str = "all") -> tuple[list[str], list[list[str]]]:
    """One row per predictor, the same columns for all: scores over every item of ``split``."""
    classes = result.task.class_names
    header = ["predictor", "accuracy", "95% CI", "macro-F1", "95% CI", "coverage"] + [f"{c} P / R / F1"
                                                                                     for c in classes]
    rows = []
    for name, scores in result.metrics.items():
        m = scores.on(split)
        if m is None:
            continue
        marker = " (primary)" if name == result.primary else ""
        rows.append([predictor_title(name) + marker, _pct_or_na(m.accuracy), _interval(m.accuracy_ci, _pct),
                     _number_or_na(m.macro_f1), _interval(m.macro_f1_ci, lambda v: f"{v:.3f}"), _pct(m.coverage)]
                    + [" / ".join(_number_or_na(getattr(m, part)[c], 2) for part in ("precision", "recall", "f1"))
                       for c in classes])
    return header, rows


def split_rows(result: RunResult) -> tuple[list[str], list[list[str]]]:
    """Macro-F1 of each predictor on the dev half, the test half (which judges the criterion) and all, each
    with its 95% interval: a half is smaller than the whole, so its score is noisier, and the interval says
    by how much."""
    header = ["predictor", "dev macro-F1 (95% CI)", "test macro-F1 (95% CI)", "all macro-F1 (95% CI)",
              "test accuracy"]
    rows = []
    for name, scores in result.metrics.items():
        marker = " (primary)" if name == result.primary else ""
        cells = [_with_interval(scores.on(split)) for split in SPLITS_SHOWN]
        rows.append([predictor_title(name) + marker, *cells,
                     _pct_or_na(None if scores.test is None else scores.test.accuracy)])
    return header, rows


SPLITS_SHOWN = ("dev", "test", "all")


def _with_interval(m: Any) -> str:
    """"0.912 (0.850–0.960)": a split's macro-F1 and its interval; "n/a" without scores."""
    if m is None or m.macro_f1 is None:
        return _number_or_na(None)
    interval = f" ({m.macro_f1_ci[0]:.3f}–{m.macro_f1_ci[1]:.3f})" if m.macro_f1_ci else ""
    return f"{m.macro_f1:.3f}{interval}"


def _pct_or_na(value: float | None) -> str:
    return "n/a" if value is None else _pct(value)


def _number_or_na(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(interval: tuple[float, float] | None, show: Any) -> str:
    return "n/a" if interval is None else f"{show(interval[0])}–{show(interval[1])}"


def scoring_note(result: RunResult) -> str:
    dev, total = len(result.dev_indices), len(result.gold)
    split = (f" The gold set is split into a dev half ({counted(dev, 'item')}: every gold item this report shows "
             f"comes from it) and a test half ({counted(total - dev, 'item')}: numbers only); the pass criterion is "
             "judged on test."
             if dev < total else "")
    return ("Every predictor is scored over all gold items, an abstention counting as an error; coverage is the "
            "share it labeled; n/a: it labeled nothing. The 95% intervals (bootstrap over the items) show how "
            "much of a score is the luck of the gold set: differences inside them are noise." + split)


def student_rows(result: RunResult) -> tuple[list[str], list[list[str]]] | None:
    facts = student_facts(result)
    if not facts:
        return None
    shown = ("provider", "model", "device", "features", "head", "training_size", "epochs_run", "best_epoch")
    rows = [[key.replace("_", " "), ", ".join(map(str, value)) if isinstance(value, list) else str(value)]
            for key in shown if (value := facts.get(key)) is not None]
    return ["student (finetuned)", ""], rows


def strongest_rows(result: RunResult) -> tuple[list[str], list[list[str]]] | None:
    facts = model_facts(result)
    if not facts:
        return None
    rows = [[cls, ", ".join(f"{f['feature']} ({f['weight']:+.2f})" for f in features[:8])]
            for cls, features in facts["strongest_features"].items()]
    groups = ", ".join(f"{name}: {count}" for name, count in facts["feature_groups"].items())
    return ["towards", f"strongest features (weight); feature groups: {groups}"], rows


def lf_rows(result: RunResult) -> tuple[list[str], list[list[str]]]:
    header = ["rationale", "class", "coverage", "overlaps", "conflicts", "gold votes", "gold accuracy"]
    rows = []
    analysis = result.analysis
    for f in analysis.functions if analysis else ():
        accuracy = f.empirical_accuracy
        rows.append([f.rationale_id, f.class_name, _pct(f.coverage), _pct(f.overlaps), _pct(f.conflicts),
                     "-" if f.gold_votes is None else f"{f.gold_correct}/{f.gold_votes}",
                     "-" if accuracy is None else _pct(accuracy)])
    for rationale_id in analysis.rationales_without_rule if analysis else ():
        rows.append([rationale_id, result.task.rationale(rationale_id).class_name, "no rule", "", "", "", ""])
    return grouped_by_author(result, header, rows)


def _run_lines(result: RunResult) -> list[str]:
    lines = []
    labeled = Counter(p.source for p in result.pool if p.source)
    if result.pool:
        lines.append(f"Pool: {counted(len(result.pool), 'item')}, {sum(labeled.values())} labeled "
                     f"({_counts(labeled)}), "
                     f"{len(result.pool) - sum(labeled.values())} left unlabeled.")
    if result.training:
        lines.append(f"Local model trained on {counted(sum(result.training.values()), 'example')}: "
                     + ", ".join(f"{n} {s}" for s, n in result.training.items()) + ".")
    if result.skipped_llm_steps:
        lines.append("Skipped: " + ", ".join(result.skipped_llm_steps) + ".")
    lines += result.notes
    lines.append("Files: " + ", ".join(f"`{path.name}`" for path in result.files.values()) + ".")
    return lines


__all__ = ["lf_rows", "metrics_rows", "scoring_note", "split_rows", "strongest_rows", "student_rows"]
