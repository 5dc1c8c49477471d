"""`taskc diff`: the semantic diff of two compiled task files, its three renderings and the CLI.

The cases live in tests/diff_cases: `<case>.edit.yaml` are small edit scripts
applied to a copy of tests/fixtures/keto_v1.task.yaml (with tiny data files of our own,
so the snapshots do not move when the example's data does), and directories
hold old/new pairs (a tiny project with its own template, and a `case.yaml`). Each case file ends
with its expected text diff (see tests/golden.py), read back by the tests, so the edit and what
`taskc diff` says about it are read together; the markdown and JSON renderings stay pinned with
syrupy (tests/compiler/__snapshots__/test_diff.ambr). After an intended change of the text, rewrite the
expected sections with `PYTHONPATH=tests python tests/compiler/test_diff.py` and read the diff.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from golden import expected, with_expected
from spec_edits import edit
from taskc.compiler.diff_render import render, render_markdown, render_text
from taskc.compiler.driver import CompiledTask, compile_task
from taskc.compiler.semantic_diff import SpecDiff, diff_compiled

from taskc.cli.main import main

TESTS = Path(__file__).resolve().parents[1]
CASES = TESTS / "diff_cases"
KETO = TESTS / "fixtures" / "keto_v1.task.yaml"  # frozen, so edit scripts keep applying
EDIT_CASES = sorted(p.name.removesuffix(".edit.yaml") for p in CASES.glob("*.edit.yaml"))
PAIR_CASES = sorted(p.name for p in CASES.iterdir() if (p / "old").is_dir())
SNAPSHOT_FORMATS = ("markdown", "json")  # the text rendering is pinned in the case files


def apply_edits(text: str, script: Path) -> str:
    """Apply an edit script: each `replace` must occur exactly `count` times (once unless it says)."""
    for step in yaml.safe_load(script.read_text(encoding="utf-8"))["edits"]:  # the expected section is comments
        try:
            text = edit(text, step["replace"], step["with"], count=step.get("count", 1))
        except AssertionError as error:
            raise AssertionError(f"{script.name}: {error}") from None
    return text


def keto_copy(root: Path, text: str | None = None) -> Path:
    """A keto project under ``root`` with tiny data files; the task file's text may be replaced."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "keto_pool.jsonl").write_text(
        '{"dish": "Cheese omelette", "ingredients": ["eggs", "cheese", "butter"]}\n', encoding="utf-8")
    (root / "data" / "keto_gold.jsonl").write_text(
        '{"dish": "Pancakes", "ingredients": ["flour", "milk", "sugar"], "label": "not_keto"}\n', encoding="utf-8")
    spec = root / "keto.task.yaml"
    spec.write_text(KETO.read_text(encoding="utf-8") if text is None else text, encoding="utf-8")
    return spec


def compiled(path: Path, label: str) -> CompiledTask:
    result = compile_task(path, display_name=label)
    assert result.compiled is not None, [d.message for d in result.diagnostics]
    return result.compiled


def case_paths(case: str, tmp_path: Path) -> tuple[Path, Path]:
    if case in PAIR_CASES:
        old, new = (CASES / case / side for side in ("old", "new"))
        return next(old.glob("*.task.yaml")), next(new.glob("*.task.yaml"))
    old_spec = keto_copy(tmp_path / "a")
    new_spec = keto_copy(tmp_path / "b", apply_edits(old_spec.read_text(encoding="utf-8"),
                                                     CASES / f"{case}.edit.yaml"))
    return old_spec, new_spec


def case_diff(case: str, tmp_path: Path) -> SpecDiff:
    old, new = case_paths(case, tmp_path)
    return diff_compiled(compiled(old, f"a/{old.name}"), compiled(new, f"b/{new.name}"),
                         f"a/{old.name}", f"b/{new.name}")


def test_every_case_is_listed() -> None:
    assert set(EDIT_CASES) | set(PAIR_CASES) == {
        "rationale_added", "rule_changed", "lexicon_word_removed", "class_renamed",
        "generation_count_changed", "template_changed"}


def case_file(case: str) -> Path:
    """The file that holds a case's expected text: its edit script, or an old/new pair's case.yaml."""
    return CASES / case / "case.yaml" if case in PAIR_CASES else CASES / f"{case}.edit.yaml"


def diff_prints(case: str) -> str:
    """The expected section's title: the command that prints the text (pairs: old/ as a/, new/ as b/)."""
    name = "keto.task.yaml" if case in EDIT_CASES else next((CASES / case / "old").glob("*.task.yaml")).name
    return f"taskc diff a/{name} b/{name} prints:"


