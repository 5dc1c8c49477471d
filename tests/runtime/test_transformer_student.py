"""The transformers student (`finetune.provider: transformers`) on a tiny BERT built from a config here.

Skipped unless the extra is installed (`pip install 'taskc-compiler[transformers]'`; .ci/run installs it in a second
step). Nothing is downloaded: the model is a two-layer, 32-wide BERT with random weights and a word-level
vocabulary of the training texts' words, saved with save_pretrained into a temporary directory, and the
hub is switched off for the whole module.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers reads it: a test never reaches the hub
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from taskc.runtime import transformer_student as ts  # noqa: E402 - only once the extra is known to be there
from taskc.runtime.transformer_student import (  # noqa: E402
    INSTALL_HINT,
    TransformerSettings,
    TransformerStudent,
    TransformerStudentError,
    missing_dependencies,
)

CLASSES = ("keto", "not_keto")
KETO_WORDS = "bacon eggs butter cheese steak avocado salmon cream".split()
CARB_WORDS = "rice pasta bread sugar potato flour noodles oats".split()
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# a tiny random model learns slowly: a learning rate far above an encoder's usual 5e-5
FAST = {"learning_rate": 5e-3, "batch_size": 8}


def _dataset(count: int = 60, seed: int = 0) -> tuple[list[str], list[str]]:
    """`count` three-word texts, alternating keto / not_keto, each class with its own words."""
    rng = random.Random(seed)
    texts, labels = [], []
    for number in range(count):
        words, label = (KETO_WORDS, "keto") if number % 2 == 0 else (CARB_WORDS, "not_keto")
        texts.append(" ".join(rng.sample(words, 3)))
        labels.append(label)
    return texts, labels


def tiny_model(directory: Path, texts: list[str], *, weights: bool = True, hidden: int = 32, layers: int = 2,
               positions: int = 64) -> Path:
    """A word-level tokenizer over the words of `texts` and a random BERT (`layers` layers, `hidden` wide) whose
    saved head has 3 labels, so that loading it for 2 classes exercises `ignore_mismatched_sizes`; without
    `weights`, only its config and tokenizer. bench/transformer_student.py builds its model here too."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.Lowercase(), pre_tokenizers.Whitespace()
    words = {word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))}
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + sorted(words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer, backend.pre_tokenizer = normalizer, pre_tokenizer
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(2, hidden // 64), intermediate_size=2 * hidden,
                        max_position_embeddings=positions)
    config.num_labels = 3
    torch.manual_seed(1234)
    with ts._quiet_transformers():  # no "Writing model shards" bar
        if weights:
            BertForSequenceClassification(config).save_pretrained(directory)
        else:
            config.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: a 32-wide model gains nothing from two, and two slow down badly on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("tiny"), KETO_WORDS + CARB_WORDS)


@pytest.fixture(scope="module")
def trained(tiny: Path) -> tuple[TransformerStudent, list[str]]:
    texts, labels = _dataset()
    messages: list[str] = []
    student = TransformerStudent(CLASSES, TransformerSettings(model=str(tiny), epochs=5, patience=5, **FAST),
                                 device="cpu")
    return student.fit(texts, labels, progress=messages.append), messages


def _settings(tiny: Path, **overrides: object) -> TransformerSettings:
    return TransformerSettings(**{"model": str(tiny), "epochs": 2, **FAST, **overrides})


# -- learning ----------------------------------------------------------------------------------------


