"""Report sections on the LLM's part in a run: its generated examples, the LLM as a labeling function, and
the next steps that tell LLM noise from a real change.

Part of the report stage: the renderers (`markdown`, `html`) and the next steps
(`analysis`) call in here for what only exists with a provider: the generated
examples by cell (accepted, off target, empty,
duplicates, disagreeing with a rule), the LLM beside the rules (coverage,
overlaps, conflicts with each rule, gold accuracy, and the rationale it cited
for each of its errors), and next steps that name the LLM's data when it is the
likely cause ("off-target labels in cell X", "the LLM repeated itself", "the
LLM disagrees with rule R on N items"). Scores in those steps carry their 95% interval, and a verdict that
flipped while the primary's score moved within noise says so. Everything here
reads the run's result; nothing is recomputed. The renderers pass in their
table and escaping functions, so this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from taskc.compiler import counted

from ..llm_data_effect import HURT, from_llm
from ..result import RunResult

OFF_TARGET_SHARE = 0.2  # a cell with this share of off-target examples is worth a next step
OFF_TARGET_STEPS = 2  # more cells than this with off-target examples make one step for them all
REJECT_SHARE = 0.1  # a blank field or a constraint that rejected this share of the generated examples: a step
REPEAT_SHARE = 0.5  # generation that answered this share of duplicates (of the examples passing the checks) too
Rows = tuple[list[str], list[list[str]]]
Step = TypeVar("Step")  # findings.NextStep, passed in by analysis (which calls this module)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _generation(result: RunResult) -> dict[str, Any] | None:
    generation = result.llm.get("generation")
    return generation if isinstance(generation, dict) else None


def generation_summary(result: RunResult) -> str | None:
    """One sentence on the generated examples, or None when nothing was generated."""
    g = _generation(result)
    if g is None:
        return None
    reasons = g.get("rejects_by_reason") or {}
    shown = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items(), key=lambda r: -r[1]))
    disagreements = sum((g.get("rule_disagreements") or {}).values())
    return (f"{counted(g.get('accepted', 0), 'generated example')} accepted, {g.get('rejected', 0)} rejected"
            + (f" ({shown})" if shown else "") + f", {counted(g.get('duplicates', 0), 'duplicate')} dropped; "
            f"{counted(disagreements, 'rule vote')} on accepted examples disagree with "
            "their label. Off target: labeled other than the class the cell asked for; empty: a blank string.")


def generation_rows(result: RunResult) -> Rows | None:
    """One row per generation cell that lost examples or disagrees with a rule."""
    g = _generation(result)
    if g is None or not g.get("by_cell"):
        return None
    header = ["cell (class/rationale)", "accepted", "off target", "empty", "other rejects", "duplicates",
              "rule disagrees"]
    rows = []
    for cell, counts in g["by_cell"].items():
        off = counts.get("label:off_target", 0)
        empty = sum(n for reason, n in counts.items() if reason.startswith("empty:"))
        other = sum(n for reason, n in counts.items() if ":" in reason) - off - empty
        values = [counts.get("accepted", 0), off, empty, other, counts.get("duplicate", 0),
                  counts.get("rule_disagrees", 0)]
        if any(values[1:]):
            rows.append([cell, *map(str, values)])
    return (header, rows) if rows else None


def llm_function_summary(result: RunResult) -> str | None:
    f = result.llm_function
    if f is None:
        return None
    gold = ("" if f.gold_accuracy is None else
            f" On the dev gold items it is right on {f.gold_correct} of {f.gold_votes} ({_pct(f.gold_accuracy)}).")
    return (f"The LLM labeled {f.pool_labeled} of the {counted(f.pool_items, 'pool item')} ({_pct(f.coverage)}: "
            f"the ones the rules left open), {f.pool_overlap} of them where a rule also voted and {f.pool_conflict} "
            f"against a rule's vote.{gold} Per rule: where both labeled an item, how often they disagree, and on the "
            "dev disagreements whom the gold label agrees with.")


def llm_function_rows(result: RunResult) -> Rows | None:
    f = result.llm_function
    if f is None or not f.rules:
        return None
    header = ["rule", "class", "pool: both / disagree", "dev gold: both / disagree", "gold sides with rule / LLM"]
    rows = [[r.rationale_id, r.class_name, f"{r.pool_both} / {r.pool_disagree}", f"{r.gold_both} / {r.gold_disagree}",
             f"{r.rule_right} / {r.llm_right}" if r.gold_disagree else "-"] for r in f.rules]
    return header, rows


def leaned_on_rows(result: RunResult, describe: Callable[[Any], str]) -> Rows | None:
    """Which rationale the LLM cited for each of its dev gold errors."""
    f = result.llm_function
    if f is None or not f.errors:
        return None
    by_index = {e.index: e for e in f.errors}
    header = ["rationale the LLM cited", "its errors", "e.g. (gold label, LLM label)"]
    rows = []
    for rationale, items in f.leaned_on():
        shown = "; ".join(f"{describe(result.gold[i].values)} ({by_index[i].gold}, LLM {by_index[i].predicted})"
                          for i in items[:3])
        rows.append([rationale, str(len(items)), shown])
    return header, rows


# -- next steps ---------------------------------------------------------------------------------------

def llm_data_in_training(result: RunResult) -> int:
    return sum(n for source, n in result.training.items() if from_llm(source))


def llm_data_suspect(result: RunResult) -> bool:
    """Whether the LLM's data is the first suspect of a failed run: it is in the training set, and the model
    trained without it was not measured as no worse (or it was measured worse)."""
    effect = result.llm_data_effect
    return bool(llm_data_in_training(result)) and (effect is None or effect.verdict == HURT)


def interval_note(result: RunResult, predictor: str, split: str) -> str:
    """"accuracy 0.78 (95% CI 0.70–0.86), macro-F1 ..." of a predictor on a split, for next steps."""
    scores = result.metrics.get(predictor)
    m = None if scores is None else scores.on(split)
    if m is None or m.accuracy is None:
        return ""
    parts = [f"accuracy {m.accuracy:.3f}" + (f" (95% CI {m.accuracy_ci[0]:.3f}–{m.accuracy_ci[1]:.3f})"
                                              if m.accuracy_ci else "")]
    if m.macro_f1 is not None:
        parts.append(f"macro-F1 {m.macro_f1:.3f}" + (f" (95% CI {m.macro_f1_ci[0]:.3f}–{m.macro_f1_ci[1]:.3f})"
                                                      if m.macro_f1_ci else ""))
    return ", ".join(parts)


def llm_next_steps(result: RunResult, step: Callable[..., Step]) -> list[Step]:
    """Steps about the LLM's data, first when the run failed with it in the training set."""
    steps: list[Step] = []
    effect = result.llm_data_effect
    if effect is not None and effect.verdict == HURT:
        steps.append(step("The LLM's data made the model worse", f"{effect.sentence()} The steps below say "
                          "where its data goes wrong; until then the rules' labels teach the model better."))
    flip = _verdict_flip(result)
    if flip:
        steps.append(step(*flip))
    off_target = _off_target_cells(result)
    if len(off_target) <= OFF_TARGET_STEPS:
        for cell, off, total, added in off_target:
            steps.append(step(
                f"Off-target labels in cell {cell}: {off} of {total} generated examples",
                f"The LLM labeled them other than the class the cell asked for, so they were rejected and the "
                f"cell added {added}. Its prompt may be unclear: check the rationale's text and worked examples "
                "(see rejected.jsonl)."))
    else:  # one step for them all: the same advice cell after cell would bury every other step
        listed = ", ".join(f"{cell} ({off} of {total}, added {added})" for cell, off, total, added in off_target[:5])
        more = f", and {counted(len(off_target) - 5, 'more cell')}" if len(off_target) > 5 else ""
        off, total = sum(c[1] for c in off_target), sum(c[2] for c in off_target)
        steps.append(step(
            f"Off-target labels in {len(off_target)} cells: {off} of their {total} generated examples",
            f"The LLM labeled them other than the class each cell asked for, so they were rejected. Most "
            f"off target first: {listed}{more}. In one cell that points at its prompt (the rationale's text "
            "and worked examples); in this many, rather at the model or at what every prompt shares (the task's "
            "description and classes): see rejected.jsonl."))
    repeated = _repeated_generation(result)
    if repeated:
        steps.append(step(*repeated))
    steps += [step(*found) for found in _rejected_generation(result)]
    f = result.llm_function
    if f is not None:
        for rule in f.rules[:2]:
            if rule.disagreements == 0:
                continue
            gold = (f" On {counted(rule.gold_disagree, 'dev gold item')} the gold label agrees with the rule on "
                    f"{rule.rule_right} and with the LLM on {rule.llm_right}." if rule.gold_disagree else "")
            if rule.gold_disagree and rule.llm_right > rule.rule_right:
                advice = f"The gold set sides with the LLM: `{rule.rationale_id}`'s rule is the likelier culprit."
            else:
                advice = ("The LLM's labels there are likely noise: its pool labels train the local model, so "
                          "make the rationale's text say what the rule says, or rely on the rule.")
            steps.append(step(
                f"The LLM disagrees with rule `{rule.rationale_id}` on {counted(rule.disagreements, 'item')}",
                f"{counted(rule.pool_disagree, 'pool item')} it labeled, "
                f"{counted(rule.gold_disagree, 'dev gold item')}.{gold} {advice}",
                rule.gold_items[:3]))
        leaned = [(r, items) for r, items in f.leaned_on() if not r.startswith("(")]
        if leaned and len(leaned[0][1]) >= 2:
            rationale, items = leaned[0]
            steps.append(step(
                f"The LLM leaned on `{rationale}` for {len(items)} of its {len(f.errors)} dev gold errors",
                "It cited this rationale for labels the gold set says are wrong: its text reads wider (or "
                "narrower) to the LLM than the expert means. Sharpen it, or add a worked example of the "
                "errors below.", items[:3]))
    return steps