def _checked(output: str, tmp_path: Path) -> str:
    assert str(tmp_path) not in output and str(TESTS) not in output
    assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", output), "no timestamps in diff output"
    return output


@pytest.mark.parametrize("case", EDIT_CASES + PAIR_CASES)
def test_diff_text_is_what_the_case_file_says(case: str, tmp_path: Path) -> None:
    title, text = expected(case_file(case).read_text(encoding="utf-8"))
    assert title == diff_prints(case)
    assert _checked(render(case_diff(case, tmp_path), "text"), tmp_path) == text


@pytest.mark.parametrize("fmt", SNAPSHOT_FORMATS)
@pytest.mark.parametrize("case", EDIT_CASES + PAIR_CASES)
def test_diff_snapshot(case: str, fmt: str, tmp_path: Path, snapshot) -> None:
    assert _checked(render(case_diff(case, tmp_path), fmt), tmp_path) == snapshot


def update_case_files() -> None:
    """Rewrite each case's expected text with what the diff renders now (only after an intended change of
    the output; read the diff)."""
    import tempfile

    for case in EDIT_CASES + PAIR_CASES:
        path = case_file(case)
        with tempfile.TemporaryDirectory() as scratch:
            text = render(case_diff(case, Path(scratch)), "text")
        path.write_text(with_expected(path.read_text(encoding="utf-8") if path.exists() else "", diff_prints(case),
                                      text), encoding="utf-8")


# -- what each case must say, independent of the snapshots ---------------------------------------------

def test_rationale_added_names_it_and_its_prompts(tmp_path: Path) -> None:
    diff = case_diff("rationale_added", tmp_path)
    assert [(e.kind, e.key, e.status) for e in diff.entities] == [("rationale", "sweet_sauce", "added")]
    paths = {p.path: p.status for p in diff.prompts}
    assert paths == {"prompts/classify.md": "changed", "prompts/generate/not_keto/sweet_sauce.md": "added",
                     "prompts/generate/keto/sweet_sauce.md": "added"}
    classify = next(p for p in diff.prompts if p.path == "prompts/classify.md")
    assert any(line.startswith("+- [sweet_sauce] → not_keto: Ketchup") for line in classify.diff)
    before, after = diff.plan.before, diff.plan.after
    # 30 own examples and 10 near misses, 10 per call
    assert after.calls_by_phase["generate"] == before.calls_by_phase["generate"] + 4
    assert after.examples_per_class["not_keto"] == before.examples_per_class["not_keto"] + 30
    assert after.cost_usd is not None and before.cost_usd is not None and after.cost_usd > before.cost_usd
    # the classification prompt holds every rationale: every classification is new work, and the count says so
    classifying = {phase: after.calls_by_phase[phase] for phase in ("label_pool", "score_gold")
                   if after.calls_by_phase.get(phase)}
    assert classifying.get("score_gold") == 1  # the one gold item
    assert diff.plan.new_by_phase == {"generate": 4} | classifying
    assert diff.plan.new_calls == 4 + sum(classifying.values()) and diff.plan.every_classification
    assert diff.plan.dropped_calls == sum(before.calls_by_phase.get(p, 0) for p in ("label_pool", "score_gold"))
    text = render_text(diff)
    assert "+ sweet_sauce" in text and "LLM calls" in text and "28 →" in text
    assert "(their cache key is new: 4 generation, " in text and "1 gold scoring" in text
    assert "the classification prompt holds every rationale" in text


def test_rule_changed_is_a_rationale_change_without_prompt_changes(tmp_path: Path) -> None:
    diff = case_diff("rule_changed", tmp_path)
    (change,) = diff.entities
    assert (change.kind, change.key, change.status) == ("rationale", "fat_and_protein", "changed")
    (rule,) = change.attributes
    assert rule.name == "rule" and ">= 2" in rule.before and ">= 3" in rule.after
    assert not diff.prompts and not diff.plan.changed  # rules label data; they are not in any prompt
    assert diff.has_changes


def test_lexicon_word_removed_is_reported_as_a_word(tmp_path: Path) -> None:
    diff = case_diff("lexicon_word_removed", tmp_path)
    (change,) = diff.entities
    assert (change.kind, change.key) == ("lexicon", "high_carb")
    assert change.attributes[0].removed == ("corn",) and change.attributes[0].added == ()


