"""The report on the terminal: the short version `taskc run` prints when it ends.

Part of the report stage, beside `markdown` and `html`: the rules' and the
predictors' tables (from `tables`), how the gold set differs from the pool,
the worst rationales with an example or two of their errors, the first next
steps, the expert's questions and suggestions, the notes and the verdict. The
CLI only decides whether to print it (not under --quiet or --format json) and
whether the terminal takes colour.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from taskc.compiler import counted

from ..result import RunResult
from .analysis import describe, predictor_title, verdict
from .findings import Findings
from .tables import lf_rows, metrics_rows, split_rows

TOP_RATIONALES = 3
TOP_STEPS = 4


def plain_verdict(outcome: RunResult) -> str:
    """The verdict line without Markdown's backticks (for --quiet, and the summary's last lines)."""
    return verdict(outcome).replace("`", "")


def print_summary(outcome: RunResult, findings: Findings, color: bool) -> None:
    """The short terminal version of the report: metrics, rules, the worst rationales, next steps."""
    from rich.console import Console
    from rich.table import Table

    terminal = sys.stdout.isatty()
    console = Console(file=sys.stdout, width=None if terminal else 120, no_color=not color,
                      highlight=False, soft_wrap=False)
    if outcome.analysis:
        header, rows = lf_rows(outcome)
        table = Table(*header, title=f"labeling functions on the pool ({counted(outcome.analysis.items, 'item')}, "
                                     f"{outcome.analysis.coverage:.0%} covered)", title_justify="left")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    if outcome.metrics:
        header, rows = metrics_rows(outcome)
        table = Table(*header, title=f"gold set {outcome.gold_display} ({counted(len(outcome.gold), 'item')}; every "
                                     "predictor over all items, abstentions counted as errors)", title_justify="left")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if len(outcome.dev_indices) < len(outcome.gold):
            header, rows = split_rows(outcome)
            test = len(outcome.gold) - len(outcome.dev_indices)
            table = Table(*header, title=f"dev half ({counted(len(outcome.dev_indices), 'item')}, shown in the report) "
                                         f"and test half ({counted(test, 'item')}, judges "
                                         "the criterion)", title_justify="left")
            for row in rows:
                table.add_row(*row)
            console.print(table)
    for warning in (outcome.shift.warnings() if outcome.shift is not None else []):
        console.print(f"gold vs pool: {warning.replace('`', '')}", markup=False, style="yellow", soft_wrap=True)
    worst = [g for g in findings.by_rationale if g.errors_voted_wrong or g.errors_missed][:TOP_RATIONALES]
    if findings.errors:
        title = predictor_title(findings.primary)
        console.print(f"[bold]errors by rationale[/] ({_errors(len(findings.errors))} of the {title} on dev; "
                      f"{len(findings.unexplained)} with no rule firing)")
        shown: set[int] = set()  # an item several rationales voted for is printed once, under the first
        for group in worst:
            console.print(f"  {group.rationale_id} → {group.class_name}: voted wrong on "
                          f"{_errors(len(group.errors_voted_wrong))}, silent on {len(group.errors_missed)}; on dev "
                          f"gold {group.fired_correct} right / {group.fired_wrong} wrong", markup=False)
            fresh = [i for i in group.errors_voted_wrong if i not in shown][:2]
            earlier = [outcome.gold[i].line for i in group.errors_voted_wrong if i in shown]
            for index in fresh:
                item = outcome.gold[index]
                console.print(f"      wrong vote: {_clip(describe(outcome, item.values))} (gold {item.label}, "
                              f"line {item.line})", markup=False, style="dim")
            if earlier:
                lines = ", ".join(str(line) for line in earlier)
                plural = "s" if len(earlier) != 1 else ""
                console.print(f"      wrong vote{plural} on gold line{plural} {lines}: shown above", markup=False,
                              style="dim")
            shown.update(fresh)
    console.print("[bold]next steps[/]")
    for number, step in enumerate(findings.next_steps[:TOP_STEPS], start=1):
        console.print(f"  {number}. {step.title.replace('`', '')}", markup=False)
    loop = outcome.expert
    if loop is not None and (loop.questions or loop.suggestions):
        run_dir = _shown_path(outcome.run_dir)
        count = len(loop.suggestions)
        console.print(f"for the expert: {counted(len(loop.questions), 'question')} (taskc ask {run_dir}), "
                      f"{counted(count, 'lexicon suggestion')} (taskc suggest {run_dir})", markup=False, soft_wrap=True)
    for note in outcome.notes:
        console.print(f"note: {note}", markup=False, style="yellow", soft_wrap=True)
    passed = outcome.criterion is None or outcome.criterion.passed
    console.print(plain_verdict(outcome), style="bold green" if passed else "bold red", markup=False, soft_wrap=True)
    console.print(f"report: {_shown_path(outcome.files['report_html'])}  (and report.md, metrics.json)",
                  markup=False)


def _errors(count: int) -> str:
    return counted(count, "error")


def _clip(text: str, width: int = 76) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _shown_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


__all__ = ["plain_verdict", "print_summary"]
