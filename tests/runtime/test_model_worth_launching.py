"""Issue #10: the trained predictor carries the expert's knowledge, is scored honestly, and serves new data.

Read as the reference of `taskc run`'s predictors and of `taskc predict`: knowledge that transfers
across fields, the rules_then_model cascade, abstentions counted as errors with intervals, the dev/test
halves of the gold set, the gold-vs-pool warnings, and the predict command on good and bad input.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from spec_edits import edit
from taskc.compiler.driver import compile_task
from taskc.compiler.ir import TaskIR
from taskc.runtime import label_model, labeling
from taskc.runtime.evaluate import classification_metrics, score_predictor
from taskc.runtime.features import KnowledgeFeatures, item_batch, spec_hash
from taskc.runtime.gold_split import DEV, TEST, split_gold
from taskc.runtime.local_model import TrainingExample, train
from taskc.runtime.predictor import Prediction, Predictors
from taskc.runtime.serving import answer_line
from test_runtime_fixtures import write_jsonl

from taskc.cli.main import main

MENU_SPEC = """\
taskc: 1
task:
  name: menu
  description: Is a dish keto?
input:
  dish:
    type: string
    description: The dish name.
  ingredients:
    type: list[string]
    description: Its ingredients; empty on a menu.
classes:
  keto:
    description: Low in carbs.
  not_keto:
    description: Starchy.
lexicons:
  starch: [pasta, bread, rigatoni, baguette]
  meat: [beef, chicken, pork]
rationales:
  - id: starch
    class: not_keto
    text: Starch is carbs.
    rule: any(ingredients, i -> mentions(i, lexicon.starch))
  - id: meat_only
    class: keto
    text: Meat without starch is keto.
    rule: >-
      any(ingredients, i -> mentions(i, lexicon.meat))
      and not any(ingredients, i -> mentions(i, lexicon.starch))
pool:
  path: data/pool.jsonl
generate:
  model: gpt-4o-mini
eval:
  gold: data/gold.jsonl
  pass: accuracy >= 0.5
