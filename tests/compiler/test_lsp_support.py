"""The language server's knowledge (`taskc.compiler.lsp_support`): positions, the outline under the cursor,
completions, hover text and definitions. Pure functions, so these run without pygls; tests/cli/test_lsp.py
drives the real server over stdio when pygls is installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from spec_edits import edit
from taskc.compiler import ir
from taskc.compiler.diagnostics import DiagnosticBag, Span
from taskc.compiler.functions import FUNCTIONS
from taskc.compiler.loader import MAX_FILE_BYTES, parse_task_text
from taskc.compiler.lsp_support import (
    Position,
    Range,
    compile_source,
    completions,
    cursor_context,
    decode_column,
    definition,
    editor_diagnostics,
    encode_column,
    function_signature,
    hover,
    schema_keys,
    span_range,
    split_lines,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = (ROOT / "spec" / "reference.md").read_text(encoding="utf-8")

TASK = """\
taskc: 1
task:
  name: tiny
  description: Is this dish keto?
input:
  dish: {type: string, description: The dish name}
  ingredients:
    type: list[string]
    description: Ingredients in lowercase
classes:
  keto: {description: Very low in net carbs}
  not_keto:
    description: Too much sugar or starch
lexicons:
  high_carb: [rice, pasta, bread, potato, polenta, couscous, noodles, flour, oats, corn, barley, rye, naan]
  sweet: {file: sweet.txt}
rationales:
- id: starch
  class: not_keto
  text: Rice, pasta and bread are starch.
  rule: >-
    any(ingredients, i -> mentions(i, lexicon.high_carb))
    or mentions(dish, lexicon.sweet)
  examples:
    - input: {dish: Risotto, ingredients: [arborio rice]}
      label: not_keto
- id: no_starch
  class: keto
  text: Meat and eggs are keto.
  rule: not any(ingredients, i -> mentions(i, ["crème fraîche", "🍚"]) or mentions(i, lexicon.high_carb))
constraints:
  - id: short
    check: label == "keto" implies len(dish) <= 80
generate:
  model: gpt-4o-mini
  per_call: 10
finetune:
  provider: local
eval:
  gold: gold.jsonl
  metrics: [accuracy, macro_f1]
  pass: accuracy >= 0.8 and recall["keto"] >= 0.8
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("project")
    (directory / "sweet.txt").write_text("sugar\nhoney  # a comment\nsyrup\n", encoding="utf-8")
    (directory / "gold.jsonl").write_text(
        '{"dish": "Steak", "ingredients": ["beef"], "label": "keto"}\n'
        '{"dish": "Risotto", "ingredients": ["rice"], "label": "not_keto"}\n', encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def task(project: Path) -> ir.TaskIR:
    result = compile_source(project / "tiny.task.yaml", TASK)
    assert result.ok and result.task is not None, result.diagnostics
    return result.task


def at(needle: str, offset: int = 0, text: str = TASK) -> tuple[int, int]:
    """(line, UTF-16 character) of ``needle`` plus ``offset`` code points, as an editor sends it."""
    for number, line in enumerate(text.split("\n")):
        if needle in line:
            return number, encode_column(line, line.index(needle) + offset)
    raise AssertionError(needle)


# -- positions ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("encoding", "expected"), [("utf-16", [0, 1, 2, 4, 5]), ("utf-8", [0, 1, 3, 7, 8]),
                                                     ("utf-32", [0, 1, 2, 3, 4])])
def test_columns_count_the_encodings_code_units(encoding: str, expected: list[int]) -> None:
    line = "aé🍚b"  # 1, 2 and 4 UTF-8 bytes; the emoji is two UTF-16 units
    assert [encode_column(line, index, encoding) for index in range(5)] == expected
    assert [decode_column(line, character, encoding) for character in expected] == [0, 1, 2, 3, 4]


def test_a_column_inside_a_surrogate_pair_stops_before_the_character() -> None:
    assert decode_column("🍚x", 1) == 0 and decode_column("🍚x", 2) == 1 and decode_column("x", 9) == 1


