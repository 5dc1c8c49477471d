"""The façade: `compile_task` runs every stage in order and returns a `CompileResult`.

load (YAML with positions) → structure (JSON Schema) → lowering (IR, expressions
parsed) → semantic passes → emitters (prompts, plan, configs, manifest). Each
stage reports into one `DiagnosticBag`; the emitters only run on a task without
errors. The result holds the IR and the compiled files as bytes (nothing is
written here), so `compile`, `diff` and `run` share exactly the same output.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import ir
from .call_plan import CallPlan, build_call_plan, estimate_run
from .configs import EvalConfig, FinetuneConfig, eval_config, finetune_config
from .diagnostics import Diagnostic, DiagnosticBag, Severity, Span, TaskcError
from .generation_calls import keyed_by_call
from .hashing import sha256_hex
from .loader import SourceDocument, load_task_file, parse_task_text
from .passes import run_passes
from .paths import SymlinkRefused, first_link_inside, write_atomic
from .plan import GenerationJob, build_plan, generation_cells
from .pricing import CostEstimate, estimate_cost
from .prompts import (
    CLASSIFY_PROMPT_PATH,
    PromptTemplates,
    RenderBudgetExceeded,
    RenderedPrompt,
    call_context,
    chat_messages,
    input_json,
    load_templates,
    render_bounded,
    template_context,
)
from .response_formats import classification_response_format, generation_response_format
from .work_budget import WorkLimits, env_name


@dataclass(frozen=True)
class CompiledTask:
    """Everything the runtime needs, frozen: the IR, the rendered prompts, the plan, every LLM call, the typed
    configs; the output files are rendered from it last (`files`)."""

    ir: ir.TaskIR
    templates: PromptTemplates
    prompts: Mapping[str, RenderedPrompt]  # read-only: output-relative prompt path -> its rendered messages
    plan: tuple[GenerationJob, ...]
    generation_format: dict[str, Any]  # JSON documents, sent and hashed as they are
    classification_format: dict[str, Any]
    finetune: FinetuneConfig
    eval: EvalConfig
    estimate: CostEstimate
    context: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)  # templates' data
    calls: CallPlan = field(default_factory=lambda: CallPlan((), None, None))  # every LLM call of a run
    input_hashes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)  # manifest

    @functools.cached_property
    def files(self) -> Mapping[str, bytes]:
        """Every compiled output file (output-relative path -> bytes), rendered on first use: `taskc run` never
        writes them, and a big plan's plan.json takes a while to render."""
        return MappingProxyType(_output_files(self))

    def classification_messages(self, values: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages that ask the LLM to classify one input (prompted baseline, pool labeler)."""
        context = {**self.context, "input_json": input_json(self.ir.fields, values)}
        return chat_messages(self.templates.render("classification", context))

    def training_messages(self, values: dict[str, Any], label: str) -> list[dict[str, str]]:
        """One fine-tuning example in the layout that finetune.json declares."""
        return [{"role": "system", "content": self.finetune.system_message},
                {"role": "user", "content": input_json(self.ir.fields, values)},
                {"role": "assistant", "content": label}]


@dataclass
class CompileResult:
    diagnostics: list[Diagnostic]
    sources: dict[str, str]
    compiled: CompiledTask | None = None
    task: ir.TaskIR | None = None

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)


def compile_task(path: str | Path, *, display_name: str | None = None, allow_outside: bool = False,
                 prices: dict[str, tuple[float, float]] | None = None, emit: bool = True,
                 text: str | None = None, plan_data: bool = True) -> CompileResult:
    """Compile a task file. Never raises for a bad file: problems come back as diagnostics.

    ``text`` is the file's content when it is not the file on disk (an editor's unsaved buffer): the file
    at ``path`` is then not read, but the files it names are still found relative to ``path``. Without
    ``plan_data`` (`taskc check`, the editor) the pool and gold files are not read to plan the calls that
    depend on them: the plan then holds the generation calls only."""
    path = Path(path)
    name = display_name or str(path)
    try:
        return _compile(path, name, allow_outside, prices, emit, text, plan_data)
    except (RecursionError, MemoryError) as exc:
        problem = f"the task file is too complex to compile ({type(exc).__name__})"
    except Exception as exc:  # a compiler bug must still come out as a diagnostic, never a traceback
        problem = f"internal compiler error: {type(exc).__name__}: {exc}; please report this with the task file"
    bag = DiagnosticBag()
    bag.error(Span(name, 1, 1), "E000", problem)
    return CompileResult(bag.sorted(), {})


def _compile(path: Path, name: str, allow_outside: bool, prices: dict[str, tuple[float, float]] | None,
             emit: bool, text: str | None = None, plan_data: bool = True) -> CompileResult:
    # Imported here: the structure check (jsonschema) and lowering (the Lark expression parser) are only
    # compiling's, and a process that only receives a compiled task (`taskc run`'s, from its model process:
    # runtime/model_process.py) does not load them, ~0.2 s before its first LLM call.
    from .lowering import lower_task
    from .structure import check_structure

    bag = DiagnosticBag()
    doc = load_task_file(path, name, bag) if text is None else parse_task_text(text, name, bag)
    sources = {name: doc.text} if doc else {}
    if doc is None or not doc.parsed or not check_structure(doc, bag):
        return CompileResult(bag.sorted(), sources)
    task = lower_task(doc, path.resolve().parent, bag, allow_outside)
    run_passes(task, doc, bag)
    result = CompileResult(bag.sorted(), sources, task=task)
    if bag.has_errors or not emit:
        return result
    compiled = _emit(task, doc, bag, prices, plan_data)
    result.diagnostics = bag.sorted()
    result.compiled = None if bag.has_errors else compiled
    return result


def _emit(task: ir.TaskIR, doc: SourceDocument, bag: DiagnosticBag,
          prices: dict[str, tuple[float, float]] | None, plan_data: bool = True) -> CompiledTask | None:
    templates = load_templates(task, bag, doc.span_of)
    if templates is None:
        return None
    context = template_context(task)
    span = doc.span_of(("generate", "templates")) if task.generate.templates else Span(task.source, 1, 1)
    limits = WorkLimits.from_env()
    try:
        if task.generate.templates:  # the task's own templates: rendered in a process with CPU/memory limits
            prompts = render_bounded(lambda: _render_prompts(task, templates, context, limits))
        else:
            prompts = _render_prompts(task, templates, context, limits)
    except PromptBudgetExceeded as exc:
        bag.error(exc.where(doc) or span, "E038", str(exc), exc.hint)
        return None
    except RenderBudgetExceeded as exc:
        bag.error(span, "E036", f"rendering a prompt template failed: {exc}",
                  "a template that loops or computes this much is refused: templates format the task's data")
        return None
    except Exception as exc:  # a template's runtime error (undefined name, sandbox refusal)
        bag.error(span, "E036", f"rendering a prompt template failed: {_template_error(exc)}")
        return None
    generation_format = generation_response_format(task)
    plan = tuple(keyed_by_call(build_plan(task, prompts, generation_format), prompts))
    compiled = CompiledTask(
        ir=task, templates=templates, prompts=MappingProxyType(prompts), plan=plan,
        generation_format=generation_format, classification_format=classification_response_format(task),
        finetune=finetune_config(task), eval=eval_config(task), estimate=estimate_cost(task, plan, prompts, prices),
        context=MappingProxyType(context))
    # the calls that depend on data (pool labeling, gold scoring) are planned from the pool and gold files
    calls = build_call_plan(task, plan, prompts, compiled.classification_messages, compiled.training_messages,
                            compiled.classification_format, read_data=plan_data)
    estimate = estimate_run(task, calls, compiled.estimate.examples, compiled.finetune.system_message, prices)
    inputs = _input_hashes(task, doc)  # read now: the input files may be gone when the outputs are rendered
    return dataclasses.replace(compiled, calls=calls, estimate=estimate, input_hashes=MappingProxyType(inputs))


def _template_error(exc: Exception) -> str:
    message = str(exc) or type(exc).__name__
    return message if len(message) < 200 else message[:197] + "..."


class PromptBudgetExceeded(Exception):
    """A rendered prompt, or all of them, over the work budget's byte caps (E038)."""

    def __init__(self, message: str, hint: str, rationale_index: int | None) -> None:
        super().__init__(message)
        self.hint, self.rationale_index = hint, rationale_index

    def where(self, doc: SourceDocument) -> Span | None:
        if self.rationale_index is None:
            return None
        return doc.span_of(("rationales", self.rationale_index))


