"""Runtime stage: `taskc export`, a run's training data in the layouts other trainers read.

It runs after `taskc run` and reads what every student of that run trained on,
RUN_DIR/training_set.jsonl (one line per example: input, label, label source,
weight), and writes it again for tools taskc does not integrate:
`messages.jsonl` in the chat fine-tuning layout (built by the same
`CompiledTask.training_messages` as taskc's own train.jsonl, so a model tuned
elsewhere is asked the same way), `classification.jsonl` with `labels.json` for
classification heads (the text is `features.item_text`, what the local model
reads), and `README.md`, a dataset card that says where every label came from.

The task is compiled from the file the run was trained from (recorded in
RUN_DIR/model/predictor.json) and refused when its spec hash differs: the
system message and the field order must be those the data was made for. The
builders here are pure; `export` reads, checks and writes, each file
atomically. The output depends only on the run directory and the task file:
no clock, no absolute paths, so two exports are byte-identical.
"""

from __future__ import annotations

import difflib
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskc.compiler import (
    FIELD_SEPARATOR,
    CompiledTask,
    Diagnostic,
    ExitStatus,
    TaskcError,
    TaskIR,
    compile_task,
    counted,
    write_atomic,
)

from .datasets import EXAMPLES_FILE, jsonl_bytes
from .features import item_text, spec_hash
from .predictor import PredictorError, read_manifest, spec_path_of, version_mismatch
from .training_set import FIELD_VIEW_WEIGHT, TRAINING_SET_FILE, UNCOVERED_WEIGHT

METRICS_FILE = "metrics.json"
MODEL_DIR = "model"

MESSAGES_FILE = "messages.jsonl"
CLASSIFICATION_FILE = "classification.jsonl"
LABELS_FILE = "labels.json"
CARD_FILE = "README.md"
EXPORT_FILES = (MESSAGES_FILE, CLASSIFICATION_FILE, LABELS_FILE, CARD_FILE)
FORMATS = ("messages", "classification")
FILES_OF_FORMAT = {"messages": (MESSAGES_FILE,), "classification": (CLASSIFICATION_FILE, LABELS_FILE)}
# The card's second line: how a directory is recognised as an earlier export that may be written over.
CARD_MARKER = "<!-- written by `taskc export`; rewritten by every export into this directory -->"
MAX_PROBLEMS = 20

# One line per label source `taskc run` writes (training_set.training_examples); field views are described by
# `source_meaning` from the source they were made of.
SOURCE_MEANINGS = {
    "label_model": "a pool input labelled by the expert's rules, their votes combined by the label model "
                   "(Dawid-Skene); weighted by the label model's confidence",
    "majority": "a pool input labelled by the majority vote of the expert's rules that fired",
    "llm": "a pool input the rules left unlabelled or in conflict, labelled by the LLM; weight 1",
    "generated": "an input the LLM wrote for a rationale and a target class (checked against the task's "
                 "types and constraints, deduplicated), labelled with that class; weight 1",
    "rules' silence": "a pool input on which no rule fired, labelled by what the label model says the rules' "
                      f"silence means; weighted at most {UNCOVERED_WEIGHT:g}, less the nearer that is to a coin flip",
    "expert": "a worked example the expert wrote in the task file",
}
FIELD_VIEW_SUFFIX = " only"


class ExportError(TaskcError):
    """A run directory that cannot be exported: missing or damaged files, another version of the task."""

    def __init__(self, message: str, problems: Sequence[str] = (), diagnostics: tuple[Diagnostic, ...] = (),
                 sources: Mapping[str, str] | None = None) -> None:
        super().__init__(message, diagnostics)
        self.problems = tuple(problems) or (message,)  # one line each, "file:line: message" where it has one
        self.sources = dict(sources or {})


class ExportUsageError(ExportError):
    """A bad RUN_DIR, output directory or --format value: a usage mistake, nothing was read or written."""

    exit_status = ExitStatus.USAGE


class ExportWriteError(ExportError):
    """The output directory or a file in it cannot be written (permissions, disk full)."""

    exit_status = ExitStatus.RUNTIME_FAILURE


