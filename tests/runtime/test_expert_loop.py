"""The expert's loop after a run: questions to answer (and the answers used by the next run), lexicon
suggestions whose predicted effect holds when applied, several authors and their conflicts, the report's
pictures, phone-width layout and contrast."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from spec_edits import edit
from taskc.runtime.datasets import write_jsonl
from taskc.runtime.history import read_history
from taskc.runtime.report.pictures import CSS, contrast_ratio

from taskc.cli.main import main

SPEC = """\
taskc: 1
task:
  name: dishes
  description: Is a dish starchy?
input:
  dish: {type: string, description: The dish}
classes:
  starchy: {description: Built on a starch}
  light: {description: No starch}
lexicons:
  starch: [rice, pasta, bread]
  light_words: [salad, soup, grilled]
rationales:
  - id: starch_base
    class: starchy
    author: ana
    text: Rice, pasta and bread are starch.
    rule: mentions(dish, lexicon.starch)
  - id: light_dish
    class: light
    author: ben
    text: Salads, soups and grilled dishes are light.
    rule: mentions(dish, lexicon.light_words)
pool:
  path: pool.jsonl
  answers: answers.jsonl
generate:
  model: gpt-4o-mini
finetune:
  provider: local
eval:
  gold: gold.jsonl
  pass: accuracy >= 0.5
  split: {test_fraction: 0}