"""

NAMES = ["Sunday special", "House plate", "Chef's choice", "Grandma's recipe", "Daily dish", "Lunch menu",
         "Market plate", "Family supper", "Weeknight dinner", "Classic plate"]


def _pool() -> list[dict]:
    """Pool items whose names say nothing: the knowledge is only in the ingredients, and only 'pasta' and
    'bread' of the starch lexicon ever occur (never 'rigatoni' or 'baguette')."""
    rng = random.Random(3)
    items = []
    for i in range(60):
        starch = i % 2 == 0
        ingredients = [rng.choice(["pasta", "bread"])] if starch else [rng.choice(["beef", "chicken", "pork"])]
        ingredients += rng.sample(["salt", "garlic", "oil", "pepper", "onion", "herbs"], 2)
        items.append({"dish": f"{NAMES[i % len(NAMES)]} {i}", "ingredients": ingredients})
    return items


GOLD = [
    # name only, words of the lexicons that the pool never used in any field: only the lexicon knows them
    {"dish": "Rigatoni al forno", "ingredients": [], "label": "not_keto"},
    {"dish": "Baguette sandwich", "ingredients": [], "label": "not_keto"},
    {"dish": "Grilled pork", "ingredients": [], "label": "keto"},
    {"dish": "Roast chicken", "ingredients": [], "label": "keto"},
    # with ingredients: the rules fire
    {"dish": "Plate", "ingredients": ["pasta", "salt"], "label": "not_keto"},
    {"dish": "Plate", "ingredients": ["beef", "salt"], "label": "keto"},
]


@pytest.fixture
def menu(tmp_path: Path, no_provider: None) -> Path:
    spec = tmp_path / "menu.task.yaml"
    spec.write_text(MENU_SPEC, encoding="utf-8")
    write_jsonl(tmp_path / "data" / "pool.jsonl", _pool())
    write_jsonl(tmp_path / "data" / "gold.jsonl", GOLD)
    return spec


def _task(spec: Path) -> TaskIR:
    result = compile_task(spec)
    assert result.compiled is not None, result.diagnostics
    return result.compiled.ir


def _predictors(task: TaskIR) -> tuple[Predictors, list]:
    functions = labeling.labeling_functions(task)
    pool = item_batch(task, functions, _pool())
    fitted = label_model.fit_dawid_skene(pool.votes, len(task.class_names))
    labels = label_model.label_names(fitted.labels, task.class_names)
    examples = [TrainingExample(v, str(lab), "label_model") for v, lab in zip(_pool(), labels, strict=True)]
    model = train(task, functions, pool, examples)
    return Predictors(task, functions, fitted, model), functions


# -- knowledge that transfers across fields ------------------------------------------------------------

def test_knowledge_features_name_each_lexicon_in_each_text_field_and_each_rule(menu: Path) -> None:
    task = _task(menu)
    functions = labeling.labeling_functions(task)
    features = KnowledgeFeatures(task, functions)
    assert features.names == (
        "dish mentions starch", "ingredients mentions starch", "any field mentions starch",
        "dish mentions meat", "ingredients mentions meat", "any field mentions meat",
        "rule starch fired (not_keto)", "rule meat_only fired (keto)")
    batch = item_batch(task, functions, [{"dish": "Rigatoni", "ingredients": []},
                                         {"dish": "x", "ingredients": ["Chicken thighs", "pasta"]}])
    assert features.transform(batch).toarray().tolist() == [
        [1, 0, 1, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 1, 1, 1, 0],  # matched as mentions() matches: whole word, any case
    ]


def test_a_lexicon_word_seen_only_in_dish_names_at_test_time_is_knowledge_the_model_uses(menu: Path) -> None:
    task = _task(menu)
    predictors, functions = _predictors(task)
    names_only = item_batch(task, functions, [{k: v for k, v in g.items() if k != "label"} for g in GOLD[:4]])
    assert not (names_only.votes != labeling.ABSTAIN).any()  # no rule reads the dish name
    assert predictors.labels(names_only, "local_model") == ["not_keto", "not_keto", "keto", "keto"]
    assert predictors.labels(names_only, "labeling_functions") == [None] * 4


# -- the cascade ---------------------------------------------------------------------------------------

def test_rules_then_model_takes_the_rules_where_they_fire_and_the_model_elsewhere(menu: Path) -> None:
    task = _task(menu)
    predictors, functions = _predictors(task)
    batch = item_batch(task, functions, [{k: v for k, v in g.items() if k != "label"} for g in GOLD])
    answers = predictors.predict(batch, "rules_then_model")
    assert [a.predictor for a in answers] == ["local_model"] * 4 + ["labeling_functions"] * 2
    assert [a.label for a in answers] == [g["label"] for g in GOLD]
    assert answers[4].rules == {"starch": "not_keto"} and answers[0].rules == {}
    assert all(0.5 <= (a.confidence or 0) <= 1 for a in answers)


def test_the_cascade_is_the_default_primary_and_beats_the_rules_counted_honestly(menu: Path,
                                                                                 capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(menu), "-o", str(menu.parent / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    metrics = json.loads((menu.parent / "run" / "metrics.json").read_text())
    assert metrics["primary"] == "rules_then_model"
    rules, cascade = (metrics["predictors"][name]["all"] for name in ("labeling_functions", "rules_then_model"))
    assert rules["coverage"] == pytest.approx(2 / 6) and rules["accuracy"] == pytest.approx(2 / 6)
    assert cascade["coverage"] == 1.0 and cascade["accuracy"] == 1.0
    assert summary["metrics"] == metrics["predictors"]


# -- honest scoring --------------------------------------------------------------------------------------

def test_a_predictor_that_labels_nothing_has_no_scores_not_zero() -> None:
    m = classification_metrics(["a", "b"], [None, None], ["a", "b"])
    assert (m.accuracy, m.macro_f1, m.coverage) == (None, None, 0.0)
    assert m.precision == {"a": None, "b": None} and m.accuracy_ci is None
    as_json = m.to_json()
    assert as_json["accuracy"] is None and as_json["macro_f1_ci"] is None


def test_abstentions_are_errors_and_intervals_are_seeded_and_contain_the_score() -> None:
    gold = ["a"] * 30 + ["b"] * 30
    predicted: list[str | None] = ["a"] * 20 + [None] * 10 + ["b"] * 25 + ["a"] * 5
    m = classification_metrics(gold, predicted, ["a", "b"])
    assert m.accuracy == pytest.approx(45 / 60) and m.coverage == pytest.approx(50 / 60)
    assert m.recall == pytest.approx({"a": 20 / 30, "b": 25 / 30})
    assert m.accuracy_ci is not None and m.macro_f1_ci is not None and m.macro_f1 is not None
    assert m.accuracy_ci[0] < m.accuracy < m.accuracy_ci[1]
    assert m.macro_f1_ci[0] < m.macro_f1 < m.macro_f1_ci[1]
    assert classification_metrics(gold, predicted, ["a", "b"]).accuracy_ci == m.accuracy_ci


def test_scores_are_given_on_all_items_and_on_each_half() -> None:
    gold, predicted = ["a", "b", "a", "b"], ["a", "b", "b", None]
    scores = score_predictor(gold, predicted, ["a", "b"], [DEV, DEV, TEST, TEST])
    assert scores.dev is not None and scores.test is not None
    assert (scores.all.accuracy, scores.dev.accuracy, scores.test.accuracy) == (0.5, 1.0, 0.0)
    assert set(scores.to_json()) == {"all", "dev", "test"}
    assert score_predictor(gold, predicted, ["a", "b"], [DEV] * 4).test is None


# -- dev and test halves ---------------------------------------------------------------------------------

def test_the_split_is_stratified_deterministic_and_ignores_file_order() -> None:
    labels = ["a"] * 40 + ["b"] * 11
    keys = [f"item {i}" for i in range(51)]
    halves = split_gold(labels, keys, 0.5, seed=0)
    assert sum(h == TEST for h, lab in zip(halves, labels, strict=True) if lab == "a") == 20
    assert sum(h == TEST for h, lab in zip(halves, labels, strict=True) if lab == "b") == round(11 * 0.5)
    assert split_gold(labels, keys, 0.5, seed=0) == halves
    order = list(range(51))
    random.Random(1).shuffle(order)
    shuffled = split_gold([labels[i] for i in order], [keys[i] for i in order], 0.5, seed=0)
    assert {keys[i]: h for i, h in zip(order, shuffled, strict=True)} == dict(zip(keys, halves, strict=True))
    assert split_gold(labels, keys, 0.5, seed=1) != halves
    assert set(split_gold(labels, keys, 0.0, seed=0)) == {DEV}


def test_the_report_shows_only_dev_items_and_the_criterion_is_judged_on_test(tmp_path: Path,
                                                                           no_provider: None) -> None:
    spec = tmp_path / "menu.task.yaml"
    spec.write_text(MENU_SPEC, encoding="utf-8")
    write_jsonl(tmp_path / "data" / "pool.jsonl", _pool())
    gold = [{"dish": f"Dish {i}", "ingredients": ["pasta" if i % 2 else "beef"], "label": "keto"}
            for i in range(20)]  # half of them wrong by the rules: errors to show
    write_jsonl(tmp_path / "data" / "gold.jsonl", gold)
    main(["run", str(spec), "-o", str(tmp_path / "run"), "-q"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["gold_split"] == {"dev": 10, "test": 10, "test_fraction": 0.5, "seed": 0}
    assert metrics["criterion"]["split"] == "test"
    report = (tmp_path / "run" / "report.md").read_text()
    halves = split_gold(["keto"] * 20, [f"Dish {i} | {g['ingredients'][0]}" for i, g in enumerate(gold)], 0.5, 0)
    for i, half in enumerate(halves):
        shown = f"(line {i + 1})" in report
        assert shown == (half == DEV and gold[i]["ingredients"] == ["pasta"]), i


# -- how the gold set differs from the pool ------------------------------------------------------------

def test_the_report_warns_when_gold_is_unlike_the_pool_and_names_the_knowledge_gap(menu: Path) -> None:
    main(["run", str(menu), "-o", str(menu.parent / "run"), "-q"])
    shift = json.loads((menu.parent / "run" / "metrics.json").read_text())["data_shift"]
    assert shift["fields_filled"]["ingredients"] == {"gold": round(2 / 6, 4), "pool": 1.0}
    gaps = {(g["lexicon"], g["field"]) for g in shift["knowledge_gaps"]}
    assert gaps == {("starch", "dish"), ("meat", "dish")}
    report = (menu.parent / "run" / "report.md").read_text()
    section = report.split("## How the gold set differs from the pool")[1].split("## Metrics")[0]
    assert "the field `ingredients` is filled in 33% of the gold items but 100% of the pool" in section
    assert "no rule reads `dish` against `starch`" in section


# -- taskc predict -----------------------------------------------------------------------------------------

def _trained(menu: Path) -> Path:
    run_dir = menu.parent / "run"
    assert main(["run", str(menu), "-o", str(run_dir), "-q"]) == 0
    return run_dir


def test_predict_labels_new_inputs_like_the_run_scored_them(menu: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = _trained(menu)
    capsys.readouterr()
    inputs = menu.parent / "new.jsonl"
    write_jsonl(inputs, [{"id": f"g{i}", **{k: v for k, v in g.items() if k != "label"}} for i, g in enumerate(GOLD)])
    assert main(["predict", str(run_dir), str(inputs), "-o", str(menu.parent / "out.jsonl")]) == 0
    answers = [json.loads(line) for line in (menu.parent / "out.jsonl").read_text().splitlines()]
    assert [a["label"] for a in answers] == [g["label"] for g in GOLD]
    assert [a["line"] for a in answers] == [1, 2, 3, 4, 5, 6] and answers[0]["id"] == "g0"
    assert set(answers[0]) == {"line", "id", "label", "confidence", "predictor", "rules"}
    assert answers[4]["predictor"] == "labeling_functions" and answers[4]["rules"] == {"starch": "not_keto"}
    assert "predicted 6 of 6 lines with rules_then_model" in capsys.readouterr().err


def test_predict_skips_or_stops_at_bad_lines_with_file_and_line(menu: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = _trained(menu)
    inputs = menu.parent / "new.jsonl"
    inputs.write_text('{"dish": "Roast chicken", "ingredients": []}\n'
                      'not json\n'
                      '{"dish": 7, "ingredients": []}\n'
                      '\n'
                      '{"dish": "Rigatoni", "ingredients": []}\n', encoding="utf-8")
    out = menu.parent / "out.jsonl"
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(inputs), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"{inputs}:2:1: invalid JSON" in err and f"{inputs}:3: field 'dish' must be a string" in err
    assert "2 bad lines skipped" in err
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1, 5]
    assert main(["predict", str(run_dir), str(inputs), "-o", str(out), "--on-error", "stop"]) == 1
    err = capsys.readouterr().err
    assert f"{inputs}:2:1: invalid JSON" in err and ":3:" not in err and "stopped at" in err
    assert [json.loads(line)["line"] for line in out.read_text().splitlines()] == [1]


def test_predict_reads_stdin_and_writes_stdout(menu: Path, capsys: pytest.CaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _trained(menu)
    capsys.readouterr()
    stdin = io.TextIOWrapper(io.BytesIO(b'{"dish": "Baguette", "ingredients": []}\n'), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    assert main(["predict", str(run_dir), "-", "-q"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["label"] == "not_keto" and captured.err == ""


def test_predict_refuses_a_model_trained_for_another_version_of_the_task(menu: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    run_dir = _trained(menu)
    before = spec_hash(_task(menu))
    menu.write_text(edit(MENU_SPEC, "[beef, chicken, pork]", "[beef, chicken, pork, lamb]"), encoding="utf-8")
    assert spec_hash(_task(menu)) != before
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(menu.parent / "data" / "pool.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "trained for another version of the task" in err and before[:12] in err and "taskc run" in err
    # wording does not change what the model computes: a new description is the same version
    menu.write_text(edit(MENU_SPEC, "Is a dish keto?", "Is this dish keto?"), encoding="utf-8")
    assert spec_hash(_task(menu)) == before
    assert main(["predict", str(run_dir), str(menu.parent / "data" / "pool.jsonl"), "-q"]) == 0


def test_predict_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "run").mkdir()
    assert main(["predict", str(tmp_path / "run"), "x.jsonl"]) == 1
    assert "no trained predictor here" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nowhere"), "x.jsonl"]) == 2


def test_field_views_teach_the_name_what_the_ingredients_said(menu: Path) -> None:
    """A labelled item with two filled text fields is also learnt from each field alone."""
    from taskc.runtime.training_set import field_views

    task = _task(menu)
    example = TrainingExample({"dish": "Carbonara", "ingredients": ["spaghetti", "eggs"]}, "not_keto", "label_model")
    views = field_views(task, example)
    assert [v.values for v in views] == [{"dish": "Carbonara", "ingredients": []},
                                         {"dish": "", "ingredients": ["spaghetti", "eggs"]}]
    assert {v.label for v in views} == {"not_keto"} and all(v.weight == 0.5 for v in views)
    assert field_views(task, TrainingExample({"dish": "Carbonara", "ingredients": []}, "keto", "llm")) == []


def test_the_model_names_its_strongest_features_by_group(menu: Path) -> None:
    run_dir = _trained(menu)
    metadata = json.loads((run_dir / "model" / "metadata.json").read_text())
    assert metadata["spec_hash"] == spec_hash(_task(menu))
    strongest = metadata["strongest_features"]
    assert set(strongest) == {"keto", "not_keto"}
    assert {f["group"] for f in strongest["not_keto"]} <= {"words", "lexicon mentions", "rule votes"}
    assert any(f["feature"] == "any field mentions starch" for f in strongest["not_keto"])
    assert any(f["feature"] in ("rule meat_only fired (keto)", "any field mentions meat") for f in strongest["keto"])
    assert "## What the local model leans on" in (run_dir / "report.md").read_text()
    facts = json.loads((run_dir / "metrics.json").read_text())["local_model"]
    assert facts["feature_groups"]["lexicon mentions"] == 6 and facts["feature_groups"]["rule votes"] == 2
    assert facts["strongest_features"] == strongest


def test_gold_rows_that_break_the_input_constraints_are_counted_and_only_dev_lines_quoted(
        menu: Path, capsys: pytest.CaptureFixture) -> None:
    menu.write_text(edit(MENU_SPEC, "    description: The dish name.\n",
                         "    description: The dish name.\n    max_length: 12\n"), encoding="utf-8")
    main(["run", str(menu), "-o", str(menu.parent / "run"), "-q"])
    metrics = json.loads((menu.parent / "run" / "metrics.json").read_text())
    shift = metrics["data_shift"]
    assert shift["rows_breaking_constraints"] == 3  # Rigatoni al forno, Baguette sandwich, Roast chicken
    halves = split_gold([g["label"] for g in GOLD], [" | ".join([g["dish"], *g["ingredients"]]) for g in GOLD], 0.5, 0)
    dev_lines = {line for line in (1, 2, 4) if halves[line - 1] == DEV}
    rows = shift["dev_rows_breaking_constraints"]
    assert {row["line"] for row in rows} == dev_lines
    assert all("longer than 12" in row["breaks"] for row in rows)
    assert any("3 gold rows break the input's constraints" in w for w in shift["warnings"])


def test_predict_names_an_unreadable_input_and_keeps_no_half_output(menu: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = _trained(menu)
    out = menu.parent / "out.jsonl"
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(menu.parent / "missing.jsonl"), "-o", str(out)]) == 1
    assert "missing.jsonl: file not found" in capsys.readouterr().err and not out.exists()
    latin = menu.parent / "latin1.jsonl"
    latin.write_bytes(b'{"dish": "Roast chicken", "ingredients": []}\n{"dish": "Cr\xe8me", "ingredients": []}\n')
    assert main(["predict", str(run_dir), str(latin), "-o", str(out)]) == 1
    assert f"{latin}:2: not UTF-8 text (byte 0xe8)" in capsys.readouterr().err
    assert not out.exists() and not list(menu.parent.glob(".out.jsonl.*"))  # nothing half-written


def test_predict_into_a_missing_directory_is_a_clear_error(menu: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = _trained(menu)
    capsys.readouterr()
    target = menu.parent / "no" / "such" / "out.jsonl"
    assert main(["predict", str(run_dir), str(menu.parent / "data" / "pool.jsonl"), "-o", str(target)]) == 4
    err = capsys.readouterr().err
    assert "taskc: error: cannot write" in err and "internal error" not in err


@pytest.mark.parametrize("input_id", [None, "menu-7", 12, "näive \"quoted\""])
@pytest.mark.parametrize("answer", [
    Prediction("keto", 0.912345678, "labeling_functions", {"fat_and_protein": "keto"}),
    Prediction(None, None, "labeling_functions", {}),
    Prediction("not_keto", 1.0, "local_model", {"a": "not_keto", "ünïcode": "keto"}),
    Prediction("keto", 1e-07, "local_model", {}),
])
def test_an_answer_line_is_exactly_the_json_of_the_answer(input_id: object, answer: Prediction) -> None:
    record: dict = {"line": 41}
    if input_id is not None:
        record["id"] = input_id
    record |= {"label": answer.label,
               "confidence": None if answer.confidence is None else round(answer.confidence, 4),
               "predictor": answer.predictor, "rules": answer.rules}
    assert answer_line(41, input_id, answer) == json.dumps(record, ensure_ascii=False)
