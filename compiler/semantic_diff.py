"""After the emitters: what a change of a task file does, computed from two compiled results.

`taskc diff` compiles both versions with the same façade as `taskc compile` and
compares them here, so a reviewer sees meaning rather than moved YAML lines:
the named things of the task (fields, classes, lexicons, rationales,
constraints, the pass criterion, settings) matched by their names and ids,
never by position; a unified diff of every rendered prompt that changed; the
plan's delta (calls, examples per class, estimated tokens and cost, and how
many calls need new LLM work because their cache key is new); the changes of
finetune.json and eval.json; and data or template files whose content changed.
Pure data in, a frozen `SpecDiff` out; rendering lives in `diff_render`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from . import ir
from .call_plan import LABEL_POOL, PHASES, SCORE_GOLD, LLMCall, generation_calls, phase_estimate, unique_calls
from .driver import CompiledTask
from .pricing import builtin_prices
from .prompts import CLASSIFY_PROMPT_PATH

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
MANIFEST = "manifest.json"
CONFIG_FILES = ("finetune.json", "eval.json")

# The order in which kinds of named things are reported: the order a reader meets them in a task file.
ENTITY_KINDS = ("task", "field", "class", "lexicon", "rationale", "constraint", "criterion", "eval", "pool",
                "generate", "finetune", "input file")


@dataclass(frozen=True)
class AttributeChange:
    """One attribute of a named thing: before → after, or the members added and removed for sets."""

    name: str
    before: Any = None
    after: Any = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def is_set_change(self) -> bool:
        return bool(self.added or self.removed)


@dataclass(frozen=True)
class EntityChange:
    kind: str
    key: str
    status: str  # added | removed | changed
    attributes: tuple[AttributeChange, ...] = ()
    author: str | None = None  # a rationale's author (the new version's, or the removed one's)


@dataclass(frozen=True)
class PromptChange:
    path: str
    status: str
    diff: tuple[str, ...]  # unified diff lines without line ends

    @property
    def added_lines(self) -> int:
        return sum(1 for line in self.diff if line.startswith("+") and not line.startswith("+++"))

    @property
    def removed_lines(self) -> int:
        return sum(1 for line in self.diff if line.startswith("-") and not line.startswith("---"))


@dataclass(frozen=True)
class ConfigChange:
    file: str
    path: str  # dotted path into the JSON document
    status: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class PlanSummary:
    calls: int
    examples: int
    examples_per_class: Mapping[str, int]
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    model: str
    calls_by_phase: Mapping[str, int] = field(default_factory=dict)  # generate, label_pool, score_gold


@dataclass(frozen=True)
class PlanDelta:
    before: PlanSummary
    after: PlanSummary
    new_calls: int  # calls of the new plan whose cache key the old plan did not have
    dropped_calls: int  # calls of the old plan whose cache key the new plan no longer has
    new_by_phase: Mapping[str, int] = field(default_factory=dict)  # the new calls, by phase
    new_cost_usd: float | None = None  # the estimated price of the new calls
    every_classification: bool = False  # the classification prompt changed: every classification is new

    @property
    def changed(self) -> bool:
        return self.before != self.after or self.new_calls > 0 or self.dropped_calls > 0


@dataclass(frozen=True)
class SpecDiff:
    old_label: str
    new_label: str
    task: str
    entities: tuple[EntityChange, ...]
    prompts: tuple[PromptChange, ...]
    plan: PlanDelta
    configs: tuple[ConfigChange, ...]
    changed_outputs: tuple[str, ...]  # compiled files added, removed or changed (manifest.json excluded)
    notes: tuple[str, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.entities or self.changed_outputs or self.prompts or self.configs or self.plan.changed)

    def entities_of(self, kind: str) -> tuple[EntityChange, ...]:
        return tuple(e for e in self.entities if e.kind == kind)


def diff_compiled(old: CompiledTask, new: CompiledTask, old_label: str, new_label: str,
                  context_lines: int = 3) -> SpecDiff:
    """The semantic diff of two compiled versions of a task."""
    entities = [*_entity_changes(old.ir, new.ir), *_input_file_changes(old, new)]
    return SpecDiff(
        old_label=old_label, new_label=new_label, task=new.ir.name,
        entities=tuple(entities),
        prompts=_prompt_changes(old, new, context_lines),
        plan=_plan_delta(old, new),
        configs=tuple(change for name in CONFIG_FILES
                      for change in _json_changes(name, _config(old, name), _config(new, name))),
        changed_outputs=_changed_outputs(old.files, new.files),
        notes=_rename_notes(old.ir, new.ir),
    )


# -- named things ----------------------------------------------------------------------------------

Attributes = dict[str, Any]

# Attributes compared as sets, reported as members added and removed (order is not meaning there).
_SET_ATTRIBUTES = {"words", "examples", "values", "metrics", "dedupe.key"}


def entity_changes(old: ir.TaskIR, new: ir.TaskIR) -> list[EntityChange]:
    """What changed between two versions of a task, entity by entity (fields, classes, lexicons, rationales,
    constraints, the criterion): the part of `taskc diff` that needs no compiled output."""
    return _entity_changes(old, new)


def _entity_changes(old: ir.TaskIR, new: ir.TaskIR) -> list[EntityChange]:
    changes: list[EntityChange] = []
    for kind, view in _VIEWS:
        changes.extend(_keyed_changes(kind, view(old), view(new)))
    authors = {r.id: r.author for r in old.rationales} | {r.id: r.author for r in new.rationales}
    return [dataclasses.replace(c, author=authors.get(c.key)) if c.kind == "rationale" and authors.get(c.key)
            else c for c in changes]


def _keyed_changes(kind: str, old: Mapping[str, Attributes], new: Mapping[str, Attributes]
                   ) -> list[EntityChange]:
    changes: list[EntityChange] = []
    for key, before in old.items():
        if key not in new:
            changes.append(EntityChange(kind, key, REMOVED))
            continue
        attributes = _attribute_changes(before, new[key])
        if attributes:
            changes.append(EntityChange(kind, key, CHANGED, attributes))
    for key, after in new.items():
        if key not in old:
            shown = tuple(AttributeChange(name, added=value) if name in _SET_ATTRIBUTES and isinstance(value, tuple)
                          else AttributeChange(name, None, value)
                          for name, value in after.items() if value not in (None, "", ()))
            changes.append(EntityChange(kind, key, ADDED, shown))
    return changes


def _attribute_changes(before: Attributes, after: Attributes) -> tuple[AttributeChange, ...]:
    changes: list[AttributeChange] = []
    for name in [*before, *(n for n in after if n not in before)]:
        old_value, new_value = before.get(name), after.get(name)
        if old_value == new_value:
            continue
        if name in _SET_ATTRIBUTES and isinstance(old_value, tuple) and isinstance(new_value, tuple):
            added = tuple(v for v in new_value if v not in old_value)
            removed = tuple(v for v in old_value if v not in new_value)
            if added or removed:
                changes.append(AttributeChange(name, added=added, removed=removed))
            else:
                changes.append(AttributeChange(f"{name} order", list(old_value), list(new_value)))
            continue
        changes.append(AttributeChange(name, old_value, new_value))
    return tuple(changes)


def _one_line(text: str | None) -> str | None:
    return " ".join(text.split()) if text is not None else None


def _task_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {"task": {"name": task.name, "description": task.description, "instructions": task.instructions}}


def _field_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {f.name: {"type": f.type, "description": f.description, "values": f.values,
                     "min_length": f.min_length, "max_length": f.max_length, "optional": f.optional}
            for f in task.fields}


def _class_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {c.name: {"description": c.description} for c in task.classes}


def _lexicon_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {lexicon.name: {"file": lexicon.file, "words": lexicon.words} for lexicon in task.lexicons}


def _example_text(task: ir.TaskIR, rationale: ir.Rationale, example: ir.WorkedExample) -> str:
    from .prompts import input_json

    # the label is shown only when it is not the rationale's own class, so that moving a rationale to
    # another class reads as one class change rather than as every example replaced
    label = f" → {example.label}" if example.label != rationale.class_name else ""
    note = f" ({example.note})" if example.note else ""
    return f"{input_json(task.fields, dict(example.input))}{label}{note}"


def _rationale_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {r.id: {"class": r.class_name, "text": r.text, "rule": _one_line(r.rule.source) if r.rule else None,
                   "examples": tuple(_example_text(task, r, e) for e in r.examples), "author": r.author}
            for r in task.rationales}


def _constraint_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {c.id: {"check": _one_line(c.check.source), "message": c.message} for c in task.constraints}


def _criterion_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {"pass": {"expression": _one_line(task.eval.criterion.source)}} if task.eval else {}


def _eval_view(task: ir.TaskIR) -> dict[str, Attributes]:
    if task.eval is None:
        return {}
    return {"eval": {"gold": task.eval.gold, "metrics": task.eval.metrics, "primary": task.eval.primary,
                     "test_fraction": task.eval.test_fraction, "split_seed": task.eval.split_seed}}


def _pool_view(task: ir.TaskIR) -> dict[str, Attributes]:
    return {"pool": {"path": task.pool.path, "limit": task.pool.limit, "answers": task.pool.answers}} \
        if task.pool else {}


def _generate_view(task: ir.TaskIR) -> dict[str, Attributes]:
    g = task.generate
    return {"generate": {
        "model": g.model, "temperature": g.temperature, "top_p": g.top_p, "max_tokens": g.max_tokens,
        "per_rationale": g.per_rationale, "near_misses": g.near_misses, "per_class": g.per_class,
        "per_call": g.per_call, "seed": g.seed, "dedupe.normalize": g.dedupe.normalize,
        "dedupe.near_duplicate_threshold": g.dedupe.near_duplicate_threshold, "dedupe.key": g.dedupe.key,
        **{f"templates.{kind}": path for kind, path in sorted(g.templates.items())},
        **{f"prices.{model}": list(price) for model, price in sorted(g.prices.items())},
    }}


def _finetune_view(task: ir.TaskIR) -> dict[str, Attributes]:
    f = task.finetune
    return {"finetune": {
        "provider": f.provider, "base_model": f.base_model, "epochs": f.epochs, "batch_size": f.batch_size,
        "learning_rate_multiplier": f.learning_rate_multiplier, "validation_split": f.validation_split,
        "suffix": f.suffix, "system_message": f.system_message,
    }}


_VIEWS = (("task", _task_view), ("field", _field_view), ("class", _class_view), ("lexicon", _lexicon_view),
          ("rationale", _rationale_view), ("constraint", _constraint_view), ("criterion", _criterion_view),
          ("eval", _eval_view), ("pool", _pool_view), ("generate", _generate_view),
          ("finetune", _finetune_view))


def _rename_notes(old: ir.TaskIR, new: ir.TaskIR) -> tuple[str, ...]:
    """A class that disappeared while its rationales moved to a new class is most likely a rename."""
    removed = [name for name in old.class_names if name not in new.class_names]
    added = set(new.class_names) - set(old.class_names)
    new_class_of = {r.id: r.class_name for r in new.rationales}
    notes: list[str] = []
    for name in removed:
        moved: dict[str, list[str]] = {}
        for rationale in old.rationales:
            target = new_class_of.get(rationale.id)
            if rationale.class_name == name and target in added:
                moved.setdefault(target, []).append(rationale.id)
        for target, ids in moved.items():
            notes.append(f"class '{name}' was removed and '{target}' added; rationales moved from "
                         f"'{name}' to '{target}': {', '.join(ids)} (a rename? generated data of the old "
                         f"class will not be reused)")
    return tuple(notes)


def _input_file_changes(old: CompiledTask, new: CompiledTask) -> list[EntityChange]:
    """Data, lexicon and template files named by the task whose content changed (from the manifests)."""
    before = _input_hashes(old)
    after = _input_hashes(new)
    changes: list[EntityChange] = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            changes.append(EntityChange("input file", path, REMOVED))
        elif path not in before:
            changes.append(EntityChange("input file", path, ADDED))
        elif before[path] != after[path]:
            changes.append(EntityChange("input file", path, CHANGED,
                                        (AttributeChange("content", _short_hash(before[path]),
                                                         _short_hash(after[path])),)))
    return changes


def _input_hashes(compiled: CompiledTask) -> dict[str, str]:
    manifest = json.loads(compiled.files[MANIFEST]) if MANIFEST in compiled.files else {}
    own = PurePath(compiled.ir.source).name  # the task file itself: its meaning is diffed above
    return {path: digest for path, digest in manifest.get("inputs", {}).items() if path != own}


def _short_hash(digest: str) -> str:
    return digest if digest == "missing" else digest[:12]


# -- prompts -------------------------------------------------------------------------------------

def _prompt_changes(old: CompiledTask, new: CompiledTask, context_lines: int) -> tuple[PromptChange, ...]:
    changes: list[PromptChange] = []
    for path in sorted(set(old.prompts) | set(new.prompts)):
        before = old.prompts[path].to_markdown() if path in old.prompts else ""
        after = new.prompts[path].to_markdown() if path in new.prompts else ""
        if before == after:
            continue
        status = ADDED if path not in old.prompts else REMOVED if path not in new.prompts else CHANGED
        lines = difflib.unified_diff(before.splitlines(), after.splitlines(),
                                     "/dev/null" if status == ADDED else f"a/{path}",
                                     "/dev/null" if status == REMOVED else f"b/{path}",
                                     n=context_lines, lineterm="")
        changes.append(PromptChange(path, status, tuple(lines)))
    return tuple(changes)


# -- plan ----------------------------------------------------------------------------------------

def _plan_summary(compiled: CompiledTask) -> PlanSummary:
    per_class: Counter[str] = Counter({name: 0 for name in compiled.ir.class_names})
    for job in compiled.plan:
        per_class[job.target_class] += job.examples
    estimate = compiled.estimate
    by_phase = {name: phase.calls for name, phase in estimate.phases.items()}
    return PlanSummary(calls=estimate.calls, examples=estimate.examples, examples_per_class=dict(per_class),
                       input_tokens=estimate.input_tokens, output_tokens=estimate.output_tokens,
                       cost_usd=None if estimate.cost_usd is None else round(estimate.cost_usd, 6),
                       model=estimate.model, calls_by_phase=by_phase)


def _run_calls(compiled: CompiledTask) -> list[LLMCall]:
    """The calls every run with a provider makes, each cache key once (a repeat is a cache hit)."""
    calls = [call for call in compiled.calls.calls if call.when is None and call.cache_key]
    if not calls:  # a compiled task built without its call plan: the generation jobs are its calls
        return generation_calls(compiled.ir, compiled.plan, compiled.prompts)
    return unique_calls(calls)


def _rounded(cost: float | None) -> float | None:
    return None if cost is None else round(cost, 6)


def _plan_delta(old: CompiledTask, new: CompiledTask) -> PlanDelta:
    """What the new plan costs beyond the cache of the old one: its calls whose cache key is new.

    A cache key hashes a call's model, messages, sampling, seed and response schema, so an edit re-runs
    exactly the calls whose prompt it reaches. The classification prompt holds every rationale: an edit
    of any rationale reaches every pool labeling and gold scoring call, and the count says so."""
    old_keys = {call.cache_key for call in _run_calls(old)}
    new_run = _run_calls(new)
    fresh = [call for call in new_run if call.cache_key not in old_keys]
    kept = {call.cache_key for call in new_run}
    by_phase = Counter(call.phase for call in fresh)
    prices = {**builtin_prices(), **dict(new.ir.generate.prices)}
    classify_changed = (old.prompts.get(CLASSIFY_PROMPT_PATH) != new.prompts.get(CLASSIFY_PROMPT_PATH)
                        or old.classification_format != new.classification_format)
    classifications = [call for call in new_run if call.phase in (LABEL_POOL, SCORE_GOLD)]
    return PlanDelta(_plan_summary(old), _plan_summary(new), new_calls=len(fresh),
                     dropped_calls=len(old_keys - kept),
                     new_by_phase={name: by_phase[name] for name in PHASES if by_phase[name]},
                     new_cost_usd=_rounded(phase_estimate(fresh, prices).cost_usd),
                     every_classification=bool(classifications) and classify_changed
                     and all(call.cache_key not in old_keys for call in classifications))


# -- compiled configs ----------------------------------------------------------------------------

def _config(compiled: CompiledTask, name: str) -> Any:
    raw = compiled.files.get(name)
    return json.loads(raw) if raw is not None else None


def _json_changes(file: str, before: Any, after: Any, path: str = "") -> Iterable[ConfigChange]:
    """Leaf-level changes of two JSON documents; lists of scalars compare as whole values."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                yield ConfigChange(file, where, REMOVED, before=before[key])
            elif key not in before:
                yield ConfigChange(file, where, ADDED, after=after[key])
            else:
                yield from _json_changes(file, before[key], after[key], where)
        return
    if (isinstance(before, list) and isinstance(after, list) and len(before) == len(after)
            and any(isinstance(v, (dict, list)) for v in before)):
        for index, (old_item, new_item) in enumerate(zip(before, after, strict=True)):
            yield from _json_changes(file, old_item, new_item, f"{path}[{index}]")
        return
    if before != after:
        yield ConfigChange(file, path or "(document)", CHANGED, before, after)


def _changed_outputs(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> tuple[str, ...]:
    return tuple(path for path in sorted(set(before) | set(after))
                 if path != MANIFEST and before.get(path) != after.get(path))


__all__ = ["AttributeChange", "ConfigChange", "EntityChange", "PlanDelta", "PlanSummary", "PromptChange",
           "SpecDiff", "diff_compiled", "ADDED", "REMOVED", "CHANGED", "ENTITY_KINDS"]
