"""A small task file cannot buy unbounded work: every cap of the work budget (E038), the bounded templates (E036)
and the closed type hole, each on a file that hung or exhausted memory before. Run as a user would, in a
subprocess with a generous timeout, so that a regression fails instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from spec_edits import edit

BASE = """\
taskc: 1
task: {name: t, description: DESCRIPTION}
input:
  dish: {type: string, description: Dish name}
LEXICONS
classes:
  a: {description: A}
  b: {description: B}
rationales:
  - id: r
    class: a
    text: t
    rule: RULE
  - id: s
    class: b
    text: t
    rule: not (RULE)
generate:
  model: gpt-4o-mini
GENERATE
"""


def _spec(tmp_path: Path, *, rule: str = "len(dish) > 1", description: str = "d", lexicons: str = "",
          generate: str = "", templates: dict[str, str] | None = None) -> Path:
    for name, body in (templates or {}).items():
        (tmp_path / f"{name}.j2").write_text("{% block system %}" + body + "{% endblock %}{% block user %}u"
                                             "{% endblock %}")
    if templates:
        generate += "  templates: {" + ", ".join(f"{kind}: {kind}.j2" for kind in templates) + "}\n"
    text = edit(BASE, "DESCRIPTION", description)
    text = edit(edit(text, "LEXICONS", lexicons), "RULE", rule, count=2)
    text = edit(text, "GENERATE\n", generate)
    spec = tmp_path / "t.task.yaml"
    spec.write_text(text)
    return spec


def _check(spec: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "taskc", "check", str(spec), *extra], capture_output=True,
                          text=True, timeout=60)


def test_a_plan_of_10_to_the_18_calls_is_refused_before_it_is_built(tmp_path: Path) -> None:
    done = _check(_spec(tmp_path, generate="  per_rationale: 1000000000000000000\n"))
    assert done.returncode == 1
    assert "E038" in done.stderr and "LLM calls, over the cap of 10,000" in done.stderr
    assert "TASKC_LIMIT_PLANNED_CALLS" in done.stderr


def test_whoever_runs_taskc_can_raise_a_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path, generate="  per_rationale: 6000\n  per_call: 1\n")
    assert "over the cap" in _check(spec).stderr
    monkeypatch.setenv("TASKC_LIMIT_PLANNED_CALLS", "100000")
    assert _check(spec).returncode == 0


def test_nested_lambdas_over_a_big_lexicon_are_refused_statically(tmp_path: Path) -> None:
    words = ", ".join(f"w{i}" for i in range(2000))
    rule = "any(lexicon.big, a -> any(lexicon.big, b -> any(lexicon.big, c -> contains(dish, a))))"
    done = _check(_spec(tmp_path, rule=rule, lexicons=f"lexicons:\n  big: [{words}]"))
    assert done.returncode == 1
    assert "E038" in done.stderr and "steps on one input" in done.stderr
    assert "t.task.yaml:14:11" in done.stderr  # at the rule


def test_one_lambda_over_a_lexicon_is_fine(tmp_path: Path) -> None:
    words = ", ".join(f"w{i}" for i in range(2000))
    done = _check(_spec(tmp_path, rule="any(lexicon.big, w -> contains(dish, w))",
                        lexicons=f"lexicons:\n  big: [{words}]"))
    assert done.returncode == 0, done.stderr


def test_a_big_description_copied_into_every_prompt_is_refused(tmp_path: Path) -> None:
    done = _check(_spec(tmp_path, description="x" * 600_000))
    assert done.returncode == 1
    assert "E038" in done.stderr and "over the cap of 524,288" in done.stderr
    assert "xxxxxxxxxx" not in done.stderr  # the message names sizes, it does not quote


@pytest.mark.parametrize(("template", "message"), [
    ("{{ (3 ** 1000000000) % 7 }}", "'**' would build a number"),
    ("{{ 'a' * 3000000000 }}", "'*' would build a str"),
    ("{{ ('a' * 900000) + ('a' * 900000) }}", "'+' would build a value"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "range() of more than"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(100) %}{% endfor %}{% endfor %}"
     "{% endfor %}", "s of CPU"),
])
def test_templates_are_rendered_under_a_budget(tmp_path: Path, template: str, message: str) -> None:
    done = _check(_spec(tmp_path, templates={"generation": template}))
    assert done.returncode == 1
    assert "E036" in done.stderr and message in done.stderr


def test_indexing_a_list_literal_has_the_element_type(tmp_path: Path) -> None:
    done = _check(_spec(tmp_path, rule="len([[], [dish]][1][0] * 3000000000) > 1"))
    assert done.returncode == 1
    assert "E025" in done.stderr and "'*' needs numbers, not string" in done.stderr
    assert _check(_spec(tmp_path, rule="len(words([[], [dish]][1][0])) > 1")).returncode == 0


def test_nan_and_infinity_are_not_numbers_a_task_file_may_hold(tmp_path: Path) -> None:
    done = _check(_spec(tmp_path, generate="  temperature: .nan\n"))
    assert done.returncode == 1
    assert "E012" in done.stderr and "must be a finite number, not nan" in done.stderr
    assert "must be a finite number, not inf" in _check(_spec(tmp_path, generate="  top_p: .inf\n")).stderr


def test_an_alias_repeating_a_big_scalar_counts_by_its_expanded_text(tmp_path: Path) -> None:
    spec = tmp_path / "alias.task.yaml"
    spec.write_text("taskc: 1\ntask: {name: t, description: &d " + "x" * 1_400_000 + "}\nx: ["
                    + ", ".join(["*d"] * 2000) + "]\n")
    done = _check(spec)
    assert done.returncode == 1
    assert "E002" in done.stderr and "characters of text" in done.stderr
    assert len(done.stderr) < 2000  # the scalar is not echoed