def _examples(counts: dict[str, int]) -> int:
    """The examples a cell's generation answered: accepted, rejected (by reason) and duplicates, each once
    (its rule disagreements count accepted examples again)."""
    return sum(n for key, n in counts.items() if key != "rule_disagrees")


def _off_target_cells(result: RunResult) -> list[tuple[str, int, int, int]]:
    """(cell, off-target examples, examples, accepted) of each cell with at least OFF_TARGET_SHARE of its
    examples off target, the largest share first."""
    cells = []
    for cell, counts in (_generation(result) or {}).get("by_cell", {}).items():
        off, total = counts.get("label:off_target", 0), _examples(counts)
        if off and total and off / total >= OFF_TARGET_SHARE:
            cells.append((cell, off, total, counts.get("accepted", 0)))
    return sorted(cells, key=lambda c: (-c[1] / c[2], -c[1], c[0]))


def _repeated_generation(result: RunResult) -> tuple[str, str] | None:
    """A step when most of what generation answered (past the checks) repeated examples it already had."""
    g = _generation(result)
    duplicates = int((g or {}).get("duplicates") or 0)
    answered = duplicates + int((g or {}).get("accepted") or 0)
    if not g or not duplicates or duplicates / answered < REPEAT_SHARE:
        return None
    cells = sorted(((counts.get("duplicate", 0), cell) for cell, counts in g.get("by_cell", {}).items()
                    if counts.get("duplicate", 0)), reverse=True)
    most = ", ".join(f"{cell} ({count})" for count, cell in cells[:3])
    generate = result.task.generate
    near = generate.dedupe.near_duplicate_threshold
    return (f"The LLM repeated itself: {duplicates} of {answered} generated examples were duplicates",
            f"They were dropped, so generation added {answered - duplicates}" + (f"; most in {most}" if most else "")
            + ". Each call of a cell already sends other messages (its call number and the examples accepted so "
            f"far), so the model has little more to give there: raise generate.temperature (now "
            f"{generate.temperature:g}), widen the rationale's text or add worked examples so there is more to "
            "draw on, or ask for fewer examples (per_rationale, per_class)."
            + (f" generate.dedupe.near_duplicate_threshold {near:g} also counts near copies: rejected.jsonl shows "
               "each beside the example it repeats." if near < 1 else ""))


