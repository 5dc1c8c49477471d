"""The expert's feedback report: what the run says about each piece of the expert's knowledge.

Last stage of `taskc run`. `analyse_errors` turns a `RunResult` into findings:
each gold item the primary predictor got wrong, with the rationales that fired
on it and voted wrong and the rationales of its true class that stayed silent;
the same errors grouped by rationale with each rule's fired-correct/fired-wrong
counts on the gold set; and next steps computed from those numbers (the rule
with the most false votes, classes no rule can label, gold items no rule
covers, rules that disagree on the pool, rules that never fire). The renderers
write the findings as report.md and as one self-contained report.html (inline
CSS and an inline SVG confusion matrix: no external assets, nothing fetched).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskc.compiler import KnowledgeGap, knowledge_gaps

from . import history, report_expert, report_llm, report_pictures
from .authors import grouped_by_author
from .report_listing import ItemListing

if TYPE_CHECKING:
    from .pipeline import RunResult

PREDICTOR_TITLES = {"labeling_functions": "rules alone (label model)", "local_model": "local model",
                    "rules_then_model": "rules, then the local model", "llm": "prompted LLM",
                    "finetuned": "fine-tuned model (the finetune.provider student)",
                    "rules_then_finetuned": "rules, then the fine-tuned model"}
LOW_RULE_ACCURACY = 0.8
MAX_LISTED = 12
MIN_TELLING_COUNT, MIN_TELLING_LIFT = 3, 2.0  # a shared word: in 3+ of the items, twice as often as usual


@dataclass(frozen=True)
class Misclassified:
    """A gold item the primary predictor got wrong, and what the rationales said about it."""

    index: int
    gold: str
    predicted: str | None
    fired_wrong: tuple[str, ...]  # rationales that fired and argue for another class
    fired_right: tuple[str, ...]  # rationales that fired for the true class (outvoted or ignored)
    silent: tuple[str, ...]  # rationales with a rule for the true class that did not fire


@dataclass(frozen=True)
class RationaleFindings:
    rationale_id: str
    class_name: str
    text: str
    has_rule: bool
    fired: int  # on gold
    fired_correct: int
    fired_wrong: int
    wrong_votes: tuple[int, ...]  # gold items where it fired for the wrong class
    errors_voted_wrong: tuple[int, ...]  # primary errors where it fired for the wrong class
    errors_missed: tuple[int, ...]  # primary errors of its class where it did not fire
    pool_coverage: float | None

    @property
    def involved(self) -> int:
        return len(self.errors_voted_wrong) + len(self.errors_missed)


@dataclass(frozen=True)
class NextStep:
    title: str
    detail: str
    examples: tuple[int, ...] = ()  # gold item indices to show


@dataclass(frozen=True)
class Findings:
    primary: str
    errors: tuple[Misclassified, ...]
    by_rationale: tuple[RationaleFindings, ...]
    unexplained: tuple[int, ...]  # primary errors on which no rule fired at all
    missed_by_class: dict[str, tuple[int, ...]]  # class -> its primary errors that none of its rules caught
    uncovered_gold: tuple[int, ...]  # gold items no rule fires on
    next_steps: tuple[NextStep, ...]


# -- analysis ----------------------------------------------------------------------------------------

def analyse_errors(result: RunResult) -> Findings:
    task = result.task
    primary = result.primary
    predicted = result.predictions.get(primary, [])
    gold = result.gold
    ruled = {f.rationale_id for f in result.functions}
    dev = result.dev_indices  # the test half contributes numbers only: the expert never sees its items
    errors = []
    for i in dev:
        item = gold[i]
        if i >= len(predicted) or predicted[i] == item.label:
            continue
        errors.append(Misclassified(
            index=i, gold=item.label, predicted=predicted[i],
            fired_wrong=tuple(r for r, c in item.votes.items() if c != item.label),
            fired_right=tuple(r for r, c in item.votes.items() if c == item.label),
            silent=tuple(r.id for r in task.rationales
                         if r.class_name == item.label and r.id in ruled and r.id not in item.votes)))
    coverage = {f.rationale_id: f.coverage for f in result.analysis.functions} if result.analysis else {}
    by_rationale = []
    for rationale in task.rationales:
        fired = [i for i in dev if rationale.id in gold[i].votes]
        wrong = tuple(i for i in fired if gold[i].label != rationale.class_name)
        by_rationale.append(RationaleFindings(
            rationale_id=rationale.id, class_name=rationale.class_name, text=rationale.text,
            has_rule=rationale.id in ruled, fired=len(fired), fired_correct=len(fired) - len(wrong),
            fired_wrong=len(wrong), wrong_votes=wrong,
            errors_voted_wrong=tuple(e.index for e in errors if rationale.id in e.fired_wrong),
            errors_missed=tuple(e.index for e in errors if rationale.id in e.silent),
            pool_coverage=coverage.get(rationale.id)))
    by_rationale.sort(key=lambda r: (-len(r.errors_voted_wrong), -r.fired_wrong, -r.involved))
    unexplained = tuple(e.index for e in errors if not e.fired_wrong and not e.fired_right)
    missed = {cls: tuple(e.index for e in errors if e.gold == cls and not e.fired_right) for cls in task.class_names}
    uncovered = tuple(i for i in dev if not gold[i].votes)
    findings = Findings(primary=primary, errors=tuple(errors), by_rationale=tuple(by_rationale),
                        unexplained=unexplained, missed_by_class={c: m for c, m in missed.items() if m},
                        uncovered_gold=uncovered, next_steps=())
    return dataclasses.replace(findings, next_steps=tuple(_next_steps(result, findings)))


def _next_steps(result: RunResult, findings: Findings) -> list[NextStep]:
    task = result.task
    gold = result.gold
    steps: list[NextStep] = []
    criterion = result.criterion
    llm_steps = report_llm.llm_next_steps(result, NextStep)
    if criterion is not None and not criterion.passed:
        steps.append(NextStep(f"The pass criterion `{criterion.source}` failed on the "
                              f"{predictor_title(criterion.predictor)}",
                              report_llm.criterion_detail(result, criterion.reason)))
        if report_llm.llm_data_in_training(result):  # the LLM's data is the first suspect
            steps, llm_steps = steps + llm_steps, []
    false_voters = sorted((r for r in findings.by_rationale if r.fired_wrong), key=lambda r: -r.fired_wrong)
    if false_voters:
        worst = false_voters[0]
        rate = worst.fired_wrong / worst.fired
        steps.append(NextStep(
            f"Narrow `{worst.rationale_id}`: it has the most false votes",
            f"It voted {worst.class_name} on {worst.fired_wrong} of the {_items(worst.fired, 'gold item')} it fired on "
            f"({rate:.0%} wrong). Add the exception these items share to its rule, or fix their gold labels.",
            worst.wrong_votes[:5]))
        for other in false_voters[1:3]:
            if other.fired and other.fired_wrong / other.fired > 1 - LOW_RULE_ACCURACY:
                steps.append(NextStep(
                    f"Check `{other.rationale_id}` too",
                    f"{other.fired_wrong} false {other.class_name} votes out of {other.fired} on gold "
                    f"({other.fired_correct / other.fired:.0%} right).", other.wrong_votes[:3]))
    ruled_classes = {f.class_name for f in result.functions}
    for cls in task.class_names:
        if cls not in ruled_classes:
            steps.append(NextStep(f"Write a rule for class {cls}",
                                  f"No rationale of class {cls} has a rule, so the rules can never label it and "
                                  f"the local model only learns it from generated or LLM-labeled examples."))
    if gold and findings.uncovered_gold:
        by_class = Counter(gold[i].label for i in findings.uncovered_gold)
        worst_class, count = by_class.most_common(1)[0]
        share = len(findings.uncovered_gold) / len(result.dev_indices)
        examples = tuple(i for i in findings.uncovered_gold if gold[i].label == worst_class)[:5]
        words = _telling_words(result, [i for i in findings.uncovered_gold if gold[i].label == worst_class])
        hint = f" Words they share: {words}." if words else ""
        steps.append(NextStep(
            f"Cover the {_items(len(findings.uncovered_gold), 'dev gold item')} no rule fires on ({share:.0%})",
            f"By class: {_counts(by_class)}.{_covered_vs_uncovered(result, findings)} The largest group is "
            f"{worst_class} ({count}): a new {worst_class} rationale, or a wider lexicon for an existing one, "
            f"would reach them.{hint}", examples))
    if result.analysis and result.analysis.conflict_pairs:
        pair = result.analysis.conflict_pairs[0]
        pool = result.pool
        shown = ", ".join(_short(result, pool[i].values) for i in pair.items[:3])
        steps.append(NextStep(
            f"Settle the conflict between `{pair.first}` and `{pair.second}`",
            f"They vote different classes on {len(pair.items)} pool item{'s' if len(pair.items) != 1 else ''} "
            f"(e.g. {shown}). Say which one wins by adding `and not ...` to the other's rule."))
    for function in result.analysis.functions if result.analysis else ():
        if function.votes == 0:
            steps.append(NextStep(f"`{function.rationale_id}` never fired on the pool",
                                  "Check its rule and lexicon words against how the data is written."))
        if function.failures:
            steps.append(NextStep(f"`{function.rationale_id}` failed on {_items(function.failures, 'pool item')}",
                                  f"Its rule raised an error there (first: {function.first_failure}) and was "
                                  "counted as abstaining."))
    without_rule = [r for r in findings.by_rationale if not r.has_rule]
    if without_rule:
        steps.append(NextStep(
            "Give a rule to " + ", ".join(f"`{r.rationale_id}`" for r in without_rule),
            "Without a rule a rationale only reaches the LLM prompts: it cannot label the pool or be checked "
            "against the gold set."))
    if result.analysis and result.analysis.coverage < 0.5 and "llm" not in result.predictions:
        steps.append(NextStep(
            f"The rules label only {result.analysis.coverage:.0%} of the pool",
            "Unlabeled pool items do not train the local model. More rules, or an LLM provider "
            "(it labels what the rules leave open), would give it more data."))
    steps += llm_steps
    if not steps:
        steps.append(NextStep("Nothing stands out", "Every rule is right on the gold set it fired on; "
                                                    "grow the gold set to find the next errors."))
    return steps


def _covered_vs_uncovered(result: RunResult, findings: Findings) -> str:
    """How the primary predictor does where the rules say something and where they are silent."""
    predicted = result.predictions.get(findings.primary)
    if not predicted or findings.primary == "labeling_functions":
        return ""
    uncovered = set(findings.uncovered_gold)
    covered = [i for i in result.dev_indices if i not in uncovered]
    if not covered:
        return ""

    def accuracy(indices: Sequence[int]) -> float:
        return sum(predicted[i] == result.gold[i].label for i in indices) / len(indices)

    return (f" The {predictor_title(findings.primary)} gets {accuracy(sorted(uncovered)):.0%} of them right, "
            f"against {accuracy(covered):.0%} of the items the rules cover: it learns from what the rules label.")


def _telling_words(result: RunResult, indices: Sequence[int], top: int = 8) -> str:
    """Words that are much more frequent in the given gold items than in the gold set as a whole.

    Lift over the whole gold set rather than raw counts, so that words every dish has (garlic, oil)
    do not drown the ones these items share.
    """
    counts = Counter(word for i in indices for word in _words(result.gold[i].values))
    dev = result.dev_indices
    overall = Counter(word for i in dev for word in _words(result.gold[i].values))
    known = {word for lexicon in result.task.lexicons for entry in lexicon.words for word in entry.split()}
    lift = {w: (n / len(indices)) / (overall[w] / len(dev)) for w, n in counts.items()
            if n >= MIN_TELLING_COUNT and w not in known}
    telling = sorted((w for w in lift if lift[w] >= MIN_TELLING_LIFT), key=lambda w: (-counts[w], -lift[w], w))
    return ", ".join(f"{w} ({counts[w]})" for w in telling[:top])


def _words(values: Mapping[str, Any]) -> set[str]:
    return set(_word_list(values))


# -- shared helpers ----------------------------------------------------------------------------------

def predictor_title(predictor: str) -> str:
    return PREDICTOR_TITLES.get(predictor, predictor)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counter.most_common())


def describe(result: RunResult, values: Mapping[str, Any]) -> str:
    """An input in one readable line: field values in declaration order, lists joined by commas."""
    parts = []
    for field in result.task.fields:
        value = values.get(field.name)
        if value is None or value in ("", []):
            continue  # a menu entry has no ingredients: nothing to show, not an empty dash
        parts.append(", ".join(map(str, value)) if isinstance(value, list) else str(value))
    return " — ".join(parts)


def _short(result: RunResult, values: Mapping[str, Any]) -> str:
    text = describe(result, values)
    return text if len(text) <= 60 else text[:57] + "..."


def _items(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def verdict(result: RunResult) -> str:
    criterion = result.criterion
    if criterion is None:
        return "no pass criterion evaluated (no gold set)"
    state = "PASSED" if criterion.passed else "FAILED"
    return f"{state}: `{criterion.source}` on the {predictor_title(criterion.predictor)} ({criterion.reason})"


# -- markdown ----------------------------------------------------------------------------------------

def render_markdown(result: RunResult, findings: Findings) -> str:
    task = result.task
    out: list[str] = [f"# taskc run: {task.name}", "", f"**{_md_inline(verdict(result))}**", ""]
    if result.gold_display:
        out += [_md_inline(f"Gold set: `{result.gold_display}` ({_items(len(result.gold), 'item')}). "
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
                f"On the pool ({result.analysis.items} items): {_pct(result.analysis.coverage)} covered by at least "
                f"one rule, {_pct(result.analysis.overlap)} by two or more, {_pct(result.analysis.conflict)} in "
                f"conflict. Gold votes and accuracy are on the dev half.", "", *_md_table(*lf_rows(result)), ""]
    out += report_llm.markdown_sections(result, _md_table, _md_inline, lambda values: describe(result, values))
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
    out += report_expert.markdown_sections(result)
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
            lines[-1] += f" {_items(missed, 'error')} {'is' if missed == 1 else 'are'} of its class."
        return lines + [""]
    lines = [header, "", f"> {_md_inline(group.text)}", "",
             f"Fired on {_items(group.fired, 'gold item')}: "
             f"**{group.fired_correct} correct, {group.fired_wrong} wrong**"
             + (f"; fires on {_pct(group.pool_coverage)} of the pool." if group.pool_coverage is not None else "."),
             ""]
    if group.errors_voted_wrong:
        lines += [f"Voted wrong on {_items(len(group.errors_voted_wrong), 'misclassified item')}:", ""]
        lines += _md_items(result, group.errors_voted_wrong, listing, where) + [""]
    others = [i for i in group.wrong_votes if i not in group.errors_voted_wrong]
    if others:
        lines += [f"Other false votes (the {predictor_title(result.primary)} got these right anyway):", ""]
        lines += _md_items(result, others, listing, where) + [""]
    if group.errors_missed:
        lines += [f"Silent on {_items(len(group.errors_missed), f'misclassified {group.class_name} item')} "
                  f"(see *{_missed_title(group.class_name)}*).", ""]
    return lines


def _missed_title(cls: str) -> str:
    return f"{cls} errors no {cls} rule caught"


def _missed_intro(cls: str, missed: Sequence[int], findings: Findings) -> str:
    silent = sum(1 for i in missed if i in findings.unexplained)
    return (f"{_items(len(missed), f'misclassified {cls} item')} on which no rationale of {cls} fired "
            f"({silent} with no rule "
            f"firing at all): the knowledge that decides them is missing or too narrow.")


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
    """Macro-F1 of each predictor on the dev half, the test half (which judges the criterion) and all."""
    header = ["predictor", "dev macro-F1", "test macro-F1", "all macro-F1", "test accuracy"]
    rows = []
    for name, scores in result.metrics.items():
        marker = " (primary)" if name == result.primary else ""
        cells = [_number_or_na(None if (m := scores.on(split)) is None else m.macro_f1) for split in SPLITS_SHOWN]
        rows.append([predictor_title(name) + marker, *cells,
                     _pct_or_na(None if scores.test is None else scores.test.accuracy)])
    return header, rows


SPLITS_SHOWN = ("dev", "test", "all")


def _pct_or_na(value: float | None) -> str:
    return "n/a" if value is None else _pct(value)


def _number_or_na(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(interval: tuple[float, float] | None, show: Any) -> str:
    return "n/a" if interval is None else f"{show(interval[0])}–{show(interval[1])}"


def scoring_note(result: RunResult) -> str:
    dev, total = len(result.dev_indices), len(result.gold)
    split = (f" The gold set is split into a dev half ({_items(dev, 'item')}: every gold item this report shows "
             f"comes from it) and a test half ({_items(total - dev, 'item')}: numbers only); the pass criterion is "
             "judged on test."
             if dev < total else "")
    return ("Every predictor is scored over all gold items, an abstention counting as an error; coverage is the "
            "share it labeled; n/a: it labeled nothing. The 95% intervals (bootstrap over the items) show how "
            "much of a score is the luck of the gold set: differences inside them are noise." + split)


# -- how the gold set differs from the pool ----------------------------------------------------------

FILL_GAP = 0.5  # a field filled in this much more of one set than the other is worth a warning


@dataclass(frozen=True)
class DataShift:
    filled: dict[str, tuple[float, float | None]]  # field -> (share of gold items filled, share of pool items)
    unseen_word_share: float | None  # share of the gold items' word occurrences never seen in the pool
    unseen_examples: tuple[str, ...]
    broken_rows: tuple[tuple[int, str], ...]  # (gold line, what it breaks), dev items only: they are shown
    broken_count: int  # over the whole gold set
    gaps: tuple[KnowledgeGap, ...]

    def warnings(self) -> list[str]:
        lines = []
        for name, (gold, pool) in self.filled.items():
            if pool is not None and abs(gold - pool) >= FILL_GAP:
                lines.append(f"the field `{name}` is filled in {gold:.0%} of the gold items but {pool:.0%} of the "
                             f"pool: the model learnt from inputs unlike the ones it is judged on")
        if self.unseen_word_share is not None and self.unseen_word_share >= 0.2:
            lines.append(f"{self.unseen_word_share:.0%} of the words in the gold items never occur in the pool "
                         f"(e.g. {', '.join(self.unseen_examples[:6])}): the model has not seen them; rules and "
                         "lexicons carry the knowledge there")
        if self.broken_count:
            shown = "; ".join(f"line {line}: {what}" for line, what in self.broken_rows[:3]) or "all in the test half"
            lines.append(f"{self.broken_count} gold row{'s' if self.broken_count != 1 else ''} break the "
                         f"input's constraints ({shown})")
        lines += [f"{gap.message()}: {gap.hint()}" for gap in self.gaps]
        return lines

    def to_json(self) -> dict[str, Any]:
        return {"fields_filled": {name: {"gold": _rounded(gold), "pool": _rounded(pool)}
                                  for name, (gold, pool) in self.filled.items()},
                "unseen_word_share": _rounded(self.unseen_word_share),
                "rows_breaking_constraints": self.broken_count,
                "dev_rows_breaking_constraints": [{"line": line, "breaks": what} for line, what in self.broken_rows],
                "knowledge_gaps": [{"lexicon": g.lexicon, "field": g.field, "gold_share": _rounded(g.gold_share),
                                    "pool_share": _rounded(g.pool_share)}
                                   for g in self.gaps],
                "warnings": self.warnings()}


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


def data_shift(result: RunResult) -> DataShift | None:
    """How the gold set differs from the pool the model learnt from, and knowledge the rules never apply."""
    if not result.gold:
        return None
    task = result.task
    gold = [g.values for g in result.gold]
    pool = [p.values for p in result.pool]
    filled = {f.name: (_filled_share(gold, f.name), _filled_share(pool, f.name) if pool else None)
              for f in task.fields}
    pool_words = Counter(word for values in pool for word in _word_list(values))
    gold_words = [word for values in gold for word in _word_list(values)]
    unseen = [w for w in gold_words if w not in pool_words]
    # shares are over the whole gold set; what is quoted from it (words, lines) only from the dev half
    dev = set(result.dev_indices)
    unseen_in_dev = [w for i in sorted(dev) for w in _word_list(gold[i]) if w not in pool_words]
    breaks = _broken_rows(result)
    broken = [(item.line, what) for i, (item, what) in enumerate(zip(result.gold, breaks, strict=True))
              if what is not None and i in dev]
    return DataShift(
        filled=filled,
        unseen_word_share=len(unseen) / len(gold_words) if pool and gold_words else None,
        unseen_examples=tuple(w for w, _ in Counter(unseen_in_dev).most_common(6)),
        broken_rows=tuple(broken), broken_count=sum(what is not None for what in breaks),
        gaps=tuple(knowledge_gaps(task, gold, pool or None)))


def _filled_share(items: Sequence[Mapping[str, Any]], name: str) -> float:
    return sum(values.get(name) not in (None, "", []) for values in items) / len(items) if items else 0.0


def _word_list(values: Mapping[str, Any]) -> list[str]:
    """The words (three letters or more, lower-cased) of an input's text values, in order."""
    texts: list[str] = []
    for value in values.values():
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(v for v in value if isinstance(v, str))
    return [w for text in texts for w in re.findall(r"[^\W\d_]{3,}", text.lower())]