@dataclass(frozen=True)
class TrainingRow:
    """One line of training_set.jsonl, checked against the task."""

    line: int
    input: dict[str, Any]
    label: str
    source: str
    weight: float


@dataclass(frozen=True)
class RunFacts:
    """What the card says about the run beyond its rows: where they came from and who made them."""

    task_file: str  # the task file's name (never its absolute path)
    spec_hash: str
    run_version: str  # the taskc version that trained the run (predictor.json)
    export_version: str
    llm: Mapping[str, Any] = field(default_factory=dict)  # metrics.json "llm": the LLM phases that ran
    generation_models: tuple[tuple[str, int], ...] = ()  # (model, generated examples) from examples.jsonl


@dataclass(frozen=True)
class ExportedFile:
    name: str
    rows: int | None  # lines of a JSONL file; None for the others
    what: str  # what a line or the file is, for the summary


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    task: str
    spec_hash: str
    examples: int
    files: tuple[ExportedFile, ...]
    warnings: tuple[str, ...] = ()


# -- options -----------------------------------------------------------------------------------------

def parse_formats(text: str) -> tuple[str, ...]:
    """``messages,classification`` -> the formats in FORMATS order; ValueError with "did you mean" otherwise."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"no format given; choose from {', '.join(FORMATS)}")
    for name in names:
        if name not in FORMATS:
            close = difflib.get_close_matches(name, FORMATS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; choose from {', '.join(FORMATS)}"
            raise ValueError(f"unknown format '{name}'{hint}")
    return tuple(name for name in FORMATS if name in names)


# -- reading the run ---------------------------------------------------------------------------------

def parse_training_set(lines: Iterable[bytes], task: TaskIR, display: str) -> list[TrainingRow]:
    """The rows of training_set.jsonl; ExportError listing every bad line as ``display:line: message``."""
    rows: list[TrainingRow] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode("utf-8").rstrip("\r\n")  # without it a JSON error points past the line's end
        except UnicodeDecodeError:
            problems.append(f"{display}:{number}: not UTF-8 text")
            continue
        if not text.strip():
            continue
        try:
            rows.append(_training_row(json.loads(text), task, number))
        except json.JSONDecodeError as exc:
            problems.append(f"{display}:{number}: not JSON: {exc.msg} at column {exc.colno}")
        except ValueError as exc:
            problems.append(f"{display}:{number}: {exc}")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more bad lines")
        raise ExportError(f"{display}: {counted(len(problems), 'bad line')}", shown)
    return rows


def _training_row(value: Any, task: TaskIR, line: int) -> TrainingRow:
    if not isinstance(value, dict):
        raise ValueError("a line must be a JSON object with input, label, source and weight")
    missing = [key for key in ("input", "label", "source", "weight") if key not in value]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    inputs, label, source, weight = value["input"], value["label"], value["source"], value["weight"]
    if not isinstance(inputs, dict):
        raise ValueError("'input' must be an object of the task's fields")
    for name in inputs:
        if name not in task.field_names:
            raise ValueError(f"'{name}' is not a field of task '{task.name}'{_did_you_mean(name, task.field_names)}")
    if not isinstance(label, str) or label not in task.class_names:
        raise ValueError(f"label {label!r} is not a class of task '{task.name}'"
                         f"{_did_you_mean(label, task.class_names) if isinstance(label, str) else ''}")
    if not isinstance(source, str) or not source:
        raise ValueError(f"source {source!r} must be a non-empty string")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight {weight!r} must be a number 0 or more")
    ordered = {name: inputs[name] for name in task.field_names if name in inputs}
    return TrainingRow(line, ordered, label, source, float(weight))


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else f" (it has {', '.join(choices)})"


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ExportUsageError(f"{run_dir}: not a directory (RUN_DIR is what `taskc run` wrote, runs/<task> by "
                               "default)")


def _load_run(run_dir: Path, spec: Path | None) -> tuple[CompiledTask, list[TrainingRow], RunFacts]:
    from taskc._version import __version__

    training_path = run_dir / TRAINING_SET_FILE
    if not training_path.is_file():
        raise ExportError(f"{training_path}: not found: this run has no training set to export; run `taskc run "
                          f"SPEC` first with this taskc version ({__version__}), which writes it")
    model_dir = run_dir / MODEL_DIR
    try:
        manifest = read_manifest(model_dir)
    except PredictorError as exc:
        raise ExportError(str(exc)) from None
    spec_path = spec or spec_path_of(model_dir, manifest)
    if spec is None and not spec_path.is_file():
        raise ExportError(f"the task file the run was trained from is gone ({spec_path}); pass --spec SPEC")
    result = compile_task(str(spec_path))
    if result.compiled is None:
        raise ExportError(f"{spec_path}: the task file has errors", diagnostics=tuple(result.diagnostics),
                          sources=result.sources)
    compiled = result.compiled
    task = compiled.ir
    expected = spec_hash(task)
    mismatch = version_mismatch(manifest, task)
    if mismatch:
        raise ExportError(f"{run_dir}: the run was trained for {mismatch}. Run `taskc run` on this task file, then "
                          "export that run")
    try:
        with open(training_path, "rb") as handle:
            rows = parse_training_set(handle, task, str(training_path))
    except OSError as exc:
        raise ExportError(f"{training_path}: cannot read: {exc.strerror or exc}") from None
    llm = _read_metrics(run_dir / METRICS_FILE).get("llm") or {}
    facts = RunFacts(task_file=Path(task.source).name, spec_hash=expected,
                     run_version=str(manifest.get("taskc_version") or "unknown"), export_version=__version__,
                     llm=llm if isinstance(llm, dict) else {},
                     generation_models=_generation_models(run_dir / EXAMPLES_FILE) if "generation" in llm else ())
    return compiled, rows, facts


def _read_metrics(path: Path) -> dict[str, Any]:
    """metrics.json, or {} when the run has none (the card then knows only what the rows say)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: cannot read: {exc}") from None
    if not isinstance(value, dict):
        raise ExportError(f"{path}: not a metrics file (a JSON object)")
    return value


