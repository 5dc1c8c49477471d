"""The stages of `taskc run` one by one: data files, labeling functions, label model, metrics, local model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from spec_edits import edit
from taskc.compiler.driver import compile_task
from taskc.compiler.ir import TaskIR
from taskc.runtime import label_model, labeling, local_model
from taskc.runtime.datafiles import DataFileError, read_gold, read_pool
from taskc.runtime.evaluate import PredictorScores, classification_metrics, evaluate_criterion, score_predictor
from taskc.runtime.features import item_batch, spec_hash
from test_runtime_fixtures import write_jsonl

TINY_SPEC = """\
taskc: 1
task:
  name: tiny
  description: Is a short review positive or negative?
input:
  text:
    type: string
    description: The review.
    max_length: 200
classes:
  pos:
    description: The reviewer liked it.
  neg:
    description: The reviewer did not like it.
rationales:
  - id: says_good
    class: pos
    text: Saying good means liking it.
    rule: matches(lower(text), "\\\\bgood\\\\b")
  - id: says_great
    class: pos
    text: Saying great means liking it.
    rule: matches(lower(text), "\\\\bgreat\\\\b")
  - id: says_bad
    class: neg
    text: Saying bad means not liking it.
    rule: matches(lower(text), "\\\\bbad\\\\b")
  - id: sarcasm
    class: neg
    text: Sarcasm reverses the words; there is no rule for it.
pool:
  path: data/pool.jsonl
generate:
  model: gpt-4o-mini
eval:
  gold: data/gold.jsonl
  pass: accuracy >= 0.6 and recall["neg"] >= 0.5