def test_class_renamed_is_removed_plus_added_with_moved_rationales(tmp_path: Path) -> None:
    diff = case_diff("class_renamed", tmp_path)
    classes = {(e.key, e.status) for e in diff.entities_of("class")}
    assert classes == {("not_keto", "removed"), ("too_carby", "added")}
    moved = {e.key: e.attributes for e in diff.entities_of("rationale")}
    assert set(moved) == {"starch_base", "added_sugar", "sweet_fruit"}
    assert all(a[0].name == "class" and (a[0].before, a[0].after) == ("not_keto", "too_carby")
               for a in moved.values())
    assert len(diff.notes) == 1 and "not_keto" in diff.notes[0] and "too_carby" in diff.notes[0]
    assert any(c.file == "eval.json" and c.path == "classes" for c in diff.configs)


def test_generation_count_changed_shows_the_plan_delta(tmp_path: Path) -> None:
    diff = case_diff("generation_count_changed", tmp_path)
    (change,) = diff.entities
    assert change.kind == "generate" and change.attributes[0].name == "per_rationale"
    assert (change.attributes[0].before, change.attributes[0].after) == (30, 40)
    # one more call of 10 examples for each of the 6 rationales; the calls already planned keep their
    # cache keys (a prompt asks for per_call examples, which did not change), so only 6 are new work
    assert diff.plan.after.calls == diff.plan.before.calls + 6
    assert diff.plan.new_calls == 6 and diff.plan.dropped_calls == 0
    assert diff.plan.after.examples_per_class == {"keto": 170, "not_keto": 170}
    # each rationale's prompt file gains the messages of its new fourth call, and nothing else changes
    assert len(diff.prompts) == 6
    for prompt in diff.prompts:
        changed = [line for line in prompt.diff[2:] if line[:1] in "+-" and not line.startswith("@@")]
        assert changed and all(line.startswith("+") for line in changed), prompt.diff
        assert "+## user (call 4)" in prompt.diff


def test_template_changed_shows_prompt_lines_and_the_template_file(tmp_path: Path) -> None:
    diff = case_diff("template_changed", tmp_path)
    assert [(e.kind, e.key) for e in diff.entities] == [("input file", "templates/generation.j2")]
    assert {p.path for p in diff.prompts} == {"prompts/generate/spam/prize.md", "prompts/generate/ham/personal.md"}
    assert all("+Keep every message under 160 characters." in p.diff for p in diff.prompts)
    assert diff.plan.new_calls == diff.plan.after.calls  # every call's messages changed: all new LLM work


def test_identical_specs_have_no_semantic_change(tmp_path: Path) -> None:
    spec = keto_copy(tmp_path / "a")
    diff = diff_compiled(compiled(spec, "a"), compiled(spec, "b"), "a", "b")
    assert not diff.has_changes
    assert "no semantic change" in render_text(diff)
    assert "No semantic change." in render_markdown(diff)
    assert json.loads(render(diff, "json"))["changed"] is False


def test_comment_and_layout_changes_are_not_semantic(tmp_path: Path) -> None:
    text = KETO.read_text(encoding="utf-8")
    relaid = edit(edit(text, "# Is this dish keto?", "# Is this dish keto? (edited comment)"),
                  "  per_call: 10\n", "  per_call:   10   # ten per call\n")
    old, new = keto_copy(tmp_path / "a"), keto_copy(tmp_path / "b", relaid)
    assert main(["diff", str(old), str(new)]) == 0


# -- markdown ------------------------------------------------------------------------------------

def test_markdown_puts_the_summary_table_first_and_prompts_in_details(tmp_path: Path) -> None:
    markdown = render_markdown(case_diff("rationale_added", tmp_path))
    lines = markdown.splitlines()
    first_content = next(i for i, line in enumerate(lines[1:], 1) if line and not line.startswith("`"))
    assert lines[first_content].startswith("| what | added | removed | changed |")
    assert markdown.count("<details>") == markdown.count("</details>") == 3
    assert markdown.count("```diff") == 3
    assert markdown.index("| plan (estimate)") < markdown.index("#### Changes") < markdown.index("#### Prompts")


def test_markdown_stays_under_the_comment_limit(tmp_path: Path) -> None:
    diff = case_diff("class_renamed", tmp_path)  # every prompt changes
    full = render_markdown(diff)
    short = render_markdown(diff, limit=6000)
    assert len(short) <= 6000 < len(full)
    assert "more prompt diff(s) not shown" in short
    assert short.count("<details>") == short.count("</details>")


def test_markdown_fences_survive_backticks_in_prompts(tmp_path: Path) -> None:
    # the keto constraints render as `code` in prompts; a rationale with a ``` run must not end the fence
    text = edit(KETO.read_text(encoding="utf-8"),
                "text: Bananas, mangoes", "text: Use ```fences``` sparingly. Bananas, mangoes")
    old, new = keto_copy(tmp_path / "a"), keto_copy(tmp_path / "b", text)
    markdown = render_markdown(diff_compiled(compiled(old, "a"), compiled(new, "b"), "a", "b"))
    assert "````diff" in markdown


