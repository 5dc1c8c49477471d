"""The last step of `taskc diff`: a `SpecDiff` rendered as text, markdown or JSON.

Text is for a terminal (colour only when the caller says the stream is one);
markdown is for a pull-request comment: a summary table first, the plan's
delta, the changes by name, the config changes, and each prompt diff in a
collapsible section, cut to stay under the size a comment may have; JSON is
for tools. All three are deterministic and carry only the labels they are
given, never a path of the machine that ran the diff.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .call_plan import LABEL_POOL, PHASE_TITLES, PHASES, SCORE_GOLD
from .money import format_usd
from .semantic_diff import (
    ADDED,
    CHANGED,
    ENTITY_KINDS,
    REMOVED,
    AttributeChange,
    EntityChange,
    PlanSummary,
    PromptChange,
    SpecDiff,
)
from .wording import counted

FORMATS = ("text", "markdown", "json")
MARKDOWN_LIMIT = 60_000  # a GitHub comment holds 65,536 characters; leave room for a header the CI adds
VALUE_WIDTH = 300

_PLURAL = {"class": "classes", "criterion": "criteria", "eval": "eval", "pool": "pool", "generate": "generate",
           "finetune": "finetune", "task": "task"}
_SIGN = {ADDED: "+", REMOVED: "-", CHANGED: "~"}


def render(diff: SpecDiff, fmt: str, color: bool = False) -> str:
    if fmt == "json":
        return render_json(diff)
    if fmt == "markdown":
        return render_markdown(diff)
    return render_text(diff, color=color)


# -- shared helpers ------------------------------------------------------------------------------

def _plural(kind: str) -> str:
    return _PLURAL.get(kind, kind + "s")


def _value(value: Any, width: int = VALUE_WIDTH) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split()) if isinstance(value, str) else text
    return text if len(text) <= width else text[: width - 1] + "…"


def _money(amount: float) -> str:
    return format_usd(amount)


def _signed(number: float, money: bool = False) -> str:
    if money:
        return format_usd(number, signed=True)
    return f"{number:+,}"


def _cost(cost: float | None) -> str:
    return "unknown" if cost is None else _money(cost)


def _plan_rows(diff: SpecDiff) -> list[tuple[str, str, str, str]]:
    """(what, before, after, change) rows of the plan's delta; only rows that say something."""
    before, after = diff.plan.before, diff.plan.after
    rows = [("LLM calls", before.calls, after.calls)]
    for phase in PHASES:
        if before.calls_by_phase.get(phase) or after.calls_by_phase.get(phase):
            rows.append((f"  {PHASE_TITLES[phase]}", before.calls_by_phase.get(phase, 0),
                         after.calls_by_phase.get(phase, 0)))
    rows.append(("examples", before.examples, after.examples))
    for name in [*before.examples_per_class, *(n for n in after.examples_per_class
                                               if n not in before.examples_per_class)]:
        rows.append((f"examples of {name}", before.examples_per_class.get(name, 0),
                     after.examples_per_class.get(name, 0)))
    rows += [("input tokens (est.)", before.input_tokens, after.input_tokens),
             ("output tokens (est.)", before.output_tokens, after.output_tokens)]
    out = [(what, f"{old:,}", f"{new:,}", _signed(new - old) if new != old else "=") for what, old, new in rows]
    out.append(("cost (est.)", _cost(before.cost_usd), _cost(after.cost_usd), _cost_change(before, after)))
    if before.model != after.model:
        out.append(("model", before.model, after.model, "changed"))
    return out


def _cost_change(before: PlanSummary, after: PlanSummary) -> str:
    if before.cost_usd is None or after.cost_usd is None:
        return "?" if before.cost_usd != after.cost_usd else "="
    delta = round(after.cost_usd - before.cost_usd, 6)
    return "=" if delta == 0 else _signed(delta, money=True)


def _work_line(diff: SpecDiff) -> str:
    plan = diff.plan
    phases = ", ".join(f"{count:,} {PHASE_TITLES[phase]}" for phase, count in plan.new_by_phase.items())
    cost = f", ~{_cost(plan.new_cost_usd)}" if plan.new_calls else ""
    needs = "needs" if plan.new_calls == 1 else "need"
    line = (f"{plan.new_calls:,} of {counted(plan.after.calls, 'planned call')} {needs} new LLM work (their cache "
            f"key is new{': ' + phases if phases else ''}{cost}); "
            f"{counted(plan.dropped_calls, 'cached response')} of the old plan will not be used")
    if plan.every_classification:
        classifying = " and ".join(PHASE_TITLES[phase] for phase in (LABEL_POOL, SCORE_GOLD)
                                   if plan.after.calls_by_phase.get(phase))
        line += f"; the classification prompt holds every rationale, so every {classifying} call is new"
    return line


