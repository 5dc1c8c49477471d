"""The report as Markdown (report.md): the findings and tables laid out, every quoted string escaped.

Part of the report stage: `render_markdown` writes what `analysis` and `tables`
computed. Strings from the data are shown literally (`_md_escape`); our own lines
that quote names or data keep their code spans (`_md_inline`, which finds them as
CommonMark does); table cells escape their pipes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from taskc.compiler import counted

from ..result import RunResult
from . import expert, llm
from .analysis import (
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


def render_markdown(result: RunResult, findings: Findings) -> str:
    task = result.task
    out: list[str] = [f"# taskc run: {task.name}", "", f"**{_md_inline(verdict(result))}**", ""]
    if result.gold_display:
        out += [_md_inline(f"Gold set: `{result.gold_display}` ({counted(len(result.gold), 'item')}). "
                           f"Primary predictor: {predictor_title(findings.primary)}."), ""]
    since = since_summary(result)
    if since is not None:
        summary, changes, scores, rationales = since
        out += ["## Since the last run", "", _md_inline(summary), ""]
        out += [f"- {_md_inline(line)}" for line in changes] + ([""] if changes else [])
        out += [*_md_table(*scores), ""]
        if rationales[1]:
            out += [*_md_table(*rationales), ""]
    shift = result.shift.warnings() if result.shift is not None else []
    if shift:
        out += ["## How the gold set differs from the pool", ""] + [f"- {_md_inline(line)}" for line in shift] + [""]
    out += ["## Metrics", "", *_md_table(*metrics_rows(result)), "", scoring_note(result), ""]
    if len(result.dev_indices) < len(result.gold):
        out += ["Dev and test halves:", "", *_md_table(*split_rows(result)), ""]
    primary = result.metrics[findings.primary].all if findings.primary in result.metrics else None
    if primary is not None:
        columns = [*primary.classes] + (["abstained"] if primary.labeled < primary.items else [])
        rows = [[f"**{cls}**", *[str(n) for n in row[:len(columns)]]] for cls, row in
                zip(primary.classes, primary.confusion, strict=True)]
        out += [f"## Confusion matrix ({predictor_title(findings.primary)})", "",
                *_md_table(["gold \\ predicted", *columns], rows), ""]
    if result.analysis:
        out += ["## Labeling functions", "",
                f"On the pool ({counted(result.analysis.items, 'item')}): {_pct(result.analysis.coverage)} covered "
                f"by at least one rule, {_pct(result.analysis.overlap)} by two or more, "
                f"{_pct(result.analysis.conflict)} in conflict. Gold votes and accuracy are on the dev half.", "",
                *_md_table(*lf_rows(result)), ""]
    out += llm.markdown_sections(result, _md_table, _md_inline, lambda values: describe(result, values))
    student = student_rows(result)
    if student:
        out += ["## The student", "", "Trained by finetune.provider on the local model's training set, scored as "
                "`finetuned` (alone) and `rules_then_finetuned` (the rules where they fire, the student elsewhere).",
                "", *_md_table(*student), ""]
    features = strongest_rows(result)
    if features:
        out += ["## What the local model leans on", "",
                "Its strongest features per class (words, lexicon mentions, rule votes). A word that is not "
                "knowledge (a spice, a cooking style) learnt from how the pool happens to be written is a hint "
                "that the rules label too few items of that kind.", "", *_md_table(*features), ""]
    out += ["## Errors grouped by rationale", ""]
    if not findings.errors:
        out += [f"The {predictor_title(findings.primary)} made no errors on the dev gold items." if result.gold
                else "No gold set, so no errors to show.", ""]
    else:
        out += [f"The {predictor_title(findings.primary)} got {len(findings.errors)} of the {len(result.dev_indices)} "
                "dev gold items wrong. "
                "For each rationale: how its rule did on the whole gold set, the errors it voted for, and the "
                "errors of its class it did not catch.", ""]
    listing = ItemListing(MAX_LISTED)
    for group in findings.by_rationale:
        out += _md_rationale(result, group, listing)
    for cls, missed in findings.missed_by_class.items():
        out += [f"### {_missed_title(cls)}", "", _missed_intro(cls, missed, findings), ""]
        out += _md_items(result, missed, listing, f"*{_missed_title(cls)}*") + [""]
    out += expert.markdown_sections(result, _md_table, _md_inline, lambda values: describe(result, values))
    out += ["## Next steps", ""]
    for number, step in enumerate(findings.next_steps, start=1):
        out.append(f"{number}. **{_md_inline(step.title)}.** {_md_inline(step.detail)}")
        out += ["   " + line for line in _md_items(result, step.examples, listing, f"step {number}")]
    out += ["", "## Run", ""]
    out += [f"- {_md_inline(line)}" for line in _run_lines(result)]
    return "\n".join(out) + "\n"


def _md_items(result: RunResult, indices: Sequence[int], listing: ItemListing, where: str) -> list[str]:
    """The items not listed before in full (at most MAX_LISTED), and one line pointing at the others."""
    new, before = listing.split(indices, where)
    lines = [_md_item(result, i) for i in new[:MAX_LISTED]] + _md_more(len(new))
    if before:
        lines.append("- " + listing.pointer(before, lambda i: result.gold[i].line))
    return lines


def _md_rationale(result: RunResult, group: RationaleFindings, listing: ItemListing | None = None) -> list[str]:
    listing = listing or ItemListing(MAX_LISTED)
    where = f"`{group.rationale_id}`"
    header = f"### `{group.rationale_id}` → {group.class_name}"
    if not group.has_rule:
        lines = [header, "", f"> {_md_inline(group.text)}", "", "No rule: it cannot fire."]
        if group.errors_missed:
            missed = len(group.errors_missed)
            lines[-1] += f" {counted(missed, 'error')} {'is' if missed == 1 else 'are'} of its class."
        return lines + [""]
    lines = [header, "", f"> {_md_inline(group.text)}", "",
             f"Fired on {counted(group.fired, 'gold item')}: "
             f"**{group.fired_correct} correct, {group.fired_wrong} wrong**"
             + (f"; fires on {_pct(group.pool_coverage)} of the pool." if group.pool_coverage is not None else "."),
             ""]
    if group.errors_voted_wrong:
        lines += [f"Voted wrong on {counted(len(group.errors_voted_wrong), 'misclassified item')}:", ""]
        lines += _md_items(result, group.errors_voted_wrong, listing, where) + [""]
    others = [i for i in group.wrong_votes if i not in group.errors_voted_wrong]
    if others:
        lines += [f"Other false votes (the {predictor_title(result.primary)} got these right anyway):", ""]
        lines += _md_items(result, others, listing, where) + [""]
    if group.errors_missed:
        lines += [f"Silent on {counted(len(group.errors_missed), f'misclassified {group.class_name} item')} "
                  f"(see *{_missed_title(group.class_name)}*).", ""]
    return lines


def _md_item(result: RunResult, index: int) -> str:
    item = result.gold[index]
    predicted = result.predictions.get(result.primary, [None] * len(result.gold))[index]
    fired = ", ".join(f"{r}→{c}" for r, c in item.votes.items()) or "no rule fired"
    return (f"- {_md_escape(describe(result, item.values))} — gold **{item.label}**, predicted "
            f"{_md_inline(str(predicted or 'nothing'))}; rules: {fired} (line {item.line})")


def _md_more(total: int) -> list[str]:
    return [f"- ... and {total - MAX_LISTED} more (see metrics.json and the gold file)"] if total > MAX_LISTED else []


_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]|])")
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BACKTICKS = re.compile(r"`+")


def _md_escape(text: str) -> str:
    """A string from the data, shown literally: Markdown's punctuation backslash-escaped (table pipes,
    emphasis, code and link brackets), and `<`, `>`, `&` as entities, so raw HTML in an input stays text."""
    return _html_entities(_MD_PUNCTUATION.sub(r"\\\1", text))


def _html_entities(text: str) -> str:
    return "".join(_HTML_ENTITIES.get(c, c) for c in text) if any(c in text for c in "&<>") else text


def _md_inline(text: str) -> str:
    """A line of ours that quotes names or data: `<`, `>`, `&` become entities and link brackets are
    escaped outside code spans (where Markdown shows everything literally, so `accuracy >= 0.8` stays
    readable). Code spans are found as CommonMark finds them: a run of n backticks, not escaped by a
    backslash, up to the next run of exactly n; an unmatched run is literal text."""
    pieces: list[str] = []
    start = at = 0
    while (run := _BACKTICKS.search(text, at)) is not None:
        begin = run.start()
        if _escaped(text, begin):  # a backslash-escaped backtick is literal; the rest of the run may open
            at = begin + 1
            continue
        close = next((c for c in _BACKTICKS.finditer(text, run.end()) if len(c.group()) == len(run.group())), None)
        if close is None:
            at = run.end()
            continue
        pieces += [_md_outside_code(text[start:begin]), text[begin:close.end()]]
        start = at = close.end()
    pieces.append(_md_outside_code(text[start:]))
    return "".join(pieces)


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` follows an odd number of backslashes."""
    before = index
    while before > 0 and text[before - 1] == "\\":
        before -= 1
    return (index - before) % 2 == 1


def _md_outside_code(text: str) -> str:
    return _html_entities(text).replace("[", "\\[").replace("]", "\\]")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:  # a pipe ends a cell even inside a code span: escape every unescaped one
        return re.sub(r"(?<!\\)\|", r"\\|", _md_inline(text))

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows]


__all__ = ["render_markdown"]