def test_a_span_becomes_an_lsp_range() -> None:
    lines = ["first", '  rule: mentions("🍚", lexicon.sweat)']
    column = lines[1].index("lexicon") + 1
    span = Span("f", 2, column, 2, column + len("lexicon.sweat"))
    assert span_range(span, lines) == Range(Position(1, column), Position(1, column + 13))
    assert span_range(Span("f", 1, 3), lines) == Range(Position(0, 2), Position(0, 3))  # no end: one column
    assert span_range(Span("f", 3, 1), lines) == Range(Position(2, 0), Position(2, 1))  # past the last line


def test_lines_are_split_as_lsp_splits_them() -> None:
    assert split_lines("a\r\nb\rc\nd\u2028e") == ["a", "b", "c", "d\u2028e"]


# -- compiling the buffer ----------------------------------------------------------------------------------

def test_the_buffer_is_compiled_not_the_file_and_named_files_are_found_next_to_it(project: Path) -> None:
    path = project / "never-saved.task.yaml"
    broken = edit(TASK, "lexicon.high_carb))\n    or", "lexicon.high_crab))\n    or")
    result = compile_source(path, broken)
    assert not path.exists()
    assert [(d.code, d.message, d.hint) for d in result.diagnostics] == [
        ("E022", "unknown lexicon 'high_crab'", "did you mean 'high_carb'?")]
    [published] = editor_diagnostics(result.diagnostics, broken, str(path))
    line, character = at("lexicon.high_crab", 0, broken)
    assert published.range == Range(Position(line, character), Position(line, character + len("lexicon.high_crab")))
    assert (published.severity, published.code, published.source) == (1, "E022", "taskc")
    assert published.message == "unknown lexicon 'high_crab'\nhint: did you mean 'high_carb'?"
    sweet = compile_source(path, TASK).task
    assert sweet is not None and dict(sweet.lexicon_words())["sweet"] == ("sugar", "honey", "syrup")


def test_a_diagnostic_after_non_ascii_text_is_at_its_utf16_column(project: Path) -> None:
    text = edit(TASK, "lexicon.high_carb))\nconstraints", "lexicon.high_crab))\nconstraints")
    result = compile_source(project / "tiny.task.yaml", text)
    [published] = editor_diagnostics(result.diagnostics, text, str(project / "tiny.task.yaml"))
    line = text.split("\n")[published.range.start.line]
    assert "🍚" in line
    assert published.range.start.character == line.index("lexicon.high_crab") + 1  # 🍚 counts two units
    assert editor_diagnostics(result.diagnostics, text, str(project / "tiny.task.yaml"), "utf-32")[0].range.start \
        .character == line.index("lexicon.high_crab")


def test_warnings_and_diagnostics_of_other_files_are_published(project: Path) -> None:
    bag = DiagnosticBag()
    bag.warning(Span("elsewhere.txt", 3, 4), "W103", "lexicon 'x' is never used")
    [published] = editor_diagnostics(bag.items, TASK, "tiny.task.yaml")
    assert published.severity == 2 and published.range.start == Position(0, 0)
    assert published.message == "elsewhere.txt:3:4: lexicon 'x' is never used"


def test_a_buffer_over_the_size_limit_is_refused_before_parsing(project: Path) -> None:
    result = compile_source(project / "big.task.yaml", "#" * (MAX_FILE_BYTES + 1))
    assert [d.code for d in result.diagnostics] == ["E002"]


# -- the outline under the cursor --------------------------------------------------------------------------

def _example_texts() -> list[tuple[str, str]]:
    texts = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8"))
             for p in [ROOT / "examples" / "keto.task.yaml", ROOT / "examples" / "support" / "support.task.yaml",
                       *sorted((ROOT / "tests" / "broken").glob("*.task.yaml"))]]
    texts.append(("reference", REFERENCE.split("```yaml\n", 1)[1].split("```", 1)[0]))
    texts.append(("this test", TASK))
    return texts