def _is_long(change: AttributeChange) -> bool:
    """A before → after change too long for one line: shown as a removed and an added line instead."""
    return (not change.is_set_change and change.before is not None
            and len(_value(change.before)) + len(_value(change.after)) > 80)


def _unchanged_plan_line(diff: SpecDiff) -> str:
    plan = diff.plan.after
    return (f"plan unchanged: {plan.calls:,} LLM calls for {plan.examples:,} examples, estimated "
            f"{_cost(plan.cost_usd)}; every planned call keeps its cache key")


def _attribute_text(change: AttributeChange, code: Callable[[str], str] = lambda s: s,
                    prose: Callable[[str], str] = lambda s: s) -> str:
    name = prose(change.name)
    if change.is_set_change:
        parts = []
        if change.added:
            parts.append("added " + ", ".join(code(_value(v)) for v in change.added))
        if change.removed:
            parts.append("removed " + ", ".join(code(_value(v)) for v in change.removed))
        return f"{name}: {'; '.join(parts)}"
    if change.before is None:
        return f"{name}: {code(_value(change.after))}"
    return f"{name}: {code(_value(change.before))} → {code(_value(change.after))}"


def _counts(diff: SpecDiff) -> list[tuple[str, int, int, int]]:
    rows = [(_plural(kind), *_tally([e.status for e in diff.entities_of(kind)]))
            for kind in ENTITY_KINDS if diff.entities_of(kind)]
    if diff.prompts:
        rows.append(("prompts", *_tally([p.status for p in diff.prompts])))
    return rows


def _by_author(entities: tuple[EntityChange, ...]) -> list[EntityChange]:
    """Rationales grouped by author (in the order each author first appears; unsigned ones first), so a team
    reviews each expert's changes together; other kinds keep their order."""
    order = {author: i for i, author in enumerate(dict.fromkeys(e.author for e in entities))}
    order[None] = -1
    return sorted(entities, key=lambda e: order[e.author])


def _first_of_author(entities: tuple[EntityChange, ...], author: str) -> EntityChange:
    return next(e for e in _by_author(entities) if e.author == author)


def _tally(statuses: list[str]) -> tuple[int, int, int]:
    return statuses.count(ADDED), statuses.count(REMOVED), statuses.count(CHANGED)


# -- text ----------------------------------------------------------------------------------------

_COLOURS = {"+": "\033[32m", "-": "\033[31m", "~": "\033[33m", "@": "\033[36m", "h": "\033[1m"}


def render_text(diff: SpecDiff, color: bool = False) -> str:
    def paint(kind: str, text: str) -> str:
        return f"{_COLOURS[kind]}{text}\033[0m" if color else text

    out = [paint("h", f"taskc diff {diff.old_label} → {diff.new_label} (task {diff.task})"), ""]
    if not diff.has_changes:
        return "\n".join([*out, "no semantic change", ""])
    for kind in ENTITY_KINDS:
        entities = diff.entities_of(kind)
        if not entities:
            continue
        out.append(paint("h", _plural(kind)))
        for entity in _by_author(entities):
            if entity.author is not None and entity is _first_of_author(entities, entity.author):
                out.append(f"  by {entity.author}:")
            sign = _SIGN[entity.status]
            name = "settings" if entity.key == entity.kind else entity.key
            out.append("  " + paint(sign, f"{sign} {name}") + f"  ({entity.status})")
            for attribute in entity.attributes:
                if _is_long(attribute):
                    out += [f"      {attribute.name}:", "        " + paint("-", f"- {_value(attribute.before)}"),
                            "        " + paint("+", f"+ {_value(attribute.after)}")]
                else:
                    out.append(f"      {_attribute_text(attribute)}")
    for note in diff.notes:
        out.append(f"note: {note}")
    out.append("")
    if diff.plan.changed:
        out.append(paint("h", "plan (ESTIMATE: ~4 characters per token)"))
        rows = _plan_rows(diff)
        width = max(len(row[0]) for row in rows)
        for what, before, after, change in rows:
            out.append(f"  {what:<{width}}  {before:>10} → {after:>10}  {change}")
        out.append(f"  {_work_line(diff)}")
    else:
        out.append(_unchanged_plan_line(diff))
    if diff.configs:
        out += ["", paint("h", "compiled configs")]
        for config in diff.configs:
            sign = _SIGN[config.status]
            value = (_value(config.after) if config.status == ADDED else _value(config.before)
                     if config.status == REMOVED else f"{_value(config.before)} → {_value(config.after)}")
            out.append("  " + paint(sign, f"{sign} {config.file}: {config.path}") + f"  {value}")
    if diff.prompts:
        out += ["", paint("h", f"prompts ({_prompt_tally(diff.prompts)})")]
        for prompt in diff.prompts:
            out.extend(_paint_diff_line(line, paint) for line in prompt.diff)
    return "\n".join(out) + "\n"