def test_learns_a_separable_task(trained: tuple[TransformerStudent, list[str]]) -> None:
    student, _ = trained
    texts, labels = _dataset()
    probabilities = student.predict_proba(texts)
    assert probabilities.shape == (60, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    accuracy = np.mean([p == label for p, label in zip(student.predict(texts), labels, strict=True)])
    assert accuracy >= 0.9
    # unseen combinations and an unknown word still land on the side of their known words
    assert student.predict(["salmon cream", "oats noodles", "bacon zucchini"]) == ["keto", "not_keto", "keto"]
    assert student.predict([]) == [] and student.predict_proba([]).shape == (0, 2)


def test_reports_progress_and_describes_training(trained: tuple[TransformerStudent, list[str]]) -> None:
    student, messages = trained
    assert len(messages) == 5
    for number, message in enumerate(messages, start=1):
        assert message.startswith(f"epoch {number}/5: train loss ")
        assert ", validation loss " in message and ", accuracy " in message
    described = student.describe()
    assert {key: described[key] for key in ("provider", "model", "device", "weights", "epochs", "epochs_run",
                                            "training_examples", "validation_examples", "max_length")} == {
        "provider": "transformers", "model": student.settings.model, "device": "cpu", "weights": "loaded",
        "epochs": 5, "epochs_run": 5, "training_examples": 54, "validation_examples": 6,
        "max_length": 64,  # 128 asked for, capped by the model's 64 positions
    }
    assert described["training_labels"] == {"keto": 30, "not_keto": 30}
    assert described["parameters"] == sum(p.numel() for p in student.model_.parameters()) > 10_000
    history = described["history"]
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5]
    losses = [record["validation_loss"] for record in history]
    assert described["best_epoch"] == 1 + losses.index(min(losses))
    assert history[-1]["validation_accuracy"] == 1.0 and losses[-1] < losses[0]
    json.dumps(described)  # all of it goes into student.json


def test_the_same_seed_gives_the_same_model(tiny: Path) -> None:
    texts, labels = _dataset()
    first, second = (TransformerStudent(CLASSES, _settings(tiny, seed=7)).fit(texts, labels) for _ in range(2))
    np.testing.assert_array_equal(first.predict_proba(texts), second.predict_proba(texts))
    other = TransformerStudent(CLASSES, _settings(tiny, seed=8)).fit(texts, labels)
    assert not np.allclose(first.predict_proba(texts), other.predict_proba(texts))


def test_sample_weights_multiply_the_loss(tiny: Path, trained: tuple[TransformerStudent, list[str]]) -> None:
    texts, labels = _dataset()
    weights = [0.0 if label == "not_keto" else 1.0 for label in labels]
    weighted = TransformerStudent(CLASSES, _settings(tiny, epochs=5, patience=5)).fit(texts, labels, weights)
    carbs = [t for t, label in zip(texts, labels, strict=True) if label == "not_keto"]
    # with no weight on not_keto, nothing pulls its texts away from keto
    assert weighted.predict(carbs).count("keto") > len(carbs) // 2
    unweighted, _ = trained
    assert weighted.predict_proba(carbs)[:, 0].mean() > unweighted.predict_proba(carbs)[:, 0].mean() + 0.3