def _render_prompts(task: ir.TaskIR, templates: PromptTemplates, base: dict[str, Any],
                    limits: WorkLimits) -> dict[str, RenderedPrompt]:
    """Every prompt of the plan, stopping at the first one over limits.prompt_bytes or when all of them pass
    limits.total_prompt_bytes (a big description repeated in every prompt), before rendering more."""
    rationales = {r["id"]: r for r in base["rationales"]}
    positions = {r.id: i for i, r in enumerate(task.rationales)}
    classes = {c["name"]: c for c in base["classes"]}
    prompts: dict[str, RenderedPrompt] = {}
    total = 0

    def keep(path: str, messages: Any, rationale_id: str | None) -> None:
        nonlocal total
        size = sum(len(m.content.encode("utf-8")) for m in messages)
        total += size
        where = positions.get(rationale_id) if rationale_id else None
        if size > limits.prompt_bytes:
            raise PromptBudgetExceeded(
                f"the prompt {path} renders to {size:,} bytes, over the cap of {limits.prompt_bytes:,}",
                f"shorten the description, rationales or examples it holds; the cap: {env_name('prompt_bytes')}",
                where)
        if total > limits.total_prompt_bytes:
            raise PromptBudgetExceeded(
                f"the prompts render to more than {limits.total_prompt_bytes:,} bytes in all (stopped at {path})",
                "every generation prompt repeats the task's description and classes: shorten them, or generate "
                f"for fewer cells; the cap: {env_name('total_prompt_bytes')}", where)
        prompts[path] = RenderedPrompt(path, messages)

    for cell in generation_cells(task):
        rationale = rationales[cell.rationale.id] if cell.rationale else None
        target = classes[cell.target_class]
        context = base | {"target_class": target, "rationale": rationale, "mode": cell.mode,
                          "count": task.generate.per_call}
        calls = max(1, math.ceil(cell.examples / task.generate.per_call))
        keep(cell.prompt_path, templates.render("generation", context | {"call": call_context(0)}),
             cell.rationale.id if cell.rationale else None)
        later = tuple(templates.render("generation", context | {"call": call_context(index)})
                      for index in range(1, calls))
        for messages in later:  # each call is capped like a prompt; the total counts the cell once
            if sum(len(m.content.encode("utf-8")) for m in messages) > limits.prompt_bytes:
                keep(cell.prompt_path, messages, cell.rationale.id if cell.rationale else None)
        prompts[cell.prompt_path] = dataclasses.replace(prompts[cell.prompt_path], later_calls=later)
    placeholder = base | {"input_json": "<the input as JSON>", "call": call_context(0)}
    keep(CLASSIFY_PROMPT_PATH, templates.render("classification", placeholder), None)
    return prompts