def _paint_diff_line(line: str, paint: Callable[[str, str], str]) -> str:
    if line.startswith(("+++", "---")):
        return paint("h", line)
    if line.startswith("@@"):
        return paint("@", line)
    if line.startswith(("+", "-")):
        return paint(line[0], line)
    return line


def _prompt_tally(prompts: tuple[PromptChange, ...]) -> str:
    tally = [f"{sum(p.status == s for p in prompts)} {s}" for s in (CHANGED, ADDED, REMOVED)]
    return ", ".join(t for t in tally if not t.startswith("0 "))


# -- markdown ------------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_code(text: str, table: bool = False) -> str:
    if table:  # inside a table a pipe ends the cell even in a code span; GitHub unescapes it there
        text = text.replace("|", "\\|")
    ticks = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (ticks + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def render_markdown(diff: SpecDiff, limit: int = MARKDOWN_LIMIT) -> str:
    head = [f"### taskc diff: `{diff.task}`", "",
            f"{_md_code(diff.old_label)} → {_md_code(diff.new_label)}", ""]
    if not diff.has_changes:
        return "\n".join([*head, "No semantic change.", ""])
    out = head + ["| what | added | removed | changed |", "|---|--:|--:|--:|"]
    out += [f"| {what} | {a} | {r} | {c} |" for what, a, r, c in _counts(diff)]
    out.append("")
    if diff.plan.changed:
        out += ["| plan (estimate) | before | after | change |", "|---|--:|--:|--:|"]
        out += [f"| {what} | {before} | {after} | {change} |" for what, before, after, change in _plan_rows(diff)]
        out += ["", f"_{_work_line(diff)}._", ""]
    else:
        out += [f"_{_unchanged_plan_line(diff)}._", ""]
    if diff.entities:
        out += ["#### Changes", ""]
        out += [_md_entity(entity) for kind in ENTITY_KINDS for entity in _by_author(diff.entities_of(kind))]
        out.append("")
    out += [f"> **Note:** {_md_escape(note)}" for note in diff.notes]
    if diff.notes:
        out.append("")
    if diff.configs:
        out += ["#### Compiled configs", "", "| file | key | before | after |", "|---|---|---|---|"]
        for config in diff.configs:
            before = "" if config.status == ADDED else _md_code(_value(config.before, 80), table=True)
            after = "" if config.status == REMOVED else _md_code(_value(config.after, 80), table=True)
            out.append(f"| {config.file} | {_md_code(config.path, table=True)} | {before} | {after} |")
        out.append("")
    if diff.prompts:
        out += _md_prompts(diff.prompts, limit - len("\n".join(out)))
    return "\n".join(out).rstrip("\n") + "\n"


def _md_entity(entity: EntityChange) -> str:
    name = "settings" if entity.key == entity.kind else _md_code(entity.key)
    by = f" (by {_md_escape(entity.author)})" if entity.author else ""
    line = f"- **{entity.kind}** {name} {entity.status}{by}"
    lines = [line]
    for attribute in entity.attributes:
        if _is_long(attribute):
            lines += [f"  - {_md_escape(attribute.name)}:", f"    - was: {_md_code(_value(attribute.before))}",
                      f"    - now: {_md_code(_value(attribute.after))}"]
        else:
            lines.append(f"  - {_attribute_text(attribute, _md_code, _md_escape)}")
    return "\n".join(lines)


def _md_prompts(prompts: tuple[PromptChange, ...], budget: int) -> list[str]:
    out = ["#### Prompts", ""]
    budget -= 200
    shown = 0
    for prompt in prompts:
        body = "\n".join(prompt.diff)
        fence = "`" * max(3, max((len(run) for run in re.findall(r"`{3,}", body)), default=0) + 1)
        section = [f"<details><summary><code>{_md_escape(prompt.path)}</code> {prompt.status} "
                   f"(+{prompt.added_lines} −{prompt.removed_lines})</summary>", "",
                   f"{fence}diff", body, fence, "", "</details>", ""]
        size = len("\n".join(section)) + 1
        if size > budget:
            break
        budget -= size
        out += section
        shown += 1
    if shown < len(prompts):
        out.append(f"_{len(prompts) - shown} more prompt diff(s) not shown to fit a comment; "
                   f"run `taskc diff` locally to see them all._")
    return out


# -- json ----------------------------------------------------------------------------------------

def render_json(diff: SpecDiff) -> str:
    record = asdict(diff)
    for entity in record["entities"]:
        if entity["author"] is None:  # only signed rationales carry an author
            del entity["author"]
    record["changed"] = diff.has_changes
    for prompt, source in zip(record["prompts"], diff.prompts, strict=True):
        prompt["added_lines"], prompt["removed_lines"] = source.added_lines, source.removed_lines
    record["plan"]["changed"] = diff.plan.changed
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


__all__ = ["FORMATS", "render", "render_json", "render_markdown", "render_text"]
