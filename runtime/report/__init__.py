"""The expert's feedback report, last stage of `taskc run`: what the run says about the expert's knowledge.

This package's public face: `pipeline` analyses the run and writes report.md and
report.html through it, the CLI prints the terminal summary through it. Inside,
one module per job: `findings` (the records: errors, rationales, next steps, the
data shift), `analysis` (computes them from the run, and the facts every
renderer shares), `tables` (the rows the renderers lay out), `markdown`, `html`
(+ `pictures`, its inline SVG) and `terminal` (the renderers), `llm` and
`expert` (the sections on the LLM's and the expert loop's part), `listing`
(each gold item listed once). The package reads the run's `RunResult`
(`runtime/result.py`) and never imports `pipeline`.
"""

from __future__ import annotations

from .analysis import analyse_errors, data_shift, describe, model_facts, predictor_title, student_facts, verdict
from .findings import DataShift, Findings, Misclassified, NextStep, RationaleFindings
from .html import confusion_svg, render_html
from .markdown import render_markdown
from .tables import lf_rows, metrics_rows, scoring_note, split_rows, strongest_rows, student_rows
from .terminal import plain_verdict, print_summary

__all__ = ["DataShift", "Findings", "Misclassified", "NextStep", "RationaleFindings", "analyse_errors", "confusion_svg",
           "data_shift", "describe", "lf_rows", "metrics_rows", "model_facts", "plain_verdict", "predictor_title",
           "print_summary", "render_html", "render_markdown", "scoring_note", "split_rows", "strongest_rows",
           "student_facts", "student_rows", "verdict"]
