"""Emitter: render the generation and classification prompts with Jinja2.

Templates run in a bounded `SandboxedEnvironment` (`template_sandbox`) with `StrictUndefined`, and receive
only plain data built here (strings, numbers, lists, dicts), never IR objects,
so a template can reach nothing else. Text from the task file is passed as
values and is therefore never interpreted as template code: ``{{ x }}`` inside
a rationale comes out literally. Each template has two blocks, ``system`` and
``user``, rendered separately into the two chat messages, so text in a
rationale cannot forge a message boundary either.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from . import ir
from .diagnostics import DiagnosticBag

if TYPE_CHECKING:  # Jinja itself is imported where a template is compiled (template_sandbox.py)
    import jinja2

    from .template_sandbox import BoundedSandbox

TEMPLATE_KINDS = ("generation", "classification")
MAX_TEMPLATE_BYTES = 256 * 1024
CLASSIFY_PROMPT_PATH = "prompts/classify.md"


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class RenderedPrompt:
    path: str  # output-relative path of the prompt file
    messages: tuple[Message, ...]  # the first call's messages
    # the messages of the cell's further calls (call 2, 3, ...): each call of a generation cell is told its
    # number and a focus of its own, so that the calls do not repeat each other (see `CALL_FOCUS`)
    later_calls: tuple[tuple[Message, ...], ...] = ()

    @property
    def calls(self) -> int:
        return 1 + len(self.later_calls)

    def call_messages(self, call: int = 0) -> tuple[Message, ...]:
        """The messages of call ``call`` (0-based) of this prompt; a prompt of one call has only call 0."""
        return self.messages if call == 0 else self.later_calls[call - 1]

    def to_markdown(self) -> str:
        parts = [f"<!-- taskc prompt: {self.path} -->\n"]
        for message in self.messages:
            parts.append(f"\n## {message.role}\n\n{message.content}\n")
        for number, messages in enumerate(self.later_calls, start=2):
            # the system message is the same for every call of a cell: only what differs is written again
            for first, message in zip(self.messages, messages, strict=True):
                if message != first:
                    parts.append(f"\n## {message.role} (call {number})\n\n{message.content}\n")
        return "".join(parts)

    def as_chat(self, call: int = 0) -> list[dict[str, str]]:
        return chat_messages(self.call_messages(call))


def chat_messages(messages: tuple[Message, ...]) -> list[dict[str, str]]:
    """Messages as the chat completions API takes them."""
    return [{"role": m.role, "content": m.content} for m in messages]


@dataclass(frozen=True)
class PromptTemplates:
    """The two templates of a task (built-in or overridden), compiled in a sandbox, each with both blocks.

    Pickled as their sources (a compiled Jinja template holds code, which does not pickle) and compiled
    again when unpickled, each at its first render: a task compiled in another process (`taskc run`'s model
    process) renders the same prompts, and a run, whose plan holds every prompt rendered, mostly renders none."""

    templates: Mapping[str, jinja2.Template]
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # kind -> template text

    def __reduce__(self) -> tuple[Any, tuple[dict[str, str]]]:
        return compiled_templates, (dict(self.sources),)

    def render(self, kind: str, context: dict[str, Any]) -> tuple[Message, ...]:
        """The messages of one call. Equal texts come out as one object (`sys.intern`): every call of a phase
        sends the same system message, which a plan of 100,000 calls then holds, and pickles, once."""
        template = self.templates[kind]
        return tuple(Message(role, sys.intern("".join(template.blocks[role](template.new_context(context))).strip()))
                     for role in ROLES)


ROLES = ("system", "user")


@cache
def builtin_template(kind: str) -> str:
    return resources.files("taskc.compiler").joinpath(f"templates/{kind}.j2").read_text(encoding="utf-8")


def load_templates(task: ir.TaskIR, bag: DiagnosticBag, doc_span_of: Any) -> PromptTemplates | None:
    """Load built-in templates and the task's overrides; report unreadable or invalid ones."""
    sources: dict[str, tuple[str, str]] = {}
    for kind in TEMPLATE_KINDS:
        relative = task.generate.templates.get(kind)
        if relative is None:
            sources[kind] = (builtin_template(kind), f"<built-in {kind}.j2>")
            continue
        span = doc_span_of(("generate", "templates", kind))
        try:
            raw = task.data_path(relative).read_bytes()  # lowering resolved and confined it
            if len(raw) > MAX_TEMPLATE_BYTES:
                bag.error(span, "E035", f"template '{relative}' is larger than {MAX_TEMPLATE_BYTES} bytes")
                continue
            sources[kind] = (raw.decode("utf-8"), relative)
        except (OSError, UnicodeDecodeError) as exc:
            bag.error(span, "E033", f"cannot read template '{relative}': {exc}")
    if len(sources) != len(TEMPLATE_KINDS):
        return None
    import jinja2

    from .template_sandbox import sandbox

    environment = sandbox()
    templates: dict[str, jinja2.Template] = {}
    for kind, (text, name) in sources.items():
        span = doc_span_of(("generate", "templates", kind))
        try:
            template = environment.from_string(text)
        except jinja2.TemplateSyntaxError as exc:
            bag.error(span, "E035", f"template '{name}' line {exc.lineno}: {exc.message}")
            continue
        missing = [role for role in ROLES if role not in template.blocks]
        if missing:
            bag.error(span, "E035", f"template '{name}' must define blocks 'system' and 'user' "
                                    f"(missing: {', '.join(missing)})")
            continue
        templates[kind] = template
    if len(templates) != len(TEMPLATE_KINDS):
        return None
    return PromptTemplates(templates, {kind: text for kind, (text, _) in sources.items()})


