"""`taskc fmt`: canonical layout, idempotence, comments kept, and never a change in the compiled output.

The proof that formatting cannot change what compiles runs over every example
and every test task file that compiles: each is compiled as it is, then
scrambled (re-indented, extra blank lines, trailing spaces), formatted, and
compiled again from a copy next to the same data files; the compiled files
must be identical except for the task file's own hash in manifest.json.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from taskc.compiler.driver import CompiledTask, compile_task
from taskc.compiler.formatting import format_file, format_text

from taskc.cli.main import main

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
ALL_SPECS = sorted([*ROOT.glob("examples/**/*.task.yaml"), *TESTS.glob("**/*.task.yaml")])


def _label(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _compiles(path: Path) -> bool:
    return compile_task(path).compiled is not None


FORMATTABLE = [p for p in ALL_SPECS if format_file(p).ok]
COMPILING = [p for p in ALL_SPECS if _compiles(p)]

MESSY = """\
# The file's first comment.
taskc: 1
task:
    name: tiny     # the name
    description: >-
        A folded description
        over two lines.


input:
    message: {type: string, description: "The text."}<TRAILING SPACES>
classes:
    spam:
        description: |
            Line one.

            Line three, after a blank line that is content.
    ham: {description: no}
rationales:
- id: prize   # a rationale
  class: spam
  text: 'Prizes you never entered for are scams.'
  rule: matches(lower(message),
        "prize")
# a comment before the end
""".replace("<TRAILING SPACES>", "   ")

MESSY_FORMATTED = """\
# The file's first comment.
taskc: 1
task:
  name: tiny       # the name
  description: >-
    A folded description
    over two lines.

input:
  message: {type: string, description: "The text."}
classes:
  spam:
    description: |
      Line one.

      Line three, after a blank line that is content.
  ham: {description: no}
rationales:
  - id: prize # a rationale
    class: spam
    text: 'Prizes you never entered for are scams.'
    rule: matches(lower(message),
          "prize")
# a comment before the end
"""


def test_the_corpus_is_not_empty() -> None:
    assert any(p.parent.name == "examples" for p in COMPILING)
    assert any("diff_cases" in p.parts for p in COMPILING)
    assert len(FORMATTABLE) >= len(COMPILING) > 2


def test_canonical_layout_of_a_messy_file() -> None:
    # comments at line ends keep the column they had (aligned comments stay aligned)
    result = format_text(MESSY, "messy.task.yaml")
    assert result.ok and result.changed
    assert result.formatted == MESSY_FORMATTED


@pytest.mark.parametrize("spec", FORMATTABLE, ids=_label)
def test_fmt_is_idempotent(spec: Path) -> None:
    once = format_file(spec).formatted
    assert once is not None
    assert format_text(once, spec.name).formatted == once


def test_fmt_is_idempotent_on_a_messy_file() -> None:
    once = format_text(MESSY, "m").formatted
    assert once is not None and format_text(once, "m").formatted == once


def _comments(text: str) -> list[str]:
    """Every comment of a YAML text, as ruamel.yaml's scanner sees it (not a `#` inside a string)."""
    from ruamel.yaml.tokens import CommentToken

    found = []
    loader = YAML(typ="rt")
    for token in loader.scan(text):
        comments = getattr(token, "_comment", None) or ()
        for item in _flatten(comments):
            if isinstance(item, CommentToken):
                found += [line.strip() for line in item.value.splitlines() if line.strip().startswith("#")]
    return found


def _flatten(value: object) -> list[object]:
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


@pytest.mark.parametrize("spec", FORMATTABLE, ids=_label)
def test_fmt_keeps_every_comment_in_order(spec: Path) -> None:
    original = spec.read_text(encoding="utf-8")
    formatted = format_file(spec).formatted or ""
    expected = [line.strip() for line in original.splitlines() if line.strip().startswith("#")]
    kept = [line.strip() for line in formatted.splitlines() if line.strip().startswith("#")]
    assert kept == expected  # full-line comments, in order
    assert sorted(_comments(formatted)) == sorted(_comments(original))  # and the ones at line ends


def test_fmt_keeps_comments_of_a_messy_file() -> None:
    formatted = format_text(MESSY, "m").formatted or ""
    for comment in ("# The file's first comment.", "# the name", "# a rationale", "# a comment before the end"):
        assert comment in formatted