@pytest.mark.parametrize(("name", "text"), _example_texts(), ids=[name for name, _ in _example_texts()])
def test_the_outline_agrees_with_the_loader_on_every_key_and_value(name: str, text: str) -> None:
    doc = parse_task_text(text, name, DiagnosticBag())
    if not doc.parsed:
        pytest.skip("not YAML on purpose")
    lines = split_lines(text)
    for path, span in doc.key_spans.items():
        context = cursor_context(lines, span.line - 1, span.column - 1)
        assert (context.path, context.at_key) == (path[:-1], True), (path, context)
    for path, scalar in doc.scalars.items():
        if not path or isinstance(path[-1], int):
            continue
        span = scalar.span
        for line in range(span.line, span.end_line + 1):  # the value's first line and its continuations
            if line > len(lines) or not lines[line - 1].strip() or (line > span.line and span.end_column == 1
                                                                    and line == span.end_line):
                continue
            column = span.column - 1 if line == span.line else len(lines[line - 1])
            assert cursor_context(lines, line - 1, column).value_path == path, (path, line)


def test_the_outline_of_a_buffer_that_is_not_yaml_yet() -> None:
    lines = ["rationales:", "  - id: a", "    rule: >-", "      any(x", "  - id: b", "    cl", "x: {a: [1, {b: "]
    assert cursor_context(lines, 3, 6).value_path == ("rationales", 0, "rule")
    assert (cursor_context(lines, 5, 6).path, cursor_context(lines, 5, 6).at_key) == (("rationales", 1), True)
    assert cursor_context(lines, 6, len(lines[6])).value_path == ("x", "a", 1, "b")


# -- completion --------------------------------------------------------------------------------------------

def labels(task: ir.TaskIR | None, needle: str, offset: int, text: str = TASK) -> list[str]:
    line, character = at(needle, offset, text)
    return [entry.label for entry in completions(text, line, character, task)]


def test_completion_after_lexicon_dot_lists_the_lexicons(task: ir.TaskIR) -> None:
    assert labels(task, "lexicon.high_carb", 8) == ["high_carb", "sweet"]
    line, character = at("lexicon.sweet", 8)
    sweet = completions(TASK, line, character, task)[1]
    assert sweet.detail == "lexicon, 3 entries" and "(from `sweet.txt`)" in sweet.documentation


def test_completion_of_class_names(task: ir.TaskIR) -> None:
    assert labels(task, "class: not_keto", 7) == ["keto", "not_keto"]
    assert labels(task, 'recall["keto"]', 8) == ["keto", "not_keto"]
    assert labels(task, 'label == "keto"', 10) == ["keto", "not_keto"]
    assert labels(task, "label: not_keto", 7) == ["keto", "not_keto"]
    line, character = at("class: not_keto", 6)  # right after the colon: the space is inserted too
    assert completions(TASK, line, character, task)[0].insert_text == " keto"


def test_completion_in_expressions_offers_what_the_context_allows(task: ir.TaskIR) -> None:
    rule = labels(task, "any(ingredients, i -> mentions(i, lexicon.high_carb))", 0)
    assert rule[:3] == ["dish", "ingredients", "lexicon"] and set(FUNCTIONS) <= set(rule) and "label" not in rule
    check = labels(task, "len(dish) <= 80", 0)
    assert {"dish", "label", "lexicon", "len"} <= set(check)
    criterion = labels(task, "accuracy >= 0.8", 0)
    assert {"accuracy", "macro_f1", "recall", "min"} <= set(criterion) and "dish" not in criterion
    assert labels(task, '"crème fraîche"', 3) == []  # inside a string literal
    line, character = at("mentions(i, lexicon.high_carb)", 2)
    mentions = next(e for e in completions(TASK, line, character, task) if e.label == "mentions")
    assert mentions.detail == "mentions(a string, a list of strings) → boolean"
    assert mentions.documentation == FUNCTIONS["mentions"].summary


def test_completion_of_keys_from_the_schema(task: ir.TaskIR) -> None:
    line, character = at("  per_call: 10", 2)
    entries = {e.label: e for e in completions(TASK, line, character, task)}
    assert list(entries)[:3] == ["model", "temperature", "top_p"]
    assert entries["model"].detail == "string (required)" and entries["per_call"].insert_text == "per_call: "
    assert entries["per_call"].documentation == schema_keys(("generate",))["per_call"]["description"]
    assert labels(task, "- id: no_starch", 2) == ["id", "class", "text", "rule", "author", "examples"]
    assert labels(task, "      label: not_keto", 6) == ["input", "label", "note"]
    assert "taskc" in labels(None, "taskc: 1", 0)  # the top level, without any IR
    assert labels(task, "  dish: {type: string", 9) == ["type", "description", "values", "max_length",
                                                         "min_length", "optional"]


