"""The report as one self-contained HTML page (report.html): inline CSS and inline SVG, nothing fetched.

Part of the report stage: `render_html` lays out what `analysis` and `tables`
computed, with the confusion matrix drawn here (`confusion_svg`), the rules'
pictures from `pictures` and the runs' trend from `history`. No script and no
external asset: the page opens offline, from a mail attachment as well as from
the run directory.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from taskc.compiler import counted

from .. import history
from ..result import RunResult
from . import expert, llm, pictures
from .analysis import (
    LOW_RULE_ACCURACY,
    MAX_LISTED,
    _missed_intro,
    _missed_title,
    _pct,
    describe,
    predictor_title,
    since_summary,
    verdict,
)
from .findings import Findings, RationaleFindings
from .listing import ItemListing
from .tables import _run_lines, lf_rows, metrics_rows, scoring_note, split_rows, strongest_rows, student_rows

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d1d1f}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}
th{background:#f4f4f6}.pass{color:#08692a}.fail{color:#b3261e}blockquote{color:#555;margin:.3em 0 .6em 1em}
code{background:#f4f4f6;padding:0 .25em;border-radius:3px}.muted{color:#666}li{margin:.15em 0}
.tag{display:inline-block;border-radius:3px;padding:0 .35em;font-size:.85em;background:#eef}
.wrong{background:#fde8e7}.right{background:#e6f4ea}.warn li{color:#8a4b00}
"""


def render_html(result: RunResult, findings: Findings) -> str:
    e = html.escape
    task = result.task
    state = "muted" if result.criterion is None else "pass" if result.criterion.passed else "fail"
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>taskc run: {e(task.name)}</title>",
             '<meta name=viewport content="width=device-width,initial-scale=1">',
             f"<style>{_CSS}{pictures.CSS}</style></head><body>", f"<h1>taskc run: {e(task.name)}</h1>",
             f"<p class={state}><strong>{_inline_code(verdict(result))}</strong></p>"]
    if result.gold_display:
        parts.append(f"<p>Gold set: <code>{e(result.gold_display)}</code> ({counted(len(result.gold), 'item')}). "
                     f"Primary predictor: {e(predictor_title(findings.primary))}.</p>")
    since = since_summary(result)
    if since is not None:
        summary, changes, scores, rationales = since
        parts += ["<h2>Since the last run</h2>", f"<p>{e(summary)}</p>"]
        if changes:
            parts += ["<ul>"] + [f"<li>{e(line)}</li>" for line in changes] + ["</ul>"]
        parts.append(_html_table(*scores))
        if rationales[1]:
            parts.append(_html_table(*rationales))
        trend = history.trend_svg(result.history, result.primary)
        if trend:
            parts += [f"<p class=muted>macro-F1 of {e(predictor_title(result.primary))} over the runs "
                      "(the bars are 95% intervals)</p>", trend]
    shift = result.shift.warnings() if result.shift is not None else []
    if shift:
        parts += ["<h2>How the gold set differs from the pool</h2><ul class=warn>"]
        parts += [f"<li>{_inline_code(line)}</li>" for line in shift] + ["</ul>"]
    parts += ["<h2>Metrics</h2>", _html_table(*metrics_rows(result)),
              f"<p class=muted>{html.escape(scoring_note(result))}</p>"]
    if len(result.dev_indices) < len(result.gold):
        parts += ["<p>Dev and test halves:</p>", _html_table(*split_rows(result))]
    primary = result.metrics[findings.primary].all if findings.primary in result.metrics else None
    if primary is not None:
        parts += [f"<h2>Confusion matrix ({e(predictor_title(findings.primary))})</h2>", confusion_svg(primary)]
    if result.analysis:
        a = result.analysis
        parts += ["<h2>Labeling functions</h2>",
                  f"<p>On the pool ({counted(a.items, 'item')}): {_pct(a.coverage)} covered by at least one rule, "
                  f"{_pct(a.overlap)} by two or more, {_pct(a.conflict)} in conflict. Gold votes and accuracy "
                  "are on the dev half.</p>",
                  _html_table(*lf_rows(result))]
        parts += pictures.lf_pictures(result, LOW_RULE_ACCURACY)
    parts += llm.html_sections(result, _html_table, html.escape, lambda values: describe(result, values))
    student = student_rows(result)
    if student:
        parts += ["<h2>The student</h2>",
                  "<p class=muted>Trained by finetune.provider on the local model's training set, scored as "
                  "finetuned (alone) and rules_then_finetuned (the rules where they fire, the student "
                  "elsewhere).</p>", _html_table(*student)]
    features = strongest_rows(result)
    if features:
        parts += ["<h2>What the local model leans on</h2>",
                  "<p class=muted>Its strongest features per class. A word that is not knowledge, learnt from how "
                  "the pool happens to be written, is a hint that the rules label too few items of that kind.</p>",
                  _html_table(*features)]
    parts.append("<h2>Errors grouped by rationale</h2>")
    if findings.errors:
        parts.append(f"<p>The {e(predictor_title(findings.primary))} got {len(findings.errors)} of the "
                     f"{len(result.dev_indices)} dev gold items wrong.</p>")
    else:
        parts.append("<p>No errors on the dev gold items.</p>" if result.gold else "<p>No gold set.</p>")
    listing = ItemListing(MAX_LISTED)
    for group in findings.by_rationale:
        parts.append(_html_rationale(result, group, listing))
    for cls, missed in findings.missed_by_class.items():
        parts += [f"<h3>{html.escape(_missed_title(cls))}</h3>",
                  f"<p>{html.escape(_missed_intro(cls, missed, findings))}</p>",
                  _html_items(result, missed, listing, f"<em>{html.escape(_missed_title(cls))}</em>")]
    parts += expert.html_sections(result, _html_table, _inline_code, lambda values: describe(result, values))
    parts.append("<h2>Next steps</h2><ol>")
    for number, step in enumerate(findings.next_steps, start=1):
        items = _html_items(result, step.examples, listing, f"step {number}") if step.examples else ""
        parts.append(f"<li><strong>{_inline_code(step.title)}.</strong> {_inline_code(step.detail)}{items}</li>")
    parts += ["</ol>", "<h2>Run</h2><ul>"] + [f"<li>{_inline_code(line)}</li>" for line in _run_lines(result)]
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"


