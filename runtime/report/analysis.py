"""The report's analysis: what the run says about each piece of the expert's knowledge.

Last stage of `taskc run`, first step of the report. `analyse_errors` turns a
`RunResult` into `Findings`: each dev gold item the primary predictor got wrong,
with the rationales that fired on it and voted wrong and the rationales of its
true class that stayed silent; the same errors grouped by rationale with each
rule's fired-correct/fired-wrong counts on the gold set; and next steps computed
from those numbers (the rule with the most false votes, classes no rule can
label, gold items no rule covers, rules that disagree on the pool, rules that
never fire). `data_shift` says how the gold set differs from the pool. The
facts every renderer shares (predictor titles, how an input reads in one line,
the verdict, "since the last run", the models' facts) are here too; the tables
are in `tables`, the renderers in `markdown`, `html` and `terminal`.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from taskc.compiler import counted, knowledge_gaps

from .. import history
from ..result import RunResult
from . import llm
from .findings import DataShift, Findings, Misclassified, NextStep, RationaleFindings

PREDICTOR_TITLES = {"labeling_functions": "rules alone (label model)", "local_model": "local model",
                    "rules_then_model": "rules, then the local model", "llm": "prompted LLM",
                    "finetuned": "fine-tuned model (the finetune.provider student)",
                    "rules_then_finetuned": "rules, then the fine-tuned model"}
LOW_RULE_ACCURACY = 0.8
MAX_LISTED = 12
MIN_TELLING_COUNT, MIN_TELLING_LIFT = 3, 2.0  # a shared word: in 3+ of the items, twice as often as usual


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
    llm_steps = llm.llm_next_steps(result, NextStep)
    if criterion is not None and not criterion.passed:
        steps.append(NextStep(f"The pass criterion `{criterion.source}` failed on the "
                              f"{predictor_title(criterion.predictor)}",
                              llm.criterion_detail(result, criterion.reason, bool(llm_steps))))
        if llm.llm_data_suspect(result):  # the LLM's data is the first suspect
            steps, llm_steps = steps + llm_steps, []
    false_voters = sorted((r for r in findings.by_rationale if r.fired_wrong), key=lambda r: -r.fired_wrong)
    if false_voters:
        worst = false_voters[0]
        rate = worst.fired_wrong / worst.fired
        steps.append(NextStep(
            f"Narrow `{worst.rationale_id}`: it has the most false votes",
            f"It voted {worst.class_name} on {worst.fired_wrong} of the {counted(worst.fired, 'gold item')} it "
            "fired on "
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
            f"Cover the {counted(len(findings.uncovered_gold), 'dev gold item')} no rule fires on ({share:.0%})",
            f"By class: {_counts(by_class)}.{_covered_vs_uncovered(result, findings)} The largest group is "
            f"{worst_class} ({count}): a new {worst_class} rationale, or a wider lexicon for an existing one, "
            f"would reach them.{hint}", examples))
    if result.analysis and result.analysis.conflict_pairs:
        pair = result.analysis.conflict_pairs[0]
        pool = result.pool
        shown = ", ".join(_short(result, pool[i].values) for i in pair.items[:3])
        steps.append(NextStep(
            f"Settle the conflict between `{pair.first}` and `{pair.second}`",
            f"They vote different classes on {counted(len(pair.items), 'pool item')} "
            f"(e.g. {shown}). Say which one wins by adding `and not ...` to the other's rule."))
    for function in result.analysis.functions if result.analysis else ():
        if function.votes == 0:
            steps.append(NextStep(f"`{function.rationale_id}` never fired on the pool",
                                  "Check its rule and lexicon words against how the data is written."))
        if function.failures:
            steps.append(NextStep(f"`{function.rationale_id}` failed on {counted(function.failures, 'pool item')}",
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


def _pct(value: float) -> str:
    return f"{value:.1%}"


def verdict(result: RunResult) -> str:
    criterion = result.criterion
    if criterion is None:
        return "no pass criterion evaluated (no gold set)"
    state = "PASSED" if criterion.passed else "FAILED"
    return f"{state}: `{criterion.source}` on the {predictor_title(criterion.predictor)} ({criterion.reason})"


def _missed_title(cls: str) -> str:
    return f"{cls} errors no {cls} rule caught"


def _missed_intro(cls: str, missed: Sequence[int], findings: Findings) -> str:
    silent = sum(1 for i in missed if i in findings.unexplained)
    return (f"{counted(len(missed), f'misclassified {cls} item')} on which no rationale of {cls} fired "
            f"({silent} with no rule "
            f"firing at all): the knowledge that decides them is missing or too narrow.")


# -- how the gold set differs from the pool ----------------------------------------------------------

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
    flips = (f"{counted(len(change.now_right), 'gold item')} now right, "
             f"{len(change.now_wrong)} now wrong")
    spec = "the same task file" if change.same_spec else "a changed task"
    before, now = change.answers
    if before != now:  # the expert's answers are an input of the run too
        spec += f", {counted(now, 'expert answer')} (the last run had {before})"
    summary = f"Compared with run {previous.get('number')} ({when} UTC, {spec}): {moved}; {flips}."
    changes = list(result.spec_changes or [])[:MAX_LISTED]
    if not change.same_spec and result.spec_changes is None:
        changes = ["(the last run's copy of the task file is missing, so its changes cannot be listed)"]
    return summary, changes, history.score_rows(change, result.primary), history.rationale_rows(change)


def student_facts(result: RunResult) -> dict[str, Any] | None:
    """The finetune.provider student, if the run trained one: provider, model, features, training size."""
    student = result.predictors.student if result.predictors is not None else None
    return None if student is None else student.describe()


__all__ = ["analyse_errors", "data_shift", "describe", "model_facts", "predictor_title", "since_summary",
           "student_facts", "verdict"]
