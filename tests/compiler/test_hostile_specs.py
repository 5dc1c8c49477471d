"""Hostile and broken task files: the compiler answers every one with located diagnostics, never a crash.

Property-based: hypothesis mutates the keto example and invents expressions;
whatever comes out, `compile_task` returns diagnostics with real positions and
it compiles or fails with an error. A longer run of the same properties is bench/fuzz_compiler.py.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_edits import edit
from taskc.compiler.driver import compile_task
from taskc.compiler.loader import MAX_NODES

KETO = (Path(__file__).parents[2] / "examples" / "keto.task.yaml").read_text(encoding="utf-8")
FIRST_RULE = """rule: >-
      any(ingredients, i -> mentions(i, lexicon.rice_pasta_noodles)
                            and not mentions(i, lexicon.keto_substitutes)
                            and not mentions(i, lexicon.look_alikes))
"""
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

EXPRESSION_ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyz_ ()[],.\"'<>=!+-*/%#\\0123456789")
    + ["len", "count", "any", "all", "mentions", "matches", "lexicon.high_carb", "ingredients", "dish",
       "label", " and ", " or ", " not ", " implies ", " in ", "->", "\"keto\"", "__class__", "lambda", "(a+)+"])


def _compile_text(tmp_path: Path, text: str):
    project = tmp_path / "p"
    (project / "data").mkdir(parents=True, exist_ok=True)
    for name in ("keto_pool.jsonl", "keto_gold.jsonl"):
        (project / "data" / name).write_text('{"dish": "x", "ingredients": ["a", "b"], "label": "keto"}\n')
    spec = project / "fuzz.task.yaml"
    spec.write_text(text, encoding="utf-8")
    return compile_task(spec, display_name="fuzz.task.yaml")


def _assert_located(result, text: str) -> None:
    """Either it compiled, or it failed with at least one error, and every diagnostic has a real place."""
    assert result.compiled is not None or any(d.severity.value == "error" for d in result.diagnostics)
    lines = max(1, len(text.splitlines()))
    for diagnostic in result.diagnostics:
        assert diagnostic.code != "E000"
        assert 1 <= diagnostic.span.line <= lines + 1, diagnostic
        assert diagnostic.span.column >= 1


@FUZZ
@given(expression=st.lists(EXPRESSION_ALPHABET, min_size=1, max_size=25).map("".join))
def test_any_rule_text_gets_diagnostics_or_compiles(tmp_path_factory, expression: str) -> None:
    tmp_path = tmp_path_factory.mktemp("rule")
    quoted = expression.replace("\\", "\\\\").replace('"', '\\"')
    text = edit(KETO, FIRST_RULE, f'rule: "{quoted}"\n')
    result = _compile_text(tmp_path, text)
    _assert_located(result, text)


@FUZZ
@given(data=st.data())
def test_mutated_task_files_never_crash_the_compiler(tmp_path_factory, data) -> None:
    tmp_path = tmp_path_factory.mktemp("mutant")
    lines = KETO.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "duplicate", "garble", "dedent", "swap"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "garble":
            junk = data.draw(st.text(alphabet=":-[]{}&*!|>'\"#% \tabc", max_size=6))
            position = data.draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:position] + junk + lines[index][position:]
        elif action == "dedent":
            lines[index] = lines[index].lstrip()
        else:
            other = data.draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        if not lines:
            break
    text = "".join(lines)
    result = _compile_text(tmp_path, text)
    _assert_located(result, text)


def test_billion_laughs_is_rejected_quickly_in_bounded_memory(tmp_path: Path) -> None:
    bomb = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    bomb.append("task: *a9")
    result = _compile_text(tmp_path, "\n".join(bomb) + "\n")
    # The node limit (counted with aliases expanded) stops it: the 10^9 nodes are never built.
    # How fast and how small that is belongs to bench/, not to a timed assertion here.
    assert [d.code for d in result.diagnostics] == ["E002"]
    assert str(MAX_NODES) in result.diagnostics[0].message


def test_deep_nesting_is_rejected(tmp_path: Path) -> None:
    result = _compile_text(tmp_path, "task: " + "[" * 5000 + "]" * 5000 + "\n")
    assert [d.code for d in result.diagnostics] == ["E002"]


def test_deeply_nested_expression_is_rejected(tmp_path: Path) -> None:
    text = edit(KETO, "check: len(dish) <= 80", "check: " + "(" * 500 + "true" + ")" * 500)
    result = _compile_text(tmp_path, text)
    assert "E020" in {d.code for d in result.diagnostics}


def test_long_operator_chain_is_rejected_not_a_recursion_error(tmp_path: Path) -> None:
    chain = "+".join(["1"] * 1500)  # 2,999 characters: under the length limit, so the depth limit must catch it
    result = _compile_text(tmp_path, edit(KETO, "check: len(dish) <= 80", f"check: {chain} > 0"))
    assert [(d.code, "nests deeper than 60 levels" in d.message) for d in result.diagnostics] == [("E020", True)]


def test_python_tags_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = edit(KETO, "  name: keto\n", f"  name: !!python/object/apply:os.system ['touch {marker}']\n")
    result = _compile_text(tmp_path, text)
    assert [d.code for d in result.diagnostics] == ["E002"]
    assert not marker.exists()


def test_paths_cannot_leave_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    (tmp_path / "p" / "data").mkdir(parents=True)
    (tmp_path / "p" / "data" / "link.jsonl").symlink_to(outside)
    for path in ("../secret.jsonl", str(outside), "data/link.jsonl"):
        text = edit(KETO, "path: data/keto_pool.jsonl", f"path: {path}")
        result = _compile_text(tmp_path, text)
        assert "E034" in {d.code for d in result.diagnostics}, path