def compiled_templates(sources: dict[str, str]) -> PromptTemplates:
    """Templates from sources `load_templates` checked already (how PromptTemplates unpickle)."""
    return PromptTemplates(_CompiledOnFirstUse(sources), sources)


class _CompiledOnFirstUse(Mapping[str, "jinja2.Template"]):
    """kind -> its template, compiled from the source the first time it is asked for."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = dict(sources)
        self._compiled: dict[str, jinja2.Template] = {}
        self._environment: BoundedSandbox | None = None

    def __getitem__(self, kind: str) -> jinja2.Template:
        template = self._compiled.get(kind)
        if template is None:
            if self._environment is None:
                from .template_sandbox import sandbox

                self._environment = sandbox()
            template = self._compiled[kind] = self._environment.from_string(self._sources[kind])
        return template

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


RENDER_CPU_SECONDS = 5  # CPU a compile may spend rendering custom templates
RENDER_MEMORY_BYTES = 1 << 30  # memory it may add while doing so


class RenderBudgetExceeded(Exception):
    """Rendering the custom templates went over the CPU or memory limit (or the renderer died)."""


def render_bounded(render: Callable[[], Any]) -> Any:
    """``render()`` in a forked child with CPU and memory limits (custom templates are untrusted code of a
    kind: Jinja's sandbox bounds what they reach, not how long they run); its result comes back pickled.
    Without fork (Windows) it runs here, bounded by the sandbox's own limits only."""
    if not hasattr(os, "fork"):
        return render()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: limit, render, send, exit without running the parent's cleanup
        status = 0
        try:
            os.close(reader)
            _limit_child()
            try:
                payload = pickle.dumps(("ok", render()))
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as a message
                payload = pickle.dumps(("error", exc if _picklable(exc) else RuntimeError(str(exc))))
            with os.fdopen(writer, "wb") as out:
                out.write(payload)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader, "rb") as incoming:
        data = incoming.read()
    _, wait_status = os.waitpid(pid, 0)
    if not data:
        signal_number = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
        why = (f"more than {RENDER_CPU_SECONDS} s of CPU" if signal_number in (signal.SIGXCPU, signal.SIGKILL)
               else f"more than {RENDER_MEMORY_BYTES >> 20} MiB of memory, or it crashed")
        raise RenderBudgetExceeded(f"rendering the templates took {why}")
    kind, value = pickle.loads(data)
    if kind == "error":
        if isinstance(value, MemoryError):
            raise RenderBudgetExceeded(f"rendering the templates took more than {RENDER_MEMORY_BYTES >> 20} MiB "
                                       "of memory")
        raise value
    return value


def _limit_child() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (RENDER_CPU_SECONDS, RENDER_CPU_SECONDS + 1))
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            data = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmData:"))
    except (OSError, StopIteration, ValueError):
        return
    limit = data + RENDER_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001
        return False
    return True


# What the second, third, ... call of a generation cell is asked to lean towards, in turn (the first call
# has no focus): the calls of one cell share everything else, and identical messages make a model answer
# with the same examples again. A call's focus depends only on its number, never on how many calls the
# cell has, so asking a cell for more examples adds calls and leaves the earlier ones' cache keys alone.
CALL_FOCUS = (
    "short inputs, with as little detail as a real one can have",
    "long inputs, with many details",
    "less common variants: regional, seasonal or unusual ones",
    "informal or messy wording, the way people really write",
    "cases close to the border of the class that still clearly belong to it",
    "a different setting or source than the usual one",
    "inputs that mix several of the elements the task mentions",
)


def call_context(index: int) -> dict[str, Any]:
    """What a generation template knows about the call it renders: `call.number` (from 1) and `call.focus`
    (None for the first call)."""
    return {"index": index, "number": index + 1,
            "focus": None if index == 0 else CALL_FOCUS[(index - 1) % len(CALL_FOCUS)]}


def input_json(fields: tuple[ir.InputField, ...], values: dict[str, Any]) -> str:
    """The canonical JSON of an input: fields in declaration order. Used in prompts and training data."""
    ordered = {f.name: values[f.name] for f in fields if f.name in values}
    return json.dumps(ordered, ensure_ascii=False)


def template_context(task: ir.TaskIR) -> dict[str, Any]:
    """The data every template sees. Plain values only: the sandbox has nothing else to reach."""
    return {
        "task": {"name": task.name, "description": task.description, "instructions": task.instructions},
        "fields": [{"name": f.name, "type": f.type, "description": f.description, "values": list(f.values),
                    "max_length": f.max_length, "min_length": f.min_length, "optional": f.optional}
                   for f in task.fields],
        "classes": [{"name": c.name, "description": c.description} for c in task.classes],
        "rationales": [_rationale_data(task, r) for r in task.rationales],
        "constraints": [{"id": c.id, "check": " ".join(c.check.source.split()), "message": c.message}
                        for c in task.constraints],
    }


def _rationale_data(task: ir.TaskIR, rationale: ir.Rationale) -> dict[str, Any]:
    return {
        "id": rationale.id, "class": rationale.class_name, "text": rationale.text,
        "rule": " ".join(rationale.rule.source.split()) if rationale.rule else None,
        "examples": [{"input_json": input_json(task.fields, dict(e.input)), "label": e.label, "note": e.note}
                     for e in rationale.examples],
    }