def test_early_stopping_keeps_the_best_epoch(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation losses 0.5, 0.4, 0.45 with patience 1: stop after epoch 3 of 6, with epoch 2's weights."""
    losses = iter([0.5, 0.4, 0.45, 0.3, 0.2, 0.1])
    snapshots: list[dict[str, Any]] = []

    def scripted(student: TransformerStudent, *_args: object) -> tuple[float, float]:
        snapshots.append({k: v.clone() for k, v in student.model_.state_dict().items()})
        return next(losses), 0.5

    monkeypatch.setattr(TransformerStudent, "_evaluate", scripted)
    texts, labels = _dataset()
    messages: list[str] = []
    student = TransformerStudent(CLASSES, _settings(tiny, epochs=6, patience=1)).fit(texts, labels,
                                                                                    progress=messages.append)
    described = student.describe()
    assert (described["epochs_run"], described["best_epoch"], described["stopped_early"]) == (3, 2, True)
    assert messages[-2:] == ["epoch 3/6: train loss " + messages[-2].split("train loss ")[1],
                             "stopping early: no validation improvement for 1 epoch; keeping epoch 2"]
    assert messages[1].endswith(", validation loss 0.40, accuracy 0.50")
    kept = student.model_.state_dict()
    assert all(torch.equal(kept[name], snapshots[1][name]) for name in kept)
    assert not all(torch.equal(kept[name], snapshots[2][name]) for name in kept)


def test_patience_counts_epochs_without_improvement(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    losses = iter([0.5, 0.6, 0.55, 0.7, 0.8])
    monkeypatch.setattr(TransformerStudent, "_evaluate", lambda *_args: (next(losses), 0.5))
    texts, labels = _dataset()
    described = TransformerStudent(CLASSES, _settings(tiny, epochs=5, patience=2)).fit(texts, labels).describe()
    assert (described["epochs_run"], described["best_epoch"], described["stopped_early"]) == (3, 1, True)


def test_a_tiny_training_set_has_no_validation(tiny: Path) -> None:
    texts, labels = _dataset(count=6)
    messages: list[str] = []
    student = TransformerStudent(CLASSES, _settings(tiny)).fit(texts, labels, progress=messages.append)
    described = student.describe()
    assert (described["training_examples"], described["validation_examples"], described["best_epoch"]) == (6, 0, 2)
    assert [m.split(": train loss")[0] for m in messages] == ["epoch 1/2", "epoch 2/2"]
    assert all(", validation" not in m for m in messages)
    assert all(record["validation_loss"] is None for record in described["history"])


def test_validation_split_is_per_class_and_seeded() -> None:
    targets = [0] * 30 + [1] * 8 + [2] * 1
    train, validation = ts._validation_split(targets, 0.1, seed=3)
    assert sorted(train + validation) == list(range(39))
    assert [sum(targets[r] == c for r in validation) for c in (0, 1, 2)] == [3, 1, 0]  # a lone example trains
    assert ts._validation_split(targets, 0.1, seed=3) == (train, validation)
    assert ts._validation_split(targets, 0.1, seed=4) != (train, validation)
    assert ts._validation_split([0, 1] * 4, 0.1, seed=0) == (list(range(8)), [])  # 0.8 of an example: none
    assert ts._validation_split(targets, 0.0, seed=0) == (list(range(39)), [])


def test_a_model_directory_without_weights_starts_from_random_weights(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "config-only", KETO_WORDS + CARB_WORDS, weights=False)
    texts, labels = _dataset(count=20)
    student = TransformerStudent(CLASSES, _settings(model, epochs=1)).fit(texts, labels)
    assert student.describe()["weights"] == "random"


# -- persistence -------------------------------------------------------------------------------------


def test_save_then_load_predicts_the_same(trained: tuple[TransformerStudent, list[str]], tmp_path: Path) -> None:
    student, _ = trained
    texts, _ = _dataset()
    student.save(tmp_path / "student")
    stored = json.loads((tmp_path / "student" / "student.json").read_text(encoding="utf-8"))
    assert (stored["format"], stored["classes"], stored["settings"]["epochs"]) == (1, ["keto", "not_keto"], 5)
    loaded = TransformerStudent.load(tmp_path / "student", device="cpu")
    assert loaded.classes == CLASSES and loaded.settings == student.settings
    np.testing.assert_allclose(loaded.predict_proba(texts), student.predict_proba(texts), rtol=0, atol=1e-6)
    assert loaded.predict_proba(texts, batch_size=7).shape == (60, 2)
    assert {k: v for k, v in loaded.describe().items() if k != "device"} == \
        {k: v for k, v in student.describe().items() if k != "device"}


def test_load_refuses_what_is_not_a_saved_student(trained: tuple[TransformerStudent, list[str]],
                                                  tmp_path: Path) -> None:
    with pytest.raises(TransformerStudentError, match="not a saved transformers student"):
        TransformerStudent.load(tmp_path)
    with pytest.raises(TransformerStudentError, match=r"not a directory"):
        TransformerStudent.load(tmp_path / "absent")
    student, _ = trained
    student.save(tmp_path / "old")
    stored = json.loads((tmp_path / "old" / "student.json").read_text(encoding="utf-8"))
    (tmp_path / "old" / "student.json").write_text(json.dumps({**stored, "format": 99}), encoding="utf-8")
    with pytest.raises(TransformerStudentError) as caught:
        TransformerStudent.load(tmp_path / "old")
    assert str(caught.value) == (f"{tmp_path / 'old'}: the saved transformers student has format 99 (this taskc "
                                 "reads format 1); run `taskc run` again to retrain")


# -- errors ------------------------------------------------------------------------------------------


def test_one_class_in_the_labels_is_refused(tiny: Path) -> None:
    student = TransformerStudent(CLASSES, _settings(tiny))
    with pytest.raises(TransformerStudentError) as caught:
        student.fit(["bacon eggs", "steak"], ["keto", "keto"])
    assert str(caught.value) == ("cannot train the transformers student: the training data has only 'keto'; no "
                                 "example of 'not_keto' (add a rationale with a rule for it, or configure an LLM "
                                 "provider to generate examples)")


def test_an_unknown_label_is_refused_with_a_suggestion(tiny: Path) -> None:
    student = TransformerStudent(CLASSES, _settings(tiny))
    with pytest.raises(TransformerStudentError) as caught:
        student.fit(["bacon eggs", "rice"], ["keto", "not-keto"])
    assert str(caught.value) == ("cannot train the transformers student: example 2 has label 'not-keto', which is "
                                 "not one of the classes 'keto', 'not_keto'; did you mean 'not_keto'?")


@pytest.mark.parametrize(("texts", "labels", "weights", "message"), [
    ([], [], None, "no training examples"),
    (["a", "b"], ["keto"], None, "2 texts but 1 labels"),
    (["a", "b"], ["keto", "not_keto"], [1.0], "1 sample weights for 2 examples"),
    (["a", "b"], ["keto", "not_keto"], [1.0, -1.0], "example 2 has weight -1.0"),
    (["a", "b"], ["keto", "not_keto"], [0.0, 0.0], "every training example has weight 0"),
])
def test_a_training_set_that_cannot_train_is_refused(tiny: Path, texts: list[str], labels: list[str],
                                                     weights: list[float] | None, message: str) -> None:
    with pytest.raises(TransformerStudentError, match=message):
        TransformerStudent(CLASSES, _settings(tiny)).fit(texts, labels, weights)


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(TransformerStudentError) as caught:
        TransformerStudent(CLASSES, _settings(tmp_path)).fit(*_dataset(count=4))
    assert str(caught.value).startswith(f"model '{tmp_path}': the directory has no config.json, so it is not a "
                                        "Hugging Face model; set finetune.model to a local directory")
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")  # a config, but no tokenizer nor model type
    with pytest.raises(TransformerStudentError, match=rf"model '{tmp_path}' cannot be loaded: "):
        TransformerStudent(CLASSES, _settings(tmp_path)).fit(*_dataset(count=4))


def test_a_hub_model_is_refused_offline_with_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    student = TransformerStudent(CLASSES, TransformerSettings(model="some-org/some-model"))
    with pytest.raises(TransformerStudentError) as caught:
        student.fit(*_dataset(count=4))
    assert str(caught.value).startswith("model 'some-org/some-model' is not a local directory, and HF_HUB_OFFLINE "
                                        "forbids downloading it from the Hugging Face hub; set finetune.model to a "
                                        "local directory that holds the model's config.json and tokenizer files")
    with pytest.raises(TransformerStudentError, match=r"model './no/such/model': no such directory; set finetune"):
        TransformerStudent(CLASSES, TransformerSettings(model="./no/such/model")).fit(*_dataset(count=4))


def test_settings_devices_and_classes_are_checked() -> None:
    with pytest.raises(TransformerStudentError) as caught:
        TransformerSettings(model="m", epochs=0, validation_split=1.0, learning_rate=-1)
    assert str(caught.value) == ("invalid transformers student settings: epochs must be an integer >= 1, not 0; "
                                 "learning_rate must be a number > 0, not -1; validation_split must be a number in "
                                 "[0, 1), not 1.0")
    with pytest.raises(TransformerStudentError, match="two or more distinct classes"):
        TransformerStudent(["keto"], TransformerSettings(model="m"))
    with pytest.raises(TransformerStudentError, match="unknown device 'gpu0'"):
        TransformerStudent(CLASSES, TransformerSettings(model="m"), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(TransformerStudentError, match="this machine has no cuda device"):
            TransformerStudent(CLASSES, TransformerSettings(model="m"), device="cuda")
    with pytest.raises(TransformerStudentError, match="not trained yet"):
        TransformerStudent(CLASSES, TransformerSettings(model="m")).predict(["bacon"])


# -- the optional dependency -------------------------------------------------------------------------


def test_missing_dependencies_is_none_here() -> None:
    assert missing_dependencies() is None


def test_the_module_imports_without_the_extra() -> None:
    """Without torch, importing works, missing_dependencies() says what to install and the student refuses."""
    script = ("import sys; sys.modules['torch'] = None; "
              "from taskc.runtime import transformer_student as ts; print(ts.missing_dependencies()); "
              "ts.TransformerStudent(['a', 'b'], ts.TransformerSettings(model='m'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stdout.strip() == ("finetune.provider 'transformers' needs torch, which does not import here; "
                                   f"install the extra: {INSTALL_HINT}")
    assert "TransformerStudentError: finetune.provider 'transformers' needs torch" in done.stderr