def _generation_models(path: Path) -> tuple[tuple[str, int], ...]:
    """The models that answered the generation calls, with their accepted examples (examples.jsonl's
    provenance), so the card names the model that ran, also when `taskc run --model` overrode the task's."""
    counts: Counter[str] = Counter()
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    model = json.loads(line).get("provenance", {}).get("model")
                except (ValueError, AttributeError):
                    continue  # only the card's model list reads this file: a damaged line costs one count
                if isinstance(model, str) and model:
                    counts[model] += 1
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# -- the rows ----------------------------------------------------------------------------------------

def message_rows(compiled: CompiledTask, rows: Sequence[TrainingRow]) -> list[dict[str, Any]]:
    """messages.jsonl: (system, user, assistant) per example, exactly as taskc's own train.jsonl writes them."""
    return [{"messages": compiled.training_messages(row.input, row.label)} for row in rows]


def classification_rows(task: TaskIR, rows: Sequence[TrainingRow], *, weights: bool = True) -> list[dict[str, Any]]:
    """classification.jsonl: the input's text as the local model reads it, the label, its weight and source."""
    out = []
    for row in rows:
        line: dict[str, Any] = {"text": item_text(task, row.input), "label": row.label}
        if weights:
            line["weight"] = row.weight
        line["source"] = row.source
        out.append(line)
    return out


def label_ids(task: TaskIR) -> dict[str, int]:
    """labels.json: class name -> index, in the task's class order."""
    return {name: index for index, name in enumerate(task.class_names)}


