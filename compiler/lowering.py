"""Stage 4: lower the structurally valid task data into the typed IR.

Lowering fills defaults, parses every expression with the Lark grammar (syntax
errors are located inside the expression, in the file), and reads lexicon
files. Every file the task names is resolved here, once, and confined to the
project (`TaskIR.data_path` gives it back to the later stages and the runtime).
It does not judge meaning: names, types and cross references are
checked by the passes that follow, over the IR.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import ir
from .diagnostics import DiagnosticBag
from .expr_parser import ExpressionSyntaxError, parse_expression
from .loader import JsonPath, SourceDocument
from .paths import PathOutsideProject, resolve_project_path
from .pricing import parse_price_table

MAX_LEXICON_FILE_BYTES = 1024 * 1024


def lower_task(doc: SourceDocument, project_dir: Path, bag: DiagnosticBag, allow_outside: bool = False) -> ir.TaskIR:
    data: dict[str, Any] = doc.data
    lower = _Lowering(doc, project_dir, bag, allow_outside)
    task = data["task"]
    return ir.TaskIR(
        name=task["name"],
        description=task["description"].strip(),
        instructions=(task.get("instructions") or "").strip() or None,
        source=doc.path,
        project_dir=str(project_dir),
        fields=tuple(lower.field(name, spec) for name, spec in data["input"].items()),
        classes=tuple(ir.TaskClass(name, spec["description"].strip(), doc.key_span_of(("classes", name)))
                      for name, spec in data["classes"].items()),
        lexicons=tuple(lower.lexicon(name, spec) for name, spec in (data.get("lexicons") or {}).items()),
        rationales=tuple(lower.rationale(i, spec) for i, spec in enumerate(data["rationales"])),
        constraints=tuple(lower.constraint(i, spec) for i, spec in enumerate(data.get("constraints") or [])),
        generate=lower.generate(data.get("generate")),
        finetune=lower.finetune(data.get("finetune")),
        eval=lower.eval(data.get("eval")),
        pool=lower.pool(data.get("pool")),
        span=doc.span_of(()),
        resolved_files=MappingProxyType(lower.resolved),  # filled by the calls above: keep it last
    )


class _Lowering:
    def __init__(self, doc: SourceDocument, project_dir: Path, bag: DiagnosticBag, allow_outside: bool) -> None:
        self.doc = doc
        self.project_dir = project_dir
        self.bag = bag
        self.allow_outside = allow_outside
        self.resolved: dict[str, str] = {}  # project-relative name -> the path it resolved to

    def expression(self, path: JsonPath) -> ir.Expression:
        source = self._get(path)
        span = self.doc.span_of(path)
        try:
            node = parse_expression(source)
        except ExpressionSyntaxError as exc:
            self.bag.error(self.doc.offset_span(path, exc.start, exc.end), "E020",
                           f"syntax error in expression: {exc.message}", exc.hint)
            node = None
        return ir.Expression(source, span, path, node)

    def _get(self, path: JsonPath) -> Any:
        value: Any = self.doc.data
        for part in path:
            value = value[part]
        return value

    def field(self, name: str, spec: dict[str, Any]) -> ir.InputField:
        return ir.InputField(
            name=name, type=spec["type"], description=(spec.get("description") or "").strip(),
            span=self.doc.key_span_of(("input", name)), values=tuple(spec.get("values") or ()),
            min_length=spec.get("min_length"), max_length=spec.get("max_length"),
            optional=bool(spec.get("optional", False)))

    def lexicon(self, name: str, spec: Any) -> ir.Lexicon:
        span = self.doc.key_span_of(("lexicons", name))
        if isinstance(spec, list):
            return ir.Lexicon(name, _normalize_words(spec), span)
        relative = spec["file"]
        words = self._read_lexicon_file(("lexicons", name, "file"), relative)
        return ir.Lexicon(name, words, span, relative)

    def _read_lexicon_file(self, path: JsonPath, relative: str) -> tuple[str, ...]:
        target = self.project_file(path, relative)
        if target is None:
            return ()
        try:
            if target.stat().st_size > MAX_LEXICON_FILE_BYTES:
                self.bag.error(self.doc.span_of(path), "E033", f"lexicon file '{relative}' is larger than 1 MiB")
                return ()
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.bag.error(self.doc.span_of(path), "E033", f"cannot read lexicon file '{relative}': {exc}")
            return ()
        lines = [line.split("#", 1)[0] for line in text.splitlines()]
        return _normalize_words(lines)

    def project_file(self, path: JsonPath, relative: str, must_exist: bool = True) -> Path | None:
        """Resolve a path named at ``path`` in the task file, reporting escapes and missing files."""
        try:
            target = resolve_project_path(self.project_dir, relative, self.allow_outside)
        except PathOutsideProject as exc:
            self.bag.error(self.doc.span_of(path), "E034", f"path not allowed: {exc}",
                           "keep data files next to the task file, or pass --allow-outside-paths")
            return None
        if must_exist and not target.is_file():
            self.bag.error(self.doc.span_of(path), "E033", f"file '{relative}' does not exist",
                           f"looked in the task file's directory ({self.project_dir.name or '.'}/)")
            return None
        self.resolved[relative] = str(target)
        return target

    def rationale(self, index: int, spec: dict[str, Any]) -> ir.Rationale:
        base: JsonPath = ("rationales", index)
        rule = self.expression(base + ("rule",)) if "rule" in spec else None
        examples = tuple(
            ir.WorkedExample(dict(example["input"]), example.get("label", spec["class"]),
                             (example.get("note") or "").strip() or None,
                             self.doc.span_of(base + ("examples", i)))
            for i, example in enumerate(spec.get("examples") or []))
        return ir.Rationale(spec["id"], spec["class"], " ".join(spec["text"].split()),
                            self.doc.span_of(base), rule, examples, (spec.get("author") or "").strip() or None)

    def constraint(self, index: int, spec: dict[str, Any]) -> ir.Constraint:
        base: JsonPath = ("constraints", index)
        return ir.Constraint(spec["id"], self.expression(base + ("check",)),
                             (spec.get("message") or "").strip() or None, self.doc.span_of(base))

    def generate(self, spec: dict[str, Any] | None) -> ir.GenerateSettings:
        if spec is None:
            return ir.GenerateSettings(model="gpt-4o-mini", span=self.doc.span_of(()))
        dedupe = spec.get("dedupe") or {}
        templates = {}
        for kind, relative in (spec.get("templates") or {}).items():
            if self.project_file(("generate", "templates", kind), relative) is not None:
                templates[kind] = relative
        prices = parse_price_table(spec.get("prices") or {})  # the schema has checked the shape
        return ir.GenerateSettings(
            model=spec["model"], span=self.doc.span_of(("generate",)),
            **_given(spec, temperature=float, top_p=_as_is, max_tokens=_as_is, per_rationale=_as_is,
                     near_misses=_as_is, per_class=_as_is, per_call=_as_is, seed=_as_is),
            dedupe=ir.DedupePolicy(**_given(dedupe, normalize=bool, near_duplicate_threshold=float,
                                            key=lambda key: tuple(key or ()))),
            templates=templates, prices=prices)

    def finetune(self, spec: dict[str, Any] | None) -> ir.FinetuneSettings:
        if spec is None:
            return ir.FinetuneSettings(provider="local", span=self.doc.span_of(()))
        return ir.FinetuneSettings(
            provider=spec["provider"], span=self.doc.span_of(("finetune",)), base_model=spec.get("base_model"),
            epochs=spec.get("epochs"), batch_size=spec.get("batch_size"),
            learning_rate_multiplier=spec.get("learning_rate_multiplier"), learning_rate=spec.get("learning_rate"),
            max_length=spec.get("max_length"), **_given(spec, validation_split=float, inputs_per_request=int),
            suffix=spec.get("suffix"),
            system_message=(spec.get("system_message") or "").strip() or None)

    def eval(self, spec: dict[str, Any] | None) -> ir.EvalSettings | None:
        if spec is None:
            return None
        self.project_file(("eval", "gold"), spec["gold"])
        split = {("split_seed" if key == "seed" else key): value for key, value in (spec.get("split") or {}).items()}
        return ir.EvalSettings(
            gold=spec["gold"], criterion=self.expression(("eval", "pass")), span=self.doc.span_of(("eval",)),
            **_given({k: v for k, v in spec.items() if v}, metrics=tuple, primary=_as_is),
            **_given(split, test_fraction=float, split_seed=int))

    def pool(self, spec: dict[str, Any] | None) -> ir.PoolSettings | None:
        if spec is None:
            return None
        self.project_file(("pool", "path"), spec["path"])
        if "answers" in spec:  # the first run comes before any answer: the file need not exist yet
            self.project_file(("pool", "answers"), spec["answers"], must_exist=False)
        return ir.PoolSettings(spec["path"], self.doc.span_of(("pool",)), spec.get("limit"), spec.get("answers"))


def _normalize_words(words: list[str]) -> tuple[str, ...]:
    """Lexicon entries are matched case-insensitively: store them lower-cased, trimmed, once each."""
    seen: dict[str, None] = {}
    for word in words:
        cleaned = " ".join(str(word).lower().split())
        if cleaned:
            seen.setdefault(cleaned, None)
    return tuple(seen)


def _as_is(value: Any) -> Any:
    return value


def _given(spec: Mapping[str, Any], **convert: Callable[[Any], Any]) -> dict[str, Any]:
    """The settings the task file gives, converted; the ones it leaves out take the IR's defaults,
    which are written once, in compiler/ir.py."""
    return {name: to(spec[name]) for name, to in convert.items() if name in spec}