def _broken_rows(result: RunResult) -> list[str | None]:
    """For each gold row, what it breaks (the input's length limits, the task's constraints) or None."""
    from taskc.compiler import ExpressionEvaluationError, value_problem

    task = result.task
    lexicons = task.lexicon_words()
    checks = [(c.id, c.check.evaluator(lexicons)) for c in task.constraints if c.check.node is not None]
    broken: list[str | None] = []
    for item in result.gold:
        problems = [p for f in task.fields if item.values.get(f.name) is not None
                    and (p := value_problem(f, item.values[f.name]))]
        env = {f.name: item.values.get(f.name) for f in task.fields} | {"label": item.label}
        for constraint_id, holds in checks:
            try:
                if not holds(env):
                    problems.append(f"constraint {constraint_id}")
            except ExpressionEvaluationError:
                problems.append(f"constraint {constraint_id} (could not be evaluated)")
        broken.append("; ".join(problems) if problems else None)
    return broken


def model_facts(result: RunResult) -> dict[str, Any] | None:
    """The local model's feature groups and strongest features (metrics.json and the report)."""
    local = result.predictors.local if result.predictors is not None else None
    if local is None:
        return None
    return {"feature_groups": dict(Counter(local.feature_groups())),
            "strongest_features": {cls: [{"feature": f.name, "group": f.group, "weight": f.weight}
                                         for f in features]
                                   for cls, features in local.strongest_features().items()}}