def _inline_code(text: str) -> str:
    """Escape text and turn `backticked` spans into <code>."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _html_rationale(result: RunResult, group: RationaleFindings, listing: ItemListing | None = None) -> str:
    e = html.escape
    listing = listing or ItemListing(MAX_LISTED)
    where = f"<code>{e(group.rationale_id)}</code>"
    parts = [f"<h3><code>{e(group.rationale_id)}</code> → {e(group.class_name)}</h3>",
             f"<blockquote>{e(group.text)}</blockquote>"]
    if not group.has_rule:
        return "".join(parts) + "<p>No rule: it cannot fire.</p>"
    pool = f"; fires on {_pct(group.pool_coverage)} of the pool" if group.pool_coverage is not None else ""
    parts.append(f"<p>Fired on {counted(group.fired, 'gold item')}: "
                 f"<span class='tag right'>{group.fired_correct} correct</span> "
                 f"<span class='tag wrong'>{group.fired_wrong} wrong</span>{pool}.</p>")
    if group.errors_voted_wrong:
        parts += [f"<p>Voted wrong on {counted(len(group.errors_voted_wrong), 'misclassified item')}:</p>",
                  _html_items(result, group.errors_voted_wrong, listing, where)]
    others = tuple(i for i in group.wrong_votes if i not in group.errors_voted_wrong)
    if others:
        parts += [f"<p>Other false votes (the {e(predictor_title(result.primary))} got these right anyway):</p>",
                  _html_items(result, others, listing, where)]
    if group.errors_missed:
        silent = counted(len(group.errors_missed), f"misclassified {group.class_name} item")
        parts.append(f"<p>Silent on {e(silent)} (see <em>{e(_missed_title(group.class_name))}</em>).</p>")
    return "".join(parts)


def _html_items(result: RunResult, indices: Sequence[int], listing: ItemListing | None = None,
                where: str = "") -> str:
    e = html.escape
    predicted = result.predictions.get(result.primary, [None] * len(result.gold))
    indices, before = (listing or ItemListing(MAX_LISTED)).split(indices, where)
    rows = []
    for i in indices[:MAX_LISTED]:
        item = result.gold[i]
        fired = ", ".join(f"{r}→{c}" for r, c in item.votes.items()) or "no rule fired"
        rows.append(f"<li>{e(describe(result, item.values))} — gold <strong>{e(item.label)}</strong>, predicted "
                    f"{e(predicted[i] or 'nothing')}; rules: {e(fired)} <span class=muted>(line {item.line})</span>"
                    "</li>")
    if len(indices) > MAX_LISTED:
        rows.append(f"<li class=muted>... and {len(indices) - MAX_LISTED} more</li>")
    if before and listing is not None:
        rows.append(f"<li class=muted>{listing.pointer(before, lambda i: result.gold[i].line)}</li>")
    return "<ul>" + "".join(rows) + "</ul>"


def confusion_svg(metrics: Any, cell: int = 64) -> str:
    """The confusion matrix as an inline SVG: rows gold, columns predicted, shade = share of the row."""
    e = html.escape
    classes = list(metrics.classes)
    columns = classes + (["abstained"] if metrics.labeled < metrics.items else [])
    label_width, top = 130, 70
    width, height = label_width + cell * len(columns) + 10, top + cell * len(classes) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="confusion matrix" font-family="system-ui,sans-serif" font-size="13">',
             f'<text x="{label_width + cell * len(columns) / 2}" y="16" text-anchor="middle" '
             f'font-weight="bold">predicted</text>',
             f'<text x="12" y="{top + cell * len(classes) / 2}" text-anchor="middle" font-weight="bold" '
             f'transform="rotate(-90 12 {top + cell * len(classes) / 2})">gold</text>']
    for j, name in enumerate(columns):
        parts.append(f'<text x="{label_width + cell * j + cell / 2}" y="{top - 10}" text-anchor="middle">'
                     f'{e(name)}</text>')
    for i, name in enumerate(classes):
        row = metrics.confusion[i][:len(columns)]
        total = sum(metrics.confusion[i]) or 1
        parts.append(f'<text x="{label_width - 8}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end">'
                     f'{e(name)}</text>')
        for j, count in enumerate(row):
            share = count / total
            hue = 140 if i == j else 4  # green on the diagonal, red off it
            fill = f"hsl({hue},60%,{97 - 45 * share:.0f}%)" if count else "#fafafa"
            x, y = label_width + cell * j, top + cell * i
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#ccc"/>'
                         f'<text x="{x + cell / 2}" y="{y + cell / 2 + 5}" text-anchor="middle" '
                         f'fill="{"#fff" if share > 0.6 else "#111"}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["confusion_svg", "render_html"]