def _rejected_generation(result: RunResult) -> list[tuple[str, str]]:
    """A step for each blank field and each constraint that rejected REJECT_SHARE or more of the generated
    examples (off-target labels and duplicates have steps of their own), the most rejects first."""
    g = _generation(result)
    if not g:
        return []
    generated = sum(map(_examples, g.get("by_cell", {}).values()))
    reasons = sorted(((n, reason) for reason, n in (g.get("rejects_by_reason") or {}).items()
                      if reason.startswith(("empty:", "constraint:"))), reverse=True)
    steps = []
    for count, reason in reasons:
        if not generated or count / generated < REJECT_SHARE:
            continue
        kind, name = reason.split(":", 1)
        if kind == "empty":
            steps.append((f"The LLM left `{name}` blank in {count} of {generated} generated examples",
                          "They were rejected (the field may not be blank): a model that answers an empty string "
                          "there is not holding to the response schema. If it persists, use a model or server with "
                          "structured outputs, or say in the task's description what the field holds "
                          "(rejected.jsonl holds each, with its cell)."))
        else:
            steps.append((f"Constraint `{name}` rejected {count} of {generated} generated examples",
                          "The LLM does not keep to it from the prompt: say it in the text or worked examples of "
                          "the rationales whose cells break it, or check that the constraint says what you mean "
                          "(rejected.jsonl holds each, with its cell)."))
    return steps