def since_summary(result: RunResult) -> tuple[str, list[str], tuple[list[str], list[list[str]]],
                                               tuple[list[str], list[list[str]]]] | None:
    """"Since the last run": a sentence, the task's changes, the score table and the rationale table."""
    change = result.since
    if change is None:
        return None
    previous = change.previous
    when = str(previous.get("time", "")).replace("T", " ").rstrip("Z")
    primary = next((s for s in change.scores if s.predictor == result.primary and s.metric == "macro_f1"), None)
    if primary is None or primary.delta is None:
        moved = "its scores cannot be compared"
    elif primary.within_noise:
        moved = (f"the primary's macro-F1 moved {primary.delta:+.3f}, inside both runs' 95% intervals: within "
                 "noise, not evidence that the edit helped or hurt")
    else:
        moved = f"the primary's macro-F1 moved {primary.delta:+.3f}, outside the intervals"
    flips = (f"{len(change.now_right)} gold item{'s' if len(change.now_right) != 1 else ''} now right, "
             f"{len(change.now_wrong)} now wrong")
    spec = "the same task file" if change.same_spec else "a changed task"
    summary = f"Compared with run {previous.get('number')} ({when} UTC, {spec}): {moved}; {flips}."
    changes = list(result.spec_changes or [])[:MAX_LISTED]
    if not change.same_spec and result.spec_changes is None:
        changes = ["(the last run's copy of the task file is missing, so its changes cannot be listed)"]
    return summary, changes, history.score_rows(change, result.primary), history.rationale_rows(change)