"""
MEATS = ["beef", "chicken", "pork", "tofu", "lamb", "duck", "shrimp", "salmon"]
POOL = ([f"{m} fried rice" for m in MEATS] + [f"{m} pasta bake" for m in MEATS] + [f"{m} bread pudding" for m in MEATS]
        + [f"{m} salad" for m in MEATS] + [f"{m} soup" for m in MEATS] + [f"grilled {m}" for m in MEATS]
        + [f"{m} lasagna soup" for m in MEATS] + [f"{m} lasagna salad" for m in MEATS]
        + ["rice salad", "pasta salad", "bread soup", "mystery stew", "lasagna", "chef's surprise", "house platter"])
GOLD = ([(f"{m} lasagna", "starchy") for m in ("beef", "veal", "spinach", "mushroom")]
        + [("lamb fried rice", "starchy"), ("tuna pasta", "starchy"), ("garlic bread", "starchy"),
           ("greek salad", "light"), ("miso soup", "light"), ("grilled trout", "light"), ("caesar salad", "light")])


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "dishes.task.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    write_jsonl(root / "pool.jsonl", [{"dish": d} for d in POOL])
    write_jsonl(root / "gold.jsonl", [{"dish": d, "label": lab} for d, lab in GOLD])
    return spec


@pytest.fixture(autouse=True)
def _offline(no_provider: None) -> None:
    """Every run here is offline."""


def test_a_suggestion_names_the_missing_words_and_its_predicted_effect_holds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    before = metrics["predictors"]["rules_then_model"]["all"]["accuracy"]
    suggestions = json.loads((run_dir / "suggestions.json").read_text())["suggestions"]
    top = suggestions[0]
    assert top["term"] == "lasagna" and top["lexicon"] == "starch" and top["kind"] == "addition"
    errors = round((1 - before) * len(GOLD))
    assert top["headline"] == "starch_base misses" and top["fixes"] == errors >= 3 and top["breaks"] == 0
    for s in suggestions:  # a word its lexicon already holds is never suggested for it
        assert s["term"] not in {"starch": ["rice", "pasta", "bread"],
                                 "light_words": ["salad", "soup", "grilled"]}[s["lexicon"]]
    assert main(["suggest", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "starchy: starch_base misses (lexicon.starch)" in out and 'add "lasagna" to lexicon.starch' in out
    assert f"fixes {errors} dev errors, breaks 0 correct items" in out
    markdown = (run_dir / "report.md").read_text()
    assert "## Suggestions" in markdown
    assert f"starchy: starch_base misses (lexicon.starch): lasagna (+{errors} −0)" in markdown

    # the expert applies it: the predicted effect holds on the rerun
    spec.write_text(edit(spec.read_text(), "starch: [rice, pasta, bread]", "starch: [rice, pasta, bread, lasagna]"))
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    after = json.loads((run_dir / "metrics.json").read_text())["predictors"]["rules_then_model"]["all"]
    items = len(GOLD)
    assert round(after["accuracy"] * items) == round(before * items) + top["fixes"] - top["breaks"]
    assert all(s["term"] != "lasagna" for s in json.loads((run_dir / "suggestions.json").read_text())["suggestions"])


def test_questions_are_diverse_and_the_answers_train_the_next_run_and_join_dev_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    spec.write_text(edit(spec.read_text(), "test_fraction: 0}", "test_fraction: 0.3}"))
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) in (0, 3)
    capsys.readouterr()
    questions = [json.loads(line) for line in (run_dir / "questions.jsonl").read_text().splitlines()]
    assert questions and all(q["label"] is None for q in questions)
    dishes = [q["dish"] for q in questions]
    assert "rice salad" in dishes or "pasta salad" in dishes  # the rules disagree there
    assert len(set(dishes)) == len(dishes)
    gold_dishes = {d for d, _ in GOLD}
    assert not gold_dishes & set(dishes)  # a gold item is never asked
    conflict = next(q for q in questions if q["dish"] in ("rice salad", "pasta salad"))
    assert set(conflict["question"]["votes"]["rules"]) == {"starch_base", "light_dish"}
    assert main(["ask", str(run_dir), "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. ") and "rules:" in out or "model:" in out
    assert main(["ask", str(run_dir), "--format", "jsonl", "-n", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == questions[:2]
    assert "## Questions for the expert" in (run_dir / "report.md").read_text()

    split_before = json.loads((run_dir / "metrics.json").read_text())["gold_split"]
    answered = [dict(q, label="starchy") for q in questions[:2]] + [dict(q) for q in questions[2:]]
    answered.append({"dish": "veal ragu", "label": "starchy"})  # an item the pool does not hold
    write_jsonl(spec.parent / "answers.jsonl", answered)  # the rest stay unanswered (label null)
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) in (0, 3)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["gold_split"]["test"] == split_before["test"]  # never in the test half
    assert metrics["gold_split"]["dev"] == split_before["dev"] + 3
    assert any("3 expert answers" in note for note in metrics["notes"])
    # the models trained on the answers that joined dev: their dev scores there are optimistic, and a note says so
    assert any(note.startswith("3 dev gold items are expert answers the models also trained on") and
               "the test half, which judges the criterion, holds none of them" in note for note in metrics["notes"])
    # the task file is the same, the run's input is not: the report says both
    assert "the same task file, 3 expert answers (the last run had 0)" in (run_dir / "report.md").read_text()
    assert [r["expert_answers"] for r in read_history(run_dir)] == [0, 3]
    pool = {row["dish"]: row for row in map(json.loads, (run_dir / "labeled_pool.jsonl").read_text().splitlines())}
    for q in questions[:2]:
        assert pool[q["dish"]]["label"] == "starchy" and pool[q["dish"]]["label_source"] == "expert"
    training = [json.loads(line) for line in (run_dir / "training_set.jsonl").read_text().splitlines()]
    expert = [row for row in training if row["source"] == "expert"]
    assert {row["input"]["dish"] for row in expert} == {q["dish"] for q in questions[:2]} | {"veal ragu"}
    assert all(row["weight"] == 2.0 for row in expert)
    assert max(row["weight"] for row in training if row["source"] == "label_model") <= 1.0
    asked = [json.loads(line)["dish"] for line in (run_dir / "questions.jsonl").read_text().splitlines()]
    assert not {q["dish"] for q in questions[:2]} & set(asked)  # answered: not asked again


def test_a_bad_answer_is_reported_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    (spec.parent / "answers.jsonl").write_text('{"dish": "x", "label": null}\n{"dish": "y", "label": "stachy"}\n')
    assert main(["run", str(spec), "-o", str(tmp_path / "run"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "answers.jsonl:2:" in err and "did you mean 'starchy'" in err


def test_authors_are_grouped_and_their_conflicts_listed_with_examples(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    authors = metrics["expert_loop"]["authors"]
    assert [a["author"] for a in authors["authors"]] == ["ana", "ben"]
    assert authors["authors"][0]["rationales"] == ["starch_base"]
    conflict = authors["conflicts"][0]
    assert conflict["authors"] == ["ana", "ben"] and conflict["rationales"] == ["starch_base", "light_dish"]
    assert conflict["pool_items"] >= 3 and conflict["example_pool_lines"]
    markdown = (run_dir / "report.md").read_text()
    section = markdown.split("## Authors")[1].split("\n## ")[0]
    assert "ana's `starch_base` (starchy) against ben's `light_dish` (light)" in section
    assert "rice salad" in section or "pasta salad" in section or "lasagna soup" in section

    # fmt keeps the author; diff groups by it
    assert main(["fmt", "--check", str(spec)]) in (0, 1)
    capsys.readouterr()
    assert main(["fmt", str(spec)]) == 0
    assert "author: ana" in spec.read_text() and "author: ben" in spec.read_text()
    old = spec.parent / "old.task.yaml"
    shutil.copy(spec, old)
    spec.write_text(edit(edit(spec.read_text(), "author: ben", "author: cleo"),
                         "Rice, pasta and bread are starch.", "Rice, pasta and bread are starches."))
    capsys.readouterr()
    assert main(["diff", str(old), str(spec)]) == 1  # 1: changes
    out = capsys.readouterr().out
    assert "  by ana:" in out and "  by cleo:" in out and out.index("by ana") < out.index("by cleo")
    assert "author: `ben` → `cleo`" in out or "author: ben → cleo" in out
    assert main(["diff", str(old), str(spec), "--format", "markdown"]) == 1
    assert "(by cleo)" in capsys.readouterr().out


def test_the_html_report_has_its_pictures_and_reads_at_phone_width(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    page = (run_dir / "report.html").read_text()
    assert '<meta name=viewport content="width=device-width,initial-scale=1">' in page
    assert 'aria-label="coverage and gold accuracy per rationale"' in page
    assert 'aria-label="conflicts between rules"' in page
    assert "<div class=scroll><table>" in page and "<table>" not in page.replace("<div class=scroll><table>", "")
    assert "<script" not in page


def _css_colours(css: str) -> list[tuple[str, str | None, str | None]]:
    """(selector, colour, background) of every rule of a stylesheet that sets either."""
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        colour = re.search(r"(?<![-\w])color:(#[0-9a-fA-F]{3,6})", body)
        background = re.search(r"background:(#[0-9a-fA-F]{3,6})", body)
        if colour or background:
            rules.append((selector.strip(), colour and colour.group(1), background and background.group(1)))
    return rules


def test_every_text_colour_of_the_report_has_a_contrast_of_at_least_4_5() -> None:
    from taskc.runtime.report import html, pictures

    css = html._CSS + CSS
    rules = _css_colours(css)
    body = next(colour for selector, colour, _ in rules if selector == "body")
    assert body is not None
    backgrounds = ["#ffffff"] + [bg for _, _, bg in rules if bg]
    checked = 0
    for selector, colour, _ in rules:
        for background in backgrounds:  # any text may sit on any of the page's backgrounds (a tag, a header)
            ratio = contrast_ratio(colour or body, background)
            assert ratio >= 4.5, f"{selector}: {colour or body} on {background} is {ratio:.2f}:1"
            checked += 1
    assert checked > 10
    for colour in (pictures.TEXT, pictures.MUTED):  # the pictures' text on white and on the track
        assert contrast_ratio(colour, "#ffffff") >= 4.5 and contrast_ratio(colour, pictures.TRACK) >= 4.5
    assert contrast_ratio("#000", "#fff") == pytest.approx(21.0)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists() and not shutil.which("chromium"),
                    reason="no headless chromium on this machine")
def test_the_screenshot_script_shoots_the_report_at_desktop_and_phone_width(tmp_path: Path) -> None:
    spec = _project(tmp_path / "project")
    run_dir = tmp_path / "run"
    assert main(["run", str(spec), "-o", str(run_dir), "-q"]) == 0
    script = Path(__file__).parents[2] / "bench" / "screenshot_report.py"
    done = subprocess.run([sys.executable, str(script), str(run_dir / "report.html"), "-o", str(tmp_path / "shots")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("report-1280.png", "report-390.png"):
        png = (tmp_path / "shots" / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_with_a_provider_the_questions_show_the_llm_vote(tmp_path: Path) -> None:
    from fake_openai import FakeOpenAI, default_content

    def responder(body: dict) -> str:
        if body["response_format"]["json_schema"]["name"] != "classification":
            return default_content(body)
        return json.dumps({"label": "light", "rationales": []})

    spec = _project(tmp_path / "project")
    spec.write_text(edit(spec.read_text(), "  model: gpt-4o-mini\n", "  model: gpt-4o-mini\n  per_rationale: 1\n"
                                                               "  per_call: 1\n"))
    run_dir = tmp_path / "run"
    with FakeOpenAI(responder=responder, seed=1) as server:
        assert main(["run", str(spec), "-o", str(run_dir), "--base-url", server.base_url, "-q"]) in (0, 3)
    questions = [json.loads(line)["question"] for line in (run_dir / "questions.jsonl").read_text().splitlines()]
    with_llm = [q for q in questions if q["votes"]["llm"] is not None]
    assert with_llm and all(q["votes"]["llm"] == "light" and "LLM: light" in q["why"] for q in with_llm)
    # the LLM labelled what the rules left open or in conflict: a conflicted item is asked with all its votes
    conflicted = [q for q in with_llm if len(q["votes"]["rules"]) == 2]
    assert conflicted and conflicted[0]["disagreement"] > 0


def test_near_duplicates_are_one_question_and_different_dishes_are_not() -> None:
    from taskc.runtime.questions import near_duplicates

    recipe = "edamame chili flakes garlic soy sauce sesame oil"
    assert near_duplicates(f"spicy edamame {recipe}", f"best ever spicy edamame {recipe}")
    assert near_duplicates("chicken tikka masala", "Chicken  Tikka masala".lower())
    assert not near_duplicates("banana", "banana bread")
    assert not near_duplicates("pumpkin soup", "pumpkin pie")
