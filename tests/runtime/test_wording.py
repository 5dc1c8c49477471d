"""Wording that users read: one money format, plurals that agree, and a gold item listed once per report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from taskc.compiler.money import format_usd

from taskc.cli.main import main

SPEC = """\
taskc: 1
task:
  name: reviews
  description: Is a short restaurant review positive or negative?
input:
  text: {type: string, description: The review., max_length: 200}
classes:
  pos: {description: The reviewer liked it.}
  neg: {description: The reviewer did not like it.}
rationales:
  - id: praise
    class: pos
    text: Praise words mean the reviewer liked it.
    rule: matches(lower(text), "\\\\b(good|great|lovely|tasty)\\\\b")
  - id: enthusiasm
    class: pos
    text: Great means liked.
    rule: matches(lower(text), "\\\\bgreat\\\\b")
  - id: exclaim
    class: pos
    text: Just great means liked.
    rule: matches(lower(text), "\\\\bjust\\\\b")
  - id: complaint
    class: neg
    text: Complaint words mean the reviewer did not like it.
    rule: matches(lower(text), "\\\\b(bad|awful|rude|cold)\\\\b")
pool: {path: pool.jsonl}
generate: {model: gpt-4o-mini}
eval:
  gold: gold.jsonl
  pass: accuracy >= 0.5
  split: {test_fraction: 0}
"""
POOL = ["good food", "great service", "lovely staff", "tasty soup", "good value and great view", "great pasta",
        "bad food", "awful service", "rude staff", "cold soup", "bad value and awful view", "cold pasta",
        "nothing to say", "good but cold", "just great", "just lovely"]
GOLD = [("good staff", "pos"), ("great soup", "pos"), ("tasty food", "pos"), ("lovely view", "pos"),
        ("awful staff", "neg"), ("rude service", "neg"), ("cold food", "neg"), ("bad soup and bad pasta", "neg"),
        ("sarcastic: great, just great", "neg"), ("oh great, just great", "neg")]


@pytest.mark.parametrize("amount, signed, text", [
    (0.0151, False, "$0.0151"),
    (0.002668, True, "+$0.00267"),
    (-0.002668, True, "-$0.00267"),
    (0.000003, True, "+$0.000003"),
    (0.0, False, "$0.00"),
    (0.5, False, "$0.500"),
    (0.99996, False, "$1.00"),
    (12.345, False, "$12.35"),
    (1234.5, False, "$1,234.50"),
])
def test_one_money_format(amount: float, signed: bool, text: str) -> None:
    assert format_usd(amount, signed=signed) == text


@pytest.fixture
def triple_vote(tmp_path: Path, no_provider: None) -> Path:
    """Two gold items that three rationales vote the wrong class on."""
    (tmp_path / "r.task.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in POOL), encoding="utf-8")
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in GOLD),
                                         encoding="utf-8")
    return tmp_path / "r.task.yaml"


def test_a_gold_item_is_listed_once_with_every_rationale_that_voted(triple_vote: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(triple_vote), "-o", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.count("sarcastic: great, just great") == 1
    assert "wrong votes on gold lines 9, 10: shown above" in out
    assert "voted wrong on 2 errors" in out
    markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    listed = [line for line in markdown.splitlines() if "sarcastic: great, just great" in line]
    assert listed == ["- sarcastic: great, just great — gold **neg**, predicted pos; rules: praise→pos, "
                      "enthusiasm→pos, exclaim→pos (line 9)"]
    enthusiasm = markdown.split("### `enthusiasm` → pos")[1].split("###")[0]
    assert "Voted wrong on 2 misclassified items:" in enthusiasm
    assert "- Also listed above: lines 9 and 10 of the gold file (under `praise`)." in enthusiasm
    steps = markdown.split("## Next steps")[1]
    assert "Also listed above: lines 9 and 10 of the gold file (under `praise`)." in steps
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert page.count("sarcastic: great, just great") == 1
    assert "Also listed above: lines 9 and 10 of the gold file (under <code>praise</code>)." in page


def test_a_count_of_one_reads_singular_in_every_message_and_report(tmp_path: Path, no_provider: None,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.task.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "pool.jsonl").write_text(json.dumps({"text": "good food"}) + "\n", encoding="utf-8")
    (tmp_path / "gold.jsonl").write_text(json.dumps({"text": "great soup", "label": "pos"}) + "\n", encoding="utf-8")
    main(["run", str(tmp_path / "r.task.yaml"), "-o", str(tmp_path / "run")])
    captured = capsys.readouterr()
    run = tmp_path / "run"
    texts = {"stdout": captured.out, "stderr": captured.err, "report.md": (run / "report.md").read_text("utf-8"),
             "report.html": (run / "report.html").read_text("utf-8")}
    assert "pool labeling: started (1 item)" in captured.err and "On the pool (1 item)" in texts["report.md"]
    plural_of_one = re.compile(r"\b1 (?:[a-z-]+ )?(?:items|examples|questions|predictors|duplicates|answers|calls)\b")
    assert {name: plural_of_one.findall(text) for name, text in texts.items()} == dict.fromkeys(texts, [])