def test_text_is_coloured_only_when_asked(tmp_path: Path) -> None:
    diff = case_diff("rule_changed", tmp_path)
    assert "\033[" in render_text(diff, color=True)
    assert "\033[" not in render_text(diff)


# -- the command line ------------------------------------------------------------------------------

def test_cli_exit_status_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = case_paths("rationale_added", tmp_path)
    assert main(["diff", str(old), str(old)]) == 0
    assert main(["diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "sweet_sauce" in out and "\033[" not in out  # not a terminal: no colour
    assert main(["diff", str(old), str(new), "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["changed"] is True
    assert main(["diff", str(old), str(new), "--format", "markdown"]) == 1
    assert capsys.readouterr().out.startswith("### taskc diff: `keto`")


@pytest.mark.parametrize("broken_side", ["old", "new"])
def test_cli_errors_on_either_side_exit_2_with_diagnostics(tmp_path: Path, broken_side: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    good = keto_copy(tmp_path / "good")
    misspelt = edit(KETO.read_text(encoding="utf-8"), "  - id: keto_swap\n    class: keto\n",
                    "  - id: keto_swap\n    class: kto\n")
    bad = keto_copy(tmp_path / "bad", misspelt)
    args = [str(bad), str(good)] if broken_side == "old" else [str(good), str(bad)]
    assert main(["diff", *args]) == 2
    captured = capsys.readouterr()
    assert "error[E024]" in captured.err and "kto" in captured.err and captured.out == ""
    assert "Traceback" not in captured.err


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = keto_copy(tmp_path)
    assert main(["diff", str(spec)]) == 2
    assert main(["diff", "--git", "HEAD", str(spec), str(spec)]) == 2
    assert "error" in capsys.readouterr().err


# -- --git -----------------------------------------------------------------------------------------

def _git(repo: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                    "-c", "commit.gpgsign=false", *arguments], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    shutil.copytree(CASES / "template_changed" / "old", root / "specs" / "tiny")
    keto_copy(root / "examples")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "start")
    return root


def test_git_reads_the_spec_and_its_template_from_the_revision(repo: Path, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    tiny = repo / "specs" / "tiny" / "tiny.task.yaml"
    assert main(["diff", "--git", "HEAD", str(tiny)]) == 0
    shutil.copy(CASES / "template_changed" / "new" / "templates" / "generation.j2",
                repo / "specs" / "tiny" / "templates" / "generation.j2")
    capsys.readouterr()
    assert main(["diff", "--git", "HEAD", str(tiny), "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["old_label"] == "HEAD:specs/tiny/tiny.task.yaml"
    assert [e["key"] for e in result["entities"]] == ["templates/generation.j2"]
    assert len(result["prompts"]) == 2


def test_git_compares_an_edited_keto_with_the_committed_one(repo: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    spec = repo / "examples" / "keto.task.yaml"
    spec.write_text(apply_edits(spec.read_text(encoding="utf-8"), CASES / "rationale_added.edit.yaml"),
                    encoding="utf-8")
    monkeypatch.chdir(repo / "examples")
    assert main(["diff", "--git", "HEAD", "keto.task.yaml", "--format", "markdown"]) == 1
    out = capsys.readouterr().out
    assert "`HEAD:examples/keto.task.yaml` → `keto.task.yaml`" in out
    assert "**rationale** `sweet_sauce` added" in out and str(repo) not in out


def test_git_problems_exit_2(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = repo / "examples" / "keto.task.yaml"
    assert main(["diff", "--git", "no-such-rev", str(spec)]) == 2
    assert "unknown git revision 'no-such-rev'" in capsys.readouterr().err
    assert main(["diff", "--git=--upload-pack=x", str(spec)]) == 2
    new = keto_copy(repo / "new_dir")
    assert main(["diff", "--git", "HEAD", str(new)]) == 2
    assert "does not exist at revision HEAD" in capsys.readouterr().err
    outside = keto_copy(tmp_path / "not_a_repo")
    assert main(["diff", "--git", "HEAD", str(outside)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_git_old_revision_with_errors_exits_2(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = repo / "examples" / "keto.task.yaml"
    good = spec.read_text(encoding="utf-8")
    spec.write_text(edit(good, "per_call: 10", "per_call: ten"), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", "broken")
    spec.write_text(good, encoding="utf-8")
    assert main(["diff", "--git", "HEAD", str(spec)]) == 2
    assert "HEAD:examples/keto.task.yaml:" in capsys.readouterr().err


if __name__ == "__main__":
    update_case_files()