def dumps(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, two-space indent, UTF-8, one trailing newline."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _output_files(compiled: CompiledTask) -> dict[str, bytes]:
    from taskc._version import __version__

    task = compiled.ir
    files: dict[str, bytes] = {}
    for path, prompt in sorted(compiled.prompts.items()):
        files[path] = prompt.to_markdown().encode("utf-8")
    files["plan.json"] = dumps({
        "task": task.name,
        "jobs": [job.to_json() for job in compiled.plan],
        "classify": {"prompt": CLASSIFY_PROMPT_PATH, "model": task.generate.model,
                     "response_format": compiled.classification_format},
        "estimate": compiled.estimate.to_json(),
        "calls": [call.to_json(_price_table(task)) for call in compiled.calls.calls],
        "unplanned": list(compiled.calls.problems),
    })
    files["finetune.json"] = dumps(compiled.finetune.to_json())
    files["eval.json"] = dumps(compiled.eval.to_json())
    files["manifest.json"] = dumps({
        "taskc_version": __version__,
        "task": task.name,
        "inputs": dict(compiled.input_hashes),
        "outputs": {path: sha256_hex(data) for path, data in sorted(files.items())},
    })
    return files


def _price_table(task: ir.TaskIR) -> dict[str, tuple[float, float]]:
    from .pricing import builtin_prices

    return {**builtin_prices(), **dict(task.generate.prices)}


def named_files(data: Any) -> list[str]:
    """The project-relative files a task file's data names: lexicon files, templates, pool and gold set.

    Works on the raw data (a task with errors included), so `taskc diff --git` can fetch them too.
    """
    if not isinstance(data, dict):
        return []
    named: list[Any] = []
    lexicons = data.get("lexicons")
    if isinstance(lexicons, dict):
        named += [entry.get("file") for entry in lexicons.values() if isinstance(entry, dict)]
    for section, key in (("pool", "path"), ("eval", "gold")):
        if isinstance(data.get(section), dict):
            named.append(data[section].get(key))
    generate = data.get("generate")
    if isinstance(generate, dict) and isinstance(generate.get("templates"), dict):
        named += list(generate["templates"].values())
    return sorted({name for name in named if isinstance(name, str) and name})


def _input_hashes(task: ir.TaskIR, doc: SourceDocument) -> dict[str, str]:
    hashes = {Path(task.source).name: sha256_hex(doc.text)}
    for relative in named_files(doc.data):
        try:
            hashes[relative] = sha256_hex(task.data_path(relative).read_bytes())
        except (KeyError, OSError):
            hashes[relative] = "missing"
    return hashes


def write_outputs(files: Mapping[str, bytes], out_dir: Path) -> None:
    """Write compiled files atomically (temp file + rename) and remove stale prompt files; refuse an output
    directory that is or holds a symbolic link (a planted `prompts -> elsewhere` would redirect writes and
    deletions)."""
    _refuse_links(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts_dir = out_dir / "prompts"
    if prompts_dir.is_dir():
        for stale in prompts_dir.rglob("*.md"):
            if stale.relative_to(out_dir).as_posix() not in files:
                stale.unlink()
    for relative, data in files.items():
        write_atomic(out_dir / relative, data)


def _refuse_links(out_dir: Path) -> None:
    import errno

    if out_dir.is_symlink():
        raise SymlinkRefused(errno.ELOOP, "the output directory is a symbolic link; taskc writes only into a real "
                                          "directory", str(out_dir))
    link = first_link_inside(out_dir) if out_dir.is_dir() else None
    if link is not None:
        raise SymlinkRefused(errno.ELOOP, "it is a symbolic link inside the output directory; taskc does not write "
                                          "through links (remove it or choose another -o)", str(link))


def dump_ir(task: ir.TaskIR) -> str:
    """The IR as JSON, for `taskc compile --dump-ir`: what lowering and the passes produced."""
    import dataclasses

    from .expr_nodes import to_sexpr

    def convert(value: Any) -> Any:
        if isinstance(value, ir.Expression):
            return {"source": value.source, "compiled": to_sexpr(value.node) if value.node else None,
                    "at": f"{value.span.line}:{value.span.column}"}
        if isinstance(value, Span):
            return f"{value.line}:{value.column}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)
                    if f.name not in ("project_dir", "resolved_files")}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict) or hasattr(value, "items"):
            return {str(k): convert(v) for k, v in value.items()}
        return value

    return json.dumps(convert(task), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


__all__ = ["CompileResult", "CompiledTask", "TaskcError", "compile_task", "dump_ir", "write_outputs", "dumps"]