def student_facts(result: RunResult) -> dict[str, Any] | None:
    """The finetune.provider student, if the run trained one: provider, model, features, training size."""
    student = result.predictors.student if result.predictors is not None else None
    return None if student is None else student.describe()


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
        lines.append(f"Pool: {_items(len(result.pool), 'item')}, {sum(labeled.values())} labeled ({_counts(labeled)}), "
                     f"{len(result.pool) - sum(labeled.values())} left unlabeled.")
    if result.training:
        lines.append(f"Local model trained on {_items(sum(result.training.values()), 'example')}: "
                     + ", ".join(f"{n} {s}" for s, n in result.training.items()) + ".")
    if result.skipped_llm_steps:
        lines.append("Skipped: " + ", ".join(result.skipped_llm_steps) + ".")
    lines += result.notes
    lines.append("Files: " + ", ".join(f"`{path.name}`" for path in result.files.values()) + ".")
    return lines


# -- html --------------------------------------------------------------------------------------------

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
             f"<style>{_CSS}{report_pictures.CSS}</style></head><body>", f"<h1>taskc run: {e(task.name)}</h1>",
             f"<p class={state}><strong>{_inline_code(verdict(result))}</strong></p>"]
    if result.gold_display:
        parts.append(f"<p>Gold set: <code>{e(result.gold_display)}</code> ({_items(len(result.gold), 'item')}). "
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
                  f"<p>On the pool ({a.items} items): {_pct(a.coverage)} covered by at least one rule, "
                  f"{_pct(a.overlap)} by two or more, {_pct(a.conflict)} in conflict. Gold votes and accuracy "
                  "are on the dev half.</p>",
                  _html_table(*lf_rows(result))]
        parts += report_pictures.lf_pictures(result, LOW_RULE_ACCURACY)
    parts += report_llm.html_sections(result, _html_table, html.escape, lambda values: describe(result, values))
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
    parts += report_expert.html_sections(result)
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
    parts.append(f"<p>Fired on {group.fired} gold items: <span class='tag right'>{group.fired_correct} correct</span>"
                 f" <span class='tag wrong'>{group.fired_wrong} wrong</span>{pool}.</p>")
    if group.errors_voted_wrong:
        parts += [f"<p>Voted wrong on {_items(len(group.errors_voted_wrong), 'misclassified item')}:</p>",
                  _html_items(result, group.errors_voted_wrong, listing, where)]
    others = tuple(i for i in group.wrong_votes if i not in group.errors_voted_wrong)
    if others:
        parts += [f"<p>Other false votes (the {e(predictor_title(result.primary))} got these right anyway):</p>",
                  _html_items(result, others, listing, where)]
    if group.errors_missed:
        silent = _items(len(group.errors_missed), f"misclassified {group.class_name} item")
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


__all__ = ["DataShift", "Findings", "Misclassified", "NextStep", "RationaleFindings", "analyse_errors", "confusion_svg",
           "data_shift", "describe", "lf_rows", "metrics_rows", "model_facts", "predictor_title", "render_html",
           "render_markdown", "scoring_note", "split_rows", "strongest_rows", "verdict"]