def test_completion_of_fixed_values(task: ir.TaskIR) -> None:
    assert set(labels(task, "provider: local", 10)) == {"local", "embeddings", "transformers", "openai"}
    assert "list[string]" in labels(task, "type: list[string]", 6)
    assert "coverage" in labels(task, "macro_f1]", 0)


# -- hover and definition ----------------------------------------------------------------------------------

def hover_text(task: ir.TaskIR | None, needle: str, offset: int = 0) -> str | None:
    line, character = at(needle, offset)
    found = hover(TASK, line, character, task)
    return found.markdown if found else None


def test_hover_on_a_function_shows_its_reference(task: ir.TaskIR) -> None:
    text = hover_text(task, "len(dish)", 1)
    assert text is not None and "len(a string or a list) → integer" in text
    assert FUNCTIONS["len"].summary in text and "1. a string or a list" in text


def test_hover_on_a_lexicon_a_rationale_a_class_and_a_key(task: ir.TaskIR) -> None:
    assert hover_text(task, "lexicon.high_carb", 10) == (
        "**lexicon `high_carb`**: 13 entries\n\nrice, pasta, bread, potato, polenta, couscous, noodles, flour, "
        "oats, corn, barley, rye, …")
    assert hover_text(task, "- id: starch", 7) == (
        "**rationale `starch`** → class `not_keto` (with a rule)\n\nRice, pasta and bread are starch.")
    assert hover_text(task, "class: not_keto", 9) == "**class `not_keto`**\n\nToo much sugar or starch"
    assert hover_text(task, "per_call", 2) == (
        "**`per_call`**: integer\n\n" + schema_keys(("generate",))["per_call"]["description"])
    assert hover_text(task, "  ingredients:", 3) == (
        "**input field `ingredients`**: list[string]\n\nIngredients in lowercase")
    assert (hover_text(task, "  description: Is this", 3) or "").startswith("**`description`**: string (required)")
    assert hover_text(task, "text: Meat", 8) is None


def test_a_hover_range_is_the_word(task: ir.TaskIR) -> None:
    line, character = at("lexicon.high_carb", 12)
    found = hover(TASK, line, character, task)
    start = at("lexicon.high_carb", 8)[1]
    assert found is not None and found.range == Range(Position(line, start), Position(line, start + 9))


def test_definitions(task: ir.TaskIR) -> None:
    def where(needle: str, offset: int) -> Range | None:
        line, character = at(needle, offset)
        return definition(TASK, line, character, task)

    high_carb = at("high_carb: [")
    assert where("lexicon.high_carb", 10) == Range(Position(*high_carb), Position(high_carb[0], 11))
    keto = at("keto: {description")
    assert where("class: keto", 8) == Range(Position(*keto), Position(keto[0], 6))
    assert where('recall["keto"]', 9) == where('label == "keto"', 11) == where("class: keto", 8)
    dish = at("dish: {type")
    assert where("len(dish)", 5) == Range(Position(*dish), Position(dish[0], 6))
    assert where("text: Meat", 8) is None and definition(TASK, *at("class: keto", 8), None) is None


def test_every_signature_is_the_one_the_reference_documents() -> None:
    for function in FUNCTIONS.values():
        call, returns = function_signature(function).rsplit(" → ", 1)
        assert re.search(rf"^\| `{re.escape(call)}` → {re.escape(returns)} \|", REFERENCE, re.MULTILINE), call


# -- the command without pygls -----------------------------------------------------------------------------

def test_without_pygls_the_command_says_how_to_install_it(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['pygls'] = None  # as if not installed\n",
                                               encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "taskc", "lsp"], capture_output=True, text=True, env=env,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and not done.stdout
    assert done.stderr == ("taskc: error: `taskc lsp` needs pygls, an optional dependency; install it with: "
                           "pip install 'taskc-compiler[lsp]'\n")