"""

POOL = ["good day", "great good", "bad day", "good but bad", "meh"]
GOLD = [("good food", "pos"), ("good grief", "neg"), ("bad", "neg")]


@pytest.fixture
def tiny(tmp_path: Path) -> TaskIR:
    spec = tmp_path / "tiny.task.yaml"
    spec.write_text(TINY_SPEC, encoding="utf-8")
    write_jsonl(tmp_path / "data" / "pool.jsonl", [{"text": t} for t in POOL])
    write_jsonl(tmp_path / "data" / "gold.jsonl", [{"text": t, "label": lab} for t, lab in GOLD])
    result = compile_task(spec)
    assert result.ok, result.diagnostics
    assert result.compiled is not None
    return result.compiled.ir


# -- data files -------------------------------------------------------------------------------------

def test_data_files_read_values_labels_and_lines(tiny: TaskIR, tmp_path: Path) -> None:
    pool = read_pool(tmp_path / "data" / "pool.jsonl", tiny)
    gold = read_gold(tmp_path / "data" / "gold.jsonl", tiny)
    assert [r.values["text"] for r in pool.records] == POOL and pool.warnings == ()
    assert [(r.values["text"], r.label, r.line) for r in gold.records] == [
        (t, lab, i) for i, (t, lab) in enumerate(GOLD, 1)]
    assert len(read_pool(tmp_path / "data" / "pool.jsonl", tiny, limit=2).records) == 2


def test_pool_limit_stops_reading_at_the_limit(tiny: TaskIR, tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text('{"text": "one"}\n\n{"text": "two"}\n{"text": 3}\nnot even JSON\n', encoding="utf-8")
    pool = read_pool(path, tiny, limit=2)  # the lines past the limit are never parsed, so never fail
    assert [(r.values["text"], r.line) for r in pool.records] == [("one", 1), ("two", 3)]
    with pytest.raises(DataFileError):
        read_pool(path, tiny, limit=3)


def test_a_broken_length_limit_warns_and_keeps_the_line(tiny: TaskIR, tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    write_jsonl(path, [{"text": "x" * 201, "label": "pos", "source": "a blog"}, {"text": "ok", "label": "neg"}])
    gold = read_gold(path, tiny, display="gold.jsonl")
    assert len(gold.records) == 2
    assert gold.warnings == ("gold.jsonl:1: field 'text' is longer than 200 (kept)",)


@pytest.mark.parametrize(("line", "expected"), [
    ('{"text": "ok", "label": "pos"', "gold.jsonl:2:30: invalid JSON: Expecting ',' delimiter"),
    ('["ok", "pos"]', "gold.jsonl:2: expected a JSON object with fields text, got an array"),
    ('{"txt": "ok", "label": "pos"}', "gold.jsonl:2: missing field 'text' (found 'txt'; did you mean 'text'?)"),
    ('{"text": 5, "label": "pos"}', "gold.jsonl:2: field 'text' must be a string"),
    ('{"text": "ok", "label": "poss"}', "gold.jsonl:2: label \"poss\" is not a class of the task (pos, neg); "
                                            "did you mean 'pos'?"),
    ('{"text": "ok"}', "gold.jsonl:2: missing 'label' (one of pos, neg)"),
    ('{"text": "ok", "label": ["pos"]}', "gold.jsonl:2: label must be a string (one of pos, neg), got an array"),
])
def test_bad_gold_lines_are_located(tiny: TaskIR, tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text('{"text": "fine", "label": "neg"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataFileError) as error:
        read_gold(path, tiny)
    assert str(error.value) == f"{path.parent}/{expected}"


def test_every_bad_line_is_reported_and_missing_files_are_one_line(tiny: TaskIR, tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text('{"text": 1}\n\n{"nope": 2}\n{"text": "ok"}\n', encoding="utf-8")
    with pytest.raises(DataFileError) as error:
        read_pool(path, tiny, display="pool.jsonl")
    assert str(error.value).splitlines() == ["pool.jsonl:1: field 'text' must be a string",
                                             "pool.jsonl:3: missing field 'text'"]
    with pytest.raises(DataFileError, match=r"^nowhere.jsonl: file not found$"):
        read_pool(tmp_path / "nowhere.jsonl", tiny, display="nowhere.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataFileError, match=r"latin1.jsonl:1: not UTF-8"):
        read_pool(tmp_path / "latin1.jsonl", tiny)


# -- labeling functions -----------------------------------------------------------------------------

def test_lf_analysis_numbers_on_a_hand_made_pool(tiny: TaskIR) -> None:
    functions = labeling.labeling_functions(tiny)
    assert [f.rationale_id for f in functions] == ["says_good", "says_great", "says_bad"]
    matrix = labeling.apply_functions(functions, [{"text": t} for t in POOL])
    pos, neg, no = 0, 1, labeling.ABSTAIN
    assert matrix.votes.tolist() == [[pos, no, no], [pos, pos, no], [no, no, neg], [pos, no, neg], [no, no, no]]
    gold_matrix = labeling.apply_functions(functions, [{"text": t} for t, _ in GOLD])
    analysis = labeling.analyse(functions, matrix, tiny, gold_matrix, [pos, neg, neg])
    rows = {f.rationale_id: f for f in analysis.functions}
    good, great, bad = rows["says_good"], rows["says_great"], rows["says_bad"]
    assert (good.coverage, good.overlaps, good.conflicts) == (0.6, 0.4, 0.2)
    assert (great.coverage, great.overlaps, great.conflicts) == (0.2, 0.2, 0.0)
    assert (bad.coverage, bad.overlaps, bad.conflicts) == (0.4, 0.2, 0.2)
    assert (good.gold_votes, good.gold_correct, good.gold_wrong, good.empirical_accuracy) == (2, 1, 1, 0.5)
    assert (bad.gold_votes, bad.empirical_accuracy) == (1, 1.0)
    assert great.empirical_accuracy is None  # never fired on gold: unknown, not 0
    assert (analysis.coverage, analysis.overlap, analysis.conflict) == (0.8, 0.4, 0.2)
    assert [(p.first, p.second, p.items) for p in analysis.conflict_pairs] == [("says_good", "says_bad", (3,))]
    assert analysis.rationales_without_rule == ("sarcasm",)


def test_a_rule_that_raises_abstains_and_is_counted(tiny: TaskIR) -> None:
    functions = labeling.labeling_functions(tiny)
    matrix = labeling.apply_functions(functions, [{"text": "good"}, {}])  # the second item lacks its field
    assert matrix.votes[1].tolist() == [labeling.ABSTAIN] * 3
    assert matrix.failures == (1, 1, 1)
    rows = labeling.analyse(functions, matrix, tiny).functions
    assert [row.failures for row in rows] == [1, 1, 1]
    assert rows[0].first_failure == matrix.first_failure[0] and "text" in (rows[0].first_failure or "")
    assert rows[0].to_json()["first_rule_failure"] == rows[0].first_failure


def test_rules_see_an_absent_optional_field_as_null_everywhere(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.task.yaml"
    text = edit(TINY_SPEC, "    max_length: 200\n", "    max_length: 200\n  tip:\n    type: string\n"
                "    description: What the reviewer tipped, if known.\n    optional: true\n")
    text = edit(text, '    text: Sarcasm reverses the words; there is no rule for it.\n',
                '    text: A generous tip means they liked it.\n    rule: tip == "generous"\n')
    spec.write_text(edit(text, "  - id: sarcasm\n    class: neg", "  - id: tipped\n    class: pos"), encoding="utf-8")
    write_jsonl(tmp_path / "data" / "pool.jsonl", [{"text": t} for t in POOL])
    write_jsonl(tmp_path / "data" / "gold.jsonl", [{"text": t, "label": lab} for t, lab in GOLD])
    result = compile_task(spec)
    assert result.ok and result.compiled is not None, result.diagnostics
    task = result.compiled.ir
    functions = labeling.labeling_functions(task)
    items = [{"text": "good"}, {"text": "meh", "tip": "generous"}]
    matrix = labeling.apply_functions(functions, [labeling.rule_environment(task, item) for item in items])
    assert matrix.failures == (0, 0, 0, 0)
    assert [f.rationale_id for f, vote in zip(functions, matrix.votes[1], strict=True)
            if vote != labeling.ABSTAIN] == ["tipped"]
    from taskc.runtime.validate import ExampleValidator

    validator = ExampleValidator(task)  # generation's validator votes with the same functions, the same way
    assert [f.rationale_id for f in validator.labeling_functions] == [f.rationale_id for f in functions]
    assert validator.votes(items[0], "pos").fired == ("says_good",) and not validator.votes(items[0], "pos").errors
    assert validator.votes(items[1], "pos").fired == ("tipped",)


# -- label model ------------------------------------------------------------------------------------

def test_majority_vote_leaves_ties_and_silence_unlabeled() -> None:
    votes = np.array([[0, -1, -1], [0, 0, 1], [1, 0, -1], [-1, -1, -1]])
    assert label_model.majority_vote(votes, 2).tolist() == [0, 0, label_model.UNLABELED, label_model.UNLABELED]


def _synthetic_votes(accuracies: list[float], n_items: int = 4000, n_classes: int = 3, coverage: float = 0.7,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    votes = np.full((n_items, len(accuracies)), -1)
    for j, accuracy in enumerate(accuracies):
        fires = rng.random(n_items) < coverage
        right = rng.random(n_items) < accuracy
        wrong = (truth + rng.integers(1, n_classes, n_items)) % n_classes
        votes[:, j] = np.where(fires, np.where(right, truth, wrong), -1)
    return votes, truth


def test_dawid_skene_recovers_the_accuracy_ordering_and_beats_majority() -> None:
    accuracies = [0.9, 0.45, 0.8, 0.6, 0.7]
    votes, truth = _synthetic_votes(accuracies)
    fitted = label_model.fit_dawid_skene(votes, 3)
    assert fitted.converged
    assert np.argsort(fitted.function_accuracy).tolist() == np.argsort(accuracies).tolist()
    assert np.allclose(fitted.function_accuracy, accuracies, atol=0.05)
    assert np.allclose(fitted.function_coverage, 0.7, atol=0.03)
    covered = (votes != -1).any(axis=1)
    model_accuracy = (fitted.labels[covered] == truth[covered]).mean()
    majority = label_model.majority_vote(votes, 3)
    majority_accuracy = (majority[covered] == truth[covered]).mean()  # ties count as wrong
    assert model_accuracy > majority_accuracy
    assert (fitted.labels[~covered] == label_model.UNLABELED).all()


def test_dawid_skene_weighs_one_class_rules_by_when_they_fire() -> None:
    # Rules that only ever vote one class (most rationales). Their precision, by construction:
    # rule 0 (class 0) ~0.95, rule 1 (class 1) ~0.60, rule 2 (class 1) ~0.91.
    rng = np.random.default_rng(1)
    n = 4000
    truth = rng.integers(0, 2, n)

    def fires(rate_if_0: float, rate_if_1: float) -> np.ndarray:
        return np.where(truth == 0, rng.random(n) < rate_if_0, rng.random(n) < rate_if_1)

    fires_0, fires_1, fires_2 = fires(0.6, 0.03), fires(0.4, 0.6), fires(0.05, 0.5)
    votes = np.stack([np.where(fires_0, 0, -1), np.where(fires_1, 1, -1), np.where(fires_2, 1, -1)], axis=1)
    fitted = label_model.fit_dawid_skene(votes, 2)
    assert np.argsort(fitted.function_accuracy).tolist() == [1, 2, 0]
    assert np.allclose(fitted.function_accuracy, [0.95, 0.6, 0.91], atol=0.05)
    both = fires_0 & fires_1 & ~fires_2
    assert (fitted.labels[both] == 0).mean() > 0.95  # the reliable rule wins the conflicts
    labels, _ = label_model.predict(fitted, votes[:10])
    assert labels.tolist() == fitted.labels[:10].tolist()


def test_the_label_model_never_overrules_rules_that_agree() -> None:
    votes = np.array([[0, -1, -1], [0, 0, -1], [-1, -1, 1], [0, -1, 1], [-1, -1, -1]])
    fitted = label_model.fit_dawid_skene(votes, 2)
    assert fitted.labels.tolist()[:3] == [0, 0, 1]
    assert fitted.labels[4] == label_model.UNLABELED
    assert fitted.labels[3] in (0, 1)


# -- metrics and the criterion ----------------------------------------------------------------------

def test_metrics_match_hand_computed_values() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", None, "a"]
    m = classification_metrics(gold, predicted, ["a", "b", "c"])
    assert (m.items, m.labeled) == (6, 5)
    assert m.coverage == pytest.approx(5 / 6)
    # over all six items: the abstention on the second "b" is an error, and a miss of b's recall
    assert m.accuracy == pytest.approx(3 / 6)
    assert m.precision == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 0.0})
    assert m.recall == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 0.0})
    assert m.f1 == pytest.approx({"a": 2 / 3, "b": 1 / 2, "c": 0.0})
    assert m.macro_f1 == pytest.approx(7 / 18)
    assert m.support == {"a": 3, "b": 2, "c": 1}
    assert m.confusion == ((2, 1, 0, 0), (0, 1, 0, 1), (1, 0, 0, 0))
    assert m.to_json()["confusion"]["columns"] == ["a", "b", "c", "abstained"]


def _on_test(gold: list[str], predicted: list[str | None]) -> PredictorScores:
    return score_predictor(gold, predicted, ["pos", "neg"], ["test"] * len(gold))


def test_the_criterion_passes_and_fails_on_the_primary_predictor(tiny: TaskIR) -> None:
    assert tiny.eval is not None and tiny.eval.primary == "rules_then_model"  # the default
    good = _on_test(["pos", "neg", "neg"], ["pos", "neg", "neg"])
    weak = _on_test(["pos", "neg", "neg"], ["pos", "pos", "pos"])
    passed = evaluate_criterion(tiny, {"rules_then_model": good})
    assert passed is not None and passed.passed and passed.split == "test"
    assert passed.reason == 'accuracy = 1.000, recall["neg"] = 1.000'
    failed = evaluate_criterion(tiny, {"rules_then_model": weak})
    assert failed is not None and not failed.passed
    assert failed.reason == 'accuracy = 0.333, recall["neg"] = 0.000'
    missing = evaluate_criterion(tiny, {"labeling_functions": good})
    assert missing is not None and not missing.passed and "did not run" in missing.reason


def test_the_criterion_reason_names_the_metrics_it_reads_however_written(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.task.yaml"
    spec.write_text(edit(TINY_SPEC, 'pass: accuracy >= 0.6 and recall["neg"] >= 0.5',
                         "pass: f1[ 'pos' ] >= 0.5 or (coverage > 0.9 and macro_f1 > 0)"))
    write_jsonl(tmp_path / "data" / "pool.jsonl", [{"text": t} for t in POOL])
    write_jsonl(tmp_path / "data" / "gold.jsonl", [{"text": t, "label": lab} for t, lab in GOLD])
    compiled = compile_task(spec).compiled
    assert compiled is not None
    perfect = _on_test(["pos", "neg", "neg"], ["pos", "neg", "neg"])
    result = evaluate_criterion(compiled.ir, {"rules_then_model": perfect})
    assert result is not None and result.passed
    assert result.reason == 'f1["pos"] = 1.000, coverage = 1.000, macro_f1 = 1.000'


# -- local model ------------------------------------------------------------------------------------

def _examples() -> list[local_model.TrainingExample]:
    positive = ["good food", "great service", "really good", "great view", "good value", "lovely and good"]
    negative = ["bad food", "awful service", "really bad", "bad view", "terrible value", "rude and bad"]
    return ([local_model.TrainingExample({"text": t}, "pos", "label_model") for t in positive]
            + [local_model.TrainingExample({"text": t}, "neg", "llm") for t in negative])


def _train(task: TaskIR, examples: list[local_model.TrainingExample]) -> local_model.LocalModel:
    functions = labeling.labeling_functions(task)
    return local_model.train(task, functions, item_batch(task, functions, [e.values for e in examples]), examples)


def _batch(task: TaskIR, values: list[dict]) -> object:
    return item_batch(task, labeling.labeling_functions(task), values)


def test_local_model_trains_saves_reloads_and_is_deterministic(tiny: TaskIR, tmp_path: Path) -> None:
    examples = _examples()
    model = _train(tiny, examples)
    probe = _batch(tiny, [{"text": "good service"}, {"text": "bad and awful"}])
    assert model.predict(probe) == ["pos", "neg"]
    model.save(tmp_path / "model", model.describe(examples, spec_hash(tiny)))
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["metadata.json", "model.joblib"]
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["training_sources"] == {"label_model": 6, "llm": 6}
    assert set(metadata["feature_groups"]) == {"words", "lexicon mentions", "rule votes"}
    assert metadata["feature_groups"]["rule votes"]["features"] == 3  # one per rule
    reloaded = local_model.load(tmp_path / "model", tiny, labeling.labeling_functions(tiny), spec_hash(tiny))
    assert np.array_equal(reloaded.predict_proba(probe), model.predict_proba(probe))
    again = _train(tiny, examples)
    assert np.array_equal(again.predict_proba(probe), model.predict_proba(probe))
    assert again.describe(examples, spec_hash(tiny))["training_data_sha256"] == metadata["training_data_sha256"]


def test_local_model_refuses_one_class_and_foreign_models(tiny: TaskIR, tmp_path: Path) -> None:
    with pytest.raises(local_model.LocalModelError, match="only 'pos'; no example of 'neg'"):
        _train(tiny, [e for e in _examples() if e.label == "pos"])
    model = _train(tiny, _examples())
    model.save(tmp_path / "model", model.describe(_examples(), spec_hash(tiny)))
    functions = labeling.labeling_functions(tiny)
    with pytest.raises(local_model.LocalModelError, match="another version of the task"):
        local_model.load(tmp_path / "model", tiny, functions, "0" * 64)
    metadata_path = tmp_path / "model" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata_path.write_text(json.dumps(metadata | {"classes": ["yes", "no"]}))
    with pytest.raises(local_model.LocalModelError, match="trained for classes"):
        local_model.load(tmp_path / "model", tiny, functions, spec_hash(tiny))
    with pytest.raises(local_model.LocalModelError, match="no saved local model"):
        local_model.load(tmp_path / "elsewhere", tiny, functions, spec_hash(tiny))


def test_what_fitting_warns_is_a_note_of_the_run_not_a_line_on_stderr(tiny: TaskIR, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """A warning from scikit-learn (a solver that did not converge) would otherwise land on stderr, among the
    JSON events of `--format json`; as a note it reaches the report, each warning once."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from taskc.runtime.training import train_local_model

    fit = LogisticRegression.fit

    def warning_fit(self: LogisticRegression, *args: object, **kwargs: object) -> LogisticRegression:
        for _ in range(2):
            warnings.warn("lbfgs failed to converge\n  (status=1)", ConvergenceWarning, stacklevel=2)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", warning_fit)
    examples = _examples()
    functions = labeling.labeling_functions(tiny)
    notes: list[str] = []
    model = train_local_model(tiny, functions, item_batch(tiny, functions, [e.values for e in examples]), examples,
                              tmp_path / "model", notes)
    assert model is not None and model.fit_warnings_ == ("ConvergenceWarning: lbfgs failed to converge (status=1)",)
    assert notes == ["fitting the local model warned: ConvergenceWarning: lbfgs failed to converge (status=1)"]
    assert capfd.readouterr().err == ""
    monkeypatch.setattr(LogisticRegression, "fit", fit)
    assert _train(tiny, examples).fit_warnings_ == ()