def labels_bytes(task: TaskIR) -> bytes:
    # not `dumps`: it sorts keys, and the order of the classes is the point of this file
    return (json.dumps(label_ids(task), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- the card ----------------------------------------------------------------------------------------

_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def size_category(count: int) -> str:
    """The Hugging Face dataset-card size bucket of ``count`` examples."""
    for limit, name in _SIZE_CATEGORIES:
        if count < limit:
            return name
    return "n>1B"


def source_meaning(source: str, task: TaskIR) -> str:
    """One line on what a label source means (a field view is described from the source it was made of)."""
    if source in SOURCE_MEANINGS:
        return SOURCE_MEANINGS[source]
    base, _, kept = source.rpartition(", ")
    if base and kept.endswith(FIELD_VIEW_SUFFIX) and kept[:-len(FIELD_VIEW_SUFFIX)] in task.field_names:
        name = kept[:-len(FIELD_VIEW_SUFFIX)]
        return (f"a field view of a `{base}` example: the same input with only `{name}` filled (the other text "
                f"fields emptied), the same label, its weight × {FIELD_VIEW_WEIGHT:g}")
    return "a label source this taskc version does not describe"


def dataset_card(compiled: CompiledTask, rows: Sequence[TrainingRow], facts: RunFacts, formats: Sequence[str],
                 *, weights: bool = True) -> str:
    """README.md: a Hugging Face style dataset card of the exported files (deterministic: no clock, no paths
    outside the project)."""
    task = compiled.ir
    total = len(rows)
    parts = [_front_matter(task, total, formats), CARD_MARKER, "",
             f"# {task.name}: training data exported by taskc", "", _one_line(task.description), "",
             "| | |", "|---|---|",
             f"| task | `{task.name}` (task file `{facts.task_file}`) |",
             f"| spec hash | `{facts.spec_hash}` |",
             f"| taskc version | {_versions(facts)} |",
             f"| examples | {total:,} |",
             f"| classes | {len(task.class_names)}: {', '.join(f'`{name}`' for name in task.class_names)} |", "",
             f"These are the examples every student of `taskc run` trained on (the run's `{TRAINING_SET_FILE}`), "
             "in the same order in every file: line *n* of one file is line *n* of the others. The gold set the "
             "run was evaluated on is not part of them.", ""]
    parts += _class_balance(task, rows) + _sources(task, rows) + _weights(rows, weights)
    parts += _models(task, rows, facts) + _files(compiled, formats, weights) + _licence(task, rows, facts)
    return "\n".join(parts).rstrip("\n") + "\n"


def _front_matter(task: TaskIR, total: int, formats: Sequence[str]) -> str:
    lines = ["---", f"pretty_name: {json.dumps(f'{task.name} (taskc training data)', ensure_ascii=False)}",
             "task_categories:", "- text-classification", "size_categories:", f"- {size_category(total)}",
             "tags:", "- taskc",
             "# no license: key; taskc cannot know the pool's licence (see Licence below)"]
    configs = [(name, file) for name, file in (("classification", CLASSIFICATION_FILE), ("messages", MESSAGES_FILE))
               if name in formats]
    if configs:
        lines.append("configs:")
        for index, (name, file) in enumerate(configs):
            lines += [f"- config_name: {name}", "  data_files:", "  - split: train", f"    path: {file}"]
            if index == 0:
                lines.append("  default: true")
    return "\n".join([*lines, "---"])


def _versions(facts: RunFacts) -> str:
    if facts.run_version == facts.export_version:
        return f"{facts.run_version} (run and export)"
    return f"{facts.run_version} (run), {facts.export_version} (export)"


def _class_balance(task: TaskIR, rows: Sequence[TrainingRow]) -> list[str]:
    counts = Counter(row.label for row in rows)
    weight: dict[str, float] = dict.fromkeys(task.class_names, 0.0)
    for row in rows:
        weight[row.label] += row.weight
    lines = ["## Class balance", "", "| class | examples | share | total weight | description |",
             "|---|---:|---:|---:|---|"]
    for cls in task.classes:
        lines.append(f"| `{cls.name}` | {counts[cls.name]:,} | {_share(counts[cls.name], len(rows))} | "
                     f"{weight[cls.name]:,.2f} | {_cell(cls.description)} |")
    return [*lines, ""]


def _sources(task: TaskIR, rows: Sequence[TrainingRow]) -> list[str]:
    counts = Counter(row.source for row in rows)
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for row in rows:
        low[row.source] = min(low.get(row.source, row.weight), row.weight)
        high[row.source] = max(high.get(row.source, row.weight), row.weight)
    lines = ["## Label sources", "",
             "Where each example's label came from (the `source` of `classification.jsonl`).", "",
             "| source | examples | share | weight | what it means |", "|---|---:|---:|---|---|"]
    for source, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        span = _number(low[source]) if low[source] == high[source] else \
            f"{_number(low[source])}–{_number(high[source])}"
        lines.append(f"| `{_cell(source)}` | {count:,} | {_share(count, len(rows))} | {span} | "
                     f"{_cell(source_meaning(source, task))} |")
    if not rows:
        lines.append("| (none) | 0 | | | the run had no training examples |")
    return [*lines, ""]


def _weights(rows: Sequence[TrainingRow], weights: bool) -> list[str]:
    values = [row.weight for row in rows]
    if values and min(values) != max(values):
        summary = (f"Here they range from {_number(min(values))} to {_number(max(values))} (mean "
                   f"{_number(sum(values) / len(values))}).")
    else:
        summary = f"Here every weight is {_number(values[0])}." if values else ""
    lines = ["## Weights", "",
             "A weight says how much an example should count in training: how sure its label is. It is what "
             "`taskc run`'s local model took as `sample_weight`: 1 for generated and LLM-labelled examples, the "
             "label model's confidence for a rule label (a coin-flip label should teach little), at most "
             f"{UNCOVERED_WEIGHT:g} for what the rules' silence says, the original's × {FIELD_VIEW_WEIGHT:g} for a "
             "field view. " + summary, ""]
    if weights:
        lines += ["Pass `weight` as `sample_weight` (scikit-learn) or as a per-example loss weight; to ignore it, "
                  "drop the column. Chat fine-tuning takes no per-example weight: `messages.jsonl` holds every "
                  "example once, unweighted (filter by the `source` of the same line of `classification.jsonl` to "
                  "leave some out).", ""]
    else:
        lines += ["This export was made with `--no-weights`: `classification.jsonl` has no `weight` column.", ""]
    return lines


def _models(task: TaskIR, rows: Sequence[TrainingRow], facts: RunFacts) -> list[str]:
    by_source = Counter(_base_source(row.source) for row in rows)
    from_llm = by_source["generated"] + by_source["llm"]
    lines = ["## Generation models", ""]
    if not facts.llm and not from_llm:
        return [*lines, "No LLM ran: every label comes from the expert's rules (through the label model, and what "
                        f"their silence says). With a provider, `taskc run` generates with `{task.generate.model}` "
                        "(the task's `generate.model`).", ""]
    lines += [f"The task's `generate.model` is `{task.generate.model}`.", ""]
    generation, pool = facts.llm.get("generation"), facts.llm.get("pool_labeling")
    if isinstance(generation, dict):
        models = ", ".join(f"`{model}` ({counted(count, 'example')})" for model, count in facts.generation_models) or \
            f"`{task.generate.model}`"
        lines.append(f"- generation: {counted(generation.get('accepted', 0), 'example')} accepted from "
                     f"{generation.get('calls_total', 0):,} planned calls, written by {models}; "
                     f"{by_source['generated']:,} training examples have source `generated` (field views included)")
    if isinstance(pool, dict):
        lines.append(f"- pool labeling: the LLM labelled {pool.get('labeled', 0):,} of {pool.get('items', 0):,} "
                     "pool inputs the rules left open or in conflict, with the task's `generate.model` unless "
                     f"`taskc run --model` named another; {by_source['llm']:,} training examples have source `llm`")
    if not isinstance(generation, dict) and not isinstance(pool, dict):
        lines.append(f"- {from_llm:,} training examples were written or labelled by an LLM (sources `generated`, "
                     f"`llm`); the run's {METRICS_FILE} does not say which model" if from_llm else
                     "- no LLM wrote or labelled a training example: every label comes from the expert's rules")
    others = sorted(set(facts.llm) - {"generation", "pool_labeling"})
    if others:
        lines.append(f"- also ran, without making training data: {', '.join(others)} (see `llm` in the run's "
                     f"{METRICS_FILE})")
    return [*lines, ""]


def _files(compiled: CompiledTask, formats: Sequence[str], weights: bool) -> list[str]:
    task = compiled.ir
    lines = ["## Files", "", "| file | layout |", "|---|---|"]
    if "messages" in formats:
        lines.append(f"| `{MESSAGES_FILE}` | `{{\"messages\": [system, user, assistant]}}`: the chat fine-tuning "
                     "layout of OpenAI, open-model fine-tuning services and TRL's `SFTTrainer` |")
    if "classification" in formats:
        columns = '"text", "label", "weight", "source"' if weights else '"text", "label", "source"'
        lines.append(f"| `{CLASSIFICATION_FILE}` | `{{{columns}}}`: for a classification head (Hugging Face "
                     "`datasets` / `Trainer`, scikit-learn) |")
        lines.append(f"| `{LABELS_FILE}` | class name → index, in the task's class order |")
    lines.append(f"| `{CARD_FILE}` | this card |")
    lines.append("")
    if "messages" in formats:
        lines += [f"In `{MESSAGES_FILE}` the system message is the task's (`finetune.system_message`, or taskc's "
                  "default), the user message is the input as JSON with the fields in declaration order ("
                  + ", ".join(f"`{name}`" for name in task.field_names) + "), and the assistant message is the "
                  "class name: the layout of taskc's own `train.jsonl` and `finetune.json`. Ask a model tuned on "
                  "it with the same system and user messages. The system message:", "",
                  *(f"> {line}" for line in compiled.finetune.system_message.splitlines()), ""]
    if "classification" in formats:
        lines += [f"In `{CLASSIFICATION_FILE}` the text is the input's fields in declaration order, joined by "
                  f"`{FIELD_SEPARATOR}` (a list item by item; a number or a boolean as `name value`): what "
                  "`taskc run`'s local model reads. Map labels to ids with `labels.json`; for example:", "",
                  "```python",
                  "import json",
                  "from datasets import load_dataset",
                  "",
                  f'label2id = json.load(open("{LABELS_FILE}"))',
                  f'data = load_dataset("json", data_files="{CLASSIFICATION_FILE}")["train"]',
                  'data = data.map(lambda row: {"labels": label2id[row["label"]]})',
                  "```", ""]
    return lines


def _licence(task: TaskIR, rows: Sequence[TrainingRow], facts: RunFacts) -> list[str]:
    by_source = Counter(_base_source(row.source) for row in rows)
    lines = ["## Licence", ""]
    if task.pool is not None:
        lines.append(f"The inputs of pool examples come from the task's pool file `{task.pool.path}` (`pool.path`, "
                     f"relative to the task file `{facts.task_file}`). This card cannot know that file's licence, so "
                     "it states none and its front matter has no `license:` key: check where the pool came from and "
                     "add `license:` above before you publish this dataset.")
    else:
        lines.append("The task names no pool file. This card cannot know the licence of the inputs, so it states "
                     "none and its front matter has no `license:` key: add one before you publish this dataset.")
    lines.append("")
    if by_source["generated"] or by_source["llm"]:
        models = [model for model, _ in facts.generation_models] or [task.generate.model]
        lines.append(f"Generated inputs (source `generated`) and LLM labels (source `llm`) come from the model named "
                     f"under Generation models ({', '.join(f'`{model}`' for model in models)}) and are subject to "
                     "the terms of use of its provider.")
    else:
        lines.append("No example here was written or labelled by an LLM.")
    return [*lines, ""]


def _base_source(source: str) -> str:
    """The source a field view was made of ("label_model, dish only" -> "label_model")."""
    base, _, kept = source.rpartition(", ")
    return base if base and kept.endswith(FIELD_VIEW_SUFFIX) else source


def _share(count: int, total: int) -> str:
    return f"{count / total:.1%}" if total else "–"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    """Text that stays in one Markdown table cell."""
    return _one_line(text).replace("|", "\\|")


# -- the entry -----------------------------------------------------------------------------------------

def export(run_dir: Path, out_dir: Path, formats: Sequence[str] = FORMATS, *, spec: Path | None = None,
           weights: bool = True, force: bool = False) -> ExportResult:
    """Write RUN_DIR's training set into ``out_dir`` in ``formats``, with its dataset card.

    Raises ExportUsageError (bad RUN_DIR, ``out_dir`` or format), ExportError (a run that cannot be
    exported; ``problems`` lists each bad line) or ExportWriteError (``out_dir`` cannot be written)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        what = f"unknown format{'s' if len(unknown) != 1 else ''} {', '.join(unknown)}" if unknown else "no format"
        raise ExportUsageError(f"{what}; choose from {', '.join(FORMATS)}")
    formats = tuple(name for name in FORMATS if name in formats)
    _check_run_dir(run_dir)  # before the output directory: a mistyped RUN_DIR is the likelier mistake
    previous = _check_output_dir(out_dir, force)
    compiled, rows, facts = _load_run(run_dir, spec)
    task = compiled.ir
    # the card first: an export interrupted after it is still recognised as one, and runs again without --force
    card = dataset_card(compiled, rows, facts, formats, weights=weights).encode("utf-8")
    files: list[tuple[str, bytes, ExportedFile]] = [(CARD_FILE, card, ExportedFile(CARD_FILE, None, "dataset card"))]
    if "messages" in formats:
        files.append((MESSAGES_FILE, jsonl_bytes(message_rows(compiled, rows)),
                      ExportedFile(MESSAGES_FILE, len(rows), "chat examples")))
    if "classification" in formats:
        files.append((CLASSIFICATION_FILE, jsonl_bytes(classification_rows(task, rows, weights=weights)),
                      ExportedFile(CLASSIFICATION_FILE, len(rows), "examples for a classification head")))
        files.append((LABELS_FILE, labels_bytes(task),
                      ExportedFile(LABELS_FILE, None, f"{len(task.class_names)} classes → index")))
    written = {name for name, _, _ in files}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, data, _ in files:
            write_atomic(out_dir / name, data)
        if previous:  # an earlier export's files of formats not asked for now would contradict the card
            for name in EXPORT_FILES:
                if name not in written:
                    (out_dir / name).unlink(missing_ok=True)
    except OSError as exc:
        where = exc.filename or out_dir
        raise ExportWriteError(f"cannot write {where}: {exc.strerror or exc}; nothing half-written was left behind") \
            from None
    warnings = [] if rows else [f"{run_dir / TRAINING_SET_FILE} has no examples: the files written are empty"]
    return ExportResult(out_dir, task.name, facts.spec_hash, len(rows), tuple(entry for _, _, entry in files),
                        tuple(warnings))


def _check_output_dir(out_dir: Path, force: bool) -> bool:
    """Whether ``out_dir`` holds an earlier export; ExportUsageError for a file, or a directory with other
    things in it (unless ``force``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportUsageError(f"{out_dir}: is a file, not a directory (-o names the directory to write)")
    if not out_dir.is_dir():
        return False
    try:
        entries = sorted(entry.name for entry in out_dir.iterdir())
    except OSError as exc:
        raise ExportWriteError(f"cannot read {out_dir}: {exc.strerror or exc}") from None
    if not entries:
        return False
    previous = looks_like_export(out_dir, entries)
    if not previous and not force:
        others = [name for name in entries if name not in EXPORT_FILES]
        shown = ", ".join(others[:3] or entries[:3]) + (", ..." if len(others) > 3 else "")
        raise ExportUsageError(f"{out_dir}: not empty and not an earlier export (it holds {shown}); choose an empty "
                               "or new directory, or pass --force to write the export files into it")
    return previous


def looks_like_export(out_dir: Path, entries: Sequence[str]) -> bool:
    """An earlier export: nothing but export files (and temporary files of an interrupted write), with a card
    that says it was written by `taskc export`."""
    def ours(name: str) -> bool:
        return name in EXPORT_FILES or (name.startswith(".") and name.endswith(".tmp")
                                        and any(name.startswith(f".{file}.") for file in EXPORT_FILES))

    if not all(ours(name) for name in entries) or CARD_FILE not in entries:
        return False
    try:
        head = (out_dir / CARD_FILE).read_text(encoding="utf-8")[:4096]
    except (OSError, UnicodeDecodeError):
        return False
    return CARD_MARKER in head


__all__ = ["CARD_FILE", "CLASSIFICATION_FILE", "EXPORT_FILES", "ExportError", "ExportResult", "ExportUsageError",
           "ExportWriteError", "ExportedFile", "FORMATS", "LABELS_FILE", "MESSAGES_FILE", "RunFacts", "TrainingRow",
           "classification_rows", "dataset_card", "export", "label_ids", "message_rows", "parse_formats",
           "parse_training_set", "size_category", "source_meaning"]