def _verdict_flip(result: RunResult) -> tuple[str, str] | None:
    change = result.since
    if change is None or result.criterion is None:
        return None
    before = change.previous.get("passed")
    if before is None or before == result.criterion.passed:
        return None
    primary = next((s for s in change.scores if s.predictor == result.primary and s.metric == "macro_f1"), None)
    if primary is None or not primary.within_noise:
        return None
    now = "PASSED" if result.criterion.passed else "FAILED"
    was = "PASSED" if before else "FAILED"
    llm = " and the LLM's answers" if llm_data_in_training(result) else ""
    return (f"The verdict flipped {was} → {now}, but within noise",
            f"The primary's macro-F1 moved {primary.delta:+.3f}, inside both runs' 95% intervals: the flip is the "
            f"luck of the gold set{llm}, not evidence that the change helped or hurt. Grow the gold set (or its "
            "test half) before reading the verdict as a result.")


def criterion_detail(result: RunResult, reason: str, llm_steps: bool) -> str:
    """The failed criterion's detail: its reason, the primary's scores with their intervals, and where to start
    (``llm_steps``: whether `llm_next_steps` has steps to start with)."""
    criterion = result.criterion
    assert criterion is not None
    scores = interval_note(result, criterion.predictor, criterion.split)
    with_scores = f"{reason}; on the {criterion.split} half: {scores}" if scores else reason
    if llm_data_suspect(result) and llm_steps:
        return (f"{with_scores}. The training set holds {counted(llm_data_in_training(result), 'example')} from "
                "the LLM: start with the steps about the LLM's data below before editing the rules; rerun "
                "`taskc run` after each change.")
    effect = result.llm_data_effect
    cleared = f" {effect.sentence()}" if effect is not None and llm_data_in_training(result) else ""
    return f"{with_scores}.{cleared} Start with the rules below; rerun `taskc run` after each change."


def markdown_sections(result: RunResult, table: Callable[..., list[str]], inline: Callable[[str], str],
                      describe: Callable[[Any], str]) -> list[str]:
    out: list[str] = []
    summary = generation_summary(result)
    if summary is not None:
        out += ["## Generated examples", "", inline(summary), ""]
        rows = generation_rows(result)
        if rows:
            out += [*table(*rows), ""]
    if result.llm_data_effect is not None:
        out += ["## What the LLM's data did", "", inline(result.llm_data_effect.sentence()), ""]
    summary = llm_function_summary(result)
    if summary is not None:
        out += ["## The LLM as a labeling function", "", inline(summary), ""]
        for rows in (llm_function_rows(result), leaned_on_rows(result, describe)):
            if rows:
                out += [*table(*rows), ""]
    return out


def html_sections(result: RunResult, table: Callable[..., str], escape: Callable[[str], str],
                  describe: Callable[[Any], str]) -> list[str]:
    parts: list[str] = []
    summary = generation_summary(result)
    if summary is not None:
        parts += ["<h2>Generated examples</h2>", f"<p>{escape(summary)}</p>"]
        rows = generation_rows(result)
        if rows:
            parts.append(table(*rows))
    if result.llm_data_effect is not None:
        parts += ["<h2>What the LLM's data did</h2>", f"<p>{escape(result.llm_data_effect.sentence())}</p>"]
    summary = llm_function_summary(result)
    if summary is not None:
        parts += ["<h2>The LLM as a labeling function</h2>", f"<p>{escape(summary)}</p>"]
        for rows in (llm_function_rows(result), leaned_on_rows(result, describe)):
            if rows:
                parts.append(table(*rows))
    return parts


__all__: Sequence[str] = ["criterion_detail", "html_sections", "llm_data_in_training", "llm_data_suspect",
                          "llm_next_steps", "markdown_sections"]