def test_key_order_is_the_users() -> None:
    text = "taskc: 1\nclasses:\n  b: {description: B}\n  a: {description: A}\ninput:\n  x: {type: string}\n"
    formatted = format_text(text, "order.task.yaml").formatted or ""
    assert formatted.index("b:") < formatted.index("a:") and formatted.index("classes") < formatted.index("input")


def test_block_scalar_whitespace_is_content_and_is_kept() -> None:
    text = "task:\n  description: |\n    two spaces at the end  \n\n\n    after two blank lines\n"
    formatted = format_text(text, "block.task.yaml").formatted
    assert formatted == text


# -- formatting never changes the compiled output --------------------------------------------------

def _scramble(text: str) -> str:
    """The same data in another layout: wider indentation, extra blank lines, trailing spaces on keys."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=4, sequence=6, offset=4)
    yaml.width = 1 << 16
    out = io.StringIO()
    yaml.dump(yaml.load(text), out)
    scrambled = re.sub(r"(?m)^([a-z_]+:)$", r"\n\n\1   ", out.getvalue())
    return scrambled


def _without_task_hash(compiled: CompiledTask) -> dict[str, object]:
    files: dict[str, object] = {path: data for path, data in compiled.files.items() if path != "manifest.json"}
    manifest = json.loads(compiled.files["manifest.json"])
    del manifest["inputs"][Path(compiled.ir.source).name]
    files["manifest.json"] = manifest
    return files


def _copy_project(original: CompiledTask, spec: Path, target: Path, text: str) -> Path:
    """The task file with ``text`` in ``target``, next to copies of the files it names."""
    manifest = json.loads(original.files["manifest.json"])
    for relative in manifest["inputs"]:
        source = spec.parent / relative
        if relative != spec.name and source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / relative)
    copy = target / spec.name
    target.mkdir(parents=True, exist_ok=True)
    copy.write_text(text, encoding="utf-8")
    return copy


@pytest.mark.parametrize("spec", COMPILING, ids=_label)
def test_formatting_never_changes_the_compiled_output(spec: Path, tmp_path: Path) -> None:
    original = compile_task(spec).compiled
    assert original is not None
    expected = _without_task_hash(original)
    text = spec.read_text(encoding="utf-8")
    scrambled = _scramble(text)
    for name, variant in (("as_is", text), ("scrambled", scrambled)):
        formatted = format_text(variant, spec.name).formatted
        assert formatted is not None
        copy = _copy_project(original, spec, tmp_path / name, formatted)
        again = compile_task(copy).compiled
        assert again is not None, f"{name}: the formatted file no longer compiles"
        assert _without_task_hash(again) == expected, f"{name}: formatting changed the compiled output"
    assert format_text(scrambled, spec.name).formatted != scrambled  # the scramble did move something


def test_a_formatted_file_shows_no_semantic_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = ROOT / "examples" / "keto.task.yaml"
    original = compile_task(old).compiled
    assert original is not None
    formatted = format_text(_scramble(old.read_text(encoding="utf-8")), old.name).formatted or ""
    new = _copy_project(original, old, tmp_path, formatted)
    assert main(["diff", str(old), str(new)]) == 0


# -- the command line ------------------------------------------------------------------------------

def test_cli_rewrites_checks_and_diffs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "messy.task.yaml"
    spec.write_text(MESSY, encoding="utf-8")
    spec.chmod(0o640)
    assert main(["fmt", "--check", str(spec)]) == 1
    assert "would reformat" in capsys.readouterr().err
    assert main(["fmt", "--diff", str(spec)]) == 0
    assert "-    name: tiny" in capsys.readouterr().out
    assert spec.read_text(encoding="utf-8") == MESSY  # --check and --diff write nothing
    assert main(["fmt", str(spec)]) == 0
    assert spec.read_text(encoding="utf-8") == MESSY_FORMATTED
    assert spec.stat().st_mode & 0o777 == 0o640  # the rewrite keeps the file's permissions
    assert main(["fmt", "--check", str(spec)]) == 0
    assert "1 already formatted" in capsys.readouterr().err


def test_cli_formats_standard_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == MESSY_FORMATTED


@pytest.mark.parametrize("text, code", [
    ("task:\n  name: [unclosed\n", "E001"),
    ("task: 1\ntask: 2\n", "E003"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "E002"),
    ("key: !!python/object:os.system x\n", "E002"),
    ("\tkey: value\n", "E001"),
])
def test_yaml_errors_give_diagnostics_and_exit_1(text: str, code: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.task.yaml"
    spec.write_text(text, encoding="utf-8")
    assert main(["fmt", str(spec)]) == 1
    err = capsys.readouterr().err
    assert f"error[{code}]" in err and "Traceback" not in err
    assert spec.read_text(encoding="utf-8") == text


def test_unreadable_files_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "latin1.task.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["fmt", "--check", str(tmp_path / "missing.task.yaml"), str(tmp_path / "latin1.task.yaml")]) == 1
    err = capsys.readouterr().err
    assert "cannot read task file" in err and "not valid UTF-8" in err and "Traceback" not in err


def test_stdin_cannot_be_mixed_with_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt", "-", "x.task.yaml"]) == 2


def test_every_example_is_formatted() -> None:
    """The examples are what users copy: `taskc fmt --check examples/` holds on them."""
    examples = sorted(ROOT.glob("examples/**/*.task.yaml"))
    assert examples and [p.name for p in examples if format_file(p).changed] == []


def test_a_flow_list_over_several_lines_is_kept_as_written_and_moves_with_its_key() -> None:
    text = ("lexicons:\n    grains: [rice, pasta,  # the starches\n        noodles,\n        bread]\n"
            "    fats: [butter]\n")
    formatted = format_text(text, "f").formatted
    assert formatted == ("lexicons:\n  grains: [rice, pasta,  # the starches\n      noodles,\n      bread]\n"
                         "  fats: [butter]\n")
    assert format_text(formatted, "f").formatted == formatted


def test_a_plain_or_quoted_text_over_several_lines_is_not_joined() -> None:
    text = "rationales:\n- id: a\n  text: one two\n    three four\n  note: 'five\n    six'\n"
    formatted = format_text(text, "t").formatted
    assert formatted == "rationales:\n  - id: a\n    text: one two\n      three four\n    note: 'five\n      six'\n"


def test_comments_after_the_document_end_are_kept() -> None:
    text = "taskc: 1\nname:   x\n...\n# notes for the reviewer\n\n# and a second one   \n"
    expected = "taskc: 1\nname: x\n...\n# notes for the reviewer\n\n# and a second one\n"
    assert format_text(text, "e").formatted == expected


def test_a_comment_the_layout_would_lose_stops_the_formatting(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskc.compiler import formatting

    dropping = formatting._round_trip
    monkeypatch.setattr(formatting, "_round_trip", lambda text, name: dropping(text, name).replace("  # kept", ""))
    result = format_text("a: 1  # kept\nb: 2\n", "c.task.yaml")
    assert not result.ok
    [problem] = result.diagnostics
    assert (problem.span.line, problem.code) == (1, "E001")
    assert "would lose the comment '# kept'" in problem.message


def test_fmt_takes_directories_and_globs_as_check_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tasks" / "deep").mkdir(parents=True)
    (tmp_path / "tasks" / "a.task.yaml").write_text("taskc: 1\nname:    a\n")
    (tmp_path / "tasks" / "deep" / "b.task.yml").write_text("taskc: 1\n")
    (tmp_path / "tasks" / "notes.yaml").write_text("not:    a task file\n")
    assert main(["fmt", "--check", str(tmp_path / "tasks")]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {tmp_path / 'tasks' / 'a.task.yaml'}" in err and "2 task files:" in err
    assert main(["fmt", str(tmp_path / "tasks" / "**" / "*.task.y*ml")]) == 0
    assert (tmp_path / "tasks" / "a.task.yaml").read_text() == "taskc: 1\nname: a\n"
    assert (tmp_path / "tasks" / "notes.yaml").read_text() == "not:    a task file\n"
    assert main(["fmt", str(tmp_path / "tasks" / "deep" / "nothing-*.task.yaml")]) == 2


def test_an_anchored_flow_list_over_several_lines_still_formats() -> None:
    text = "a: &words [one,\n    two]\nb: *words\n"
    result = format_text(text, "anchored")
    assert result.ok and result.formatted is not None and "*words" in result.formatted


def test_a_dozen_multiline_lists_each_come_back_in_its_own_place() -> None:
    text = "lexicons:\n" + "".join(f"    l{i}: [a{i},\n        b{i}]\n" for i in range(12))
    formatted = format_text(text, "many").formatted
    assert formatted == "lexicons:\n" + "".join(f"  l{i}: [a{i},\n      b{i}]\n" for i in range(12))
