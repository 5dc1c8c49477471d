"""The transformers student: fine-tunes a Hugging Face sequence classifier on the training set.

Third stage of the run when `finetune.provider: transformers`, in place of the
local model (`local_model.py`): the same training examples (text, label,
weight) go into a pretrained encoder with a fresh classification head, trained
with a plain PyTorch loop (AdamW, linear warm-up then decay) on the GPU when
there is one and on the CPU otherwise. A seeded, per-class validation split
drives early stopping, and the best epoch's weights are the ones kept. The
estimator follows scikit-learn's shape (`fit`, `predict_proba`, `predict`,
`describe`) so that `taskc predict` can serve it beside the local model.

torch and transformers are an optional extra (`pip install 'taskc-compiler[transformers]'`):
they are imported inside the functions that need them, so this module imports
without them and `missing_dependencies()` says what is missing. The model is
never downloaded behind the user's back when HF_HUB_OFFLINE is set, and
`trust_remote_code` is never passed: a model id names weights, not code to run.

A saved student is a directory: the model's and tokenizer's `save_pretrained`
files, then `student.json` (classes, settings, `describe()`), written last so
that a directory with a student.json holds a whole model.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from taskc.compiler import ExitStatus, TaskcError, did_you_mean

from .datasets import write_json

INSTALL_HINT = "pip install 'taskc-compiler[transformers]'"
PROVIDER = "transformers"
STUDENT_FILE = "student.json"
FORMAT_VERSION = 1
WARMUP_FRACTION = 0.1  # of all optimisation steps, the usual share for fine-tuning an encoder
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
# weights a local model directory may hold; without any of them the model is built from its config, randomly
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_TRUE = {"1", "true", "yes", "on"}  # how huggingface_hub reads a boolean environment variable


class TransformerStudentError(TaskcError):
    """The transformers student cannot be built, trained, saved or loaded."""

    exit_status = ExitStatus.RUNTIME_FAILURE


def missing_dependencies() -> str | None:
    """None when torch and transformers import; otherwise what is missing and how to install it."""
    missing = []
    for name in ("torch", "transformers"):
        try:
            __import__(name)
        except Exception as exc:  # a broken install (missing shared library) is as missing as an absent one
            missing.append(name if isinstance(exc, ModuleNotFoundError) else f"{name} ({exc})")
    if not missing:
        return None
    return (f"finetune.provider 'transformers' needs {' and '.join(missing)}, which "
            f"{'does' if len(missing) == 1 else 'do'} not import here; install the extra: {INSTALL_HINT}")


@dataclass(frozen=True)
class TransformerSettings:
    model: str  # a Hugging Face model id or a local directory (config + tokenizer + optional weights)
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 128  # tokens per input, special tokens included
    validation_split: float = 0.1
    patience: int = 1  # epochs without validation improvement before stopping early
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.model, str) or not self.model.strip():
            problems.append("model must name a Hugging Face model id or a local directory")
        for name, least in (("epochs", 1), ("batch_size", 1), ("max_length", 2), ("patience", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                problems.append(f"{name} must be an integer >= {least}, not {value!r}")
        if not _is_number(self.learning_rate) or not self.learning_rate > 0:
            problems.append(f"learning_rate must be a number > 0, not {self.learning_rate!r}")
        if not _is_number(self.validation_split) or not 0 <= self.validation_split < 1:
            problems.append(f"validation_split must be a number in [0, 1), not {self.validation_split!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            problems.append(f"seed must be an integer, not {self.seed!r}")
        if problems:
            raise TransformerStudentError("invalid transformers student settings: " + "; ".join(problems))


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float | None
    validation_accuracy: float | None

    def line(self, epochs: int) -> str:
        text = f"epoch {self.epoch}/{epochs}: train loss {self.train_loss:.2f}"
        if self.validation_loss is not None and self.validation_accuracy is not None:
            text += f", validation loss {self.validation_loss:.2f}, accuracy {self.validation_accuracy:.2f}"
        return text


class TransformerStudent:
    """A pretrained encoder + a classification head over `classes`, fine-tuned on (text, label, weight)."""

    def __init__(self, classes: Sequence[str], settings: TransformerSettings, device: str | None = None) -> None:
        _require_dependencies()
        self.classes = tuple(classes)
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise TransformerStudentError(f"the transformers student needs two or more distinct classes, "
                                          f"got {list(self.classes)!r}")
        if not all(isinstance(c, str) and c for c in self.classes):
            raise TransformerStudentError(f"class names must be non-empty strings, got {list(self.classes)!r}")
        self.settings = settings
        self.device = _resolve_device(device)
        self.model_: Any = None
        self.tokenizer_: Any = None
        self.max_length_ = settings.max_length
        self.weights_ = ""  # "loaded" from the model's files, or "random" (a directory with no weights)
        self.history_: list[EpochRecord] = []
        self.best_epoch_: int | None = None
        self.stopped_early_ = False
        self.training_examples_ = 0
        self.validation_examples_ = 0
        self.training_labels_: dict[str, int] = {}
        self.trained_on_ = ""

    def get_params(self) -> dict[str, Any]:
        return asdict(self.settings)

    # -- learning ------------------------------------------------------------------------------------

    def fit(self, texts: Sequence[str], labels: Sequence[str], sample_weight: Sequence[float] | None = None,
            progress: Callable[[str], None] | None = None) -> TransformerStudent:
        import torch

        targets = self._check_training_set(texts, labels)
        weights = _check_weights(sample_weight, len(targets))
        settings = self.settings
        say = progress or (lambda _message: None)
        # the seed covers the new head's initial weights, dropout and (through `shuffle`) the batch order
        torch.manual_seed(settings.seed)
        self.tokenizer_, self.model_, self.weights_ = _load_pretrained(settings.model, self.classes)
        self.max_length_ = _usable_max_length(settings.max_length, self.tokenizer_, self.model_)
        self.model_.to(self.device)

        train_rows, validation_rows = _validation_split(targets, settings.validation_split, settings.seed)
        texts = [str(t) for t in texts]
        train_texts = [texts[i] for i in train_rows]
        train_targets = torch.tensor([targets[i] for i in train_rows], dtype=torch.long)
        train_weights = torch.tensor([weights[i] for i in train_rows], dtype=torch.float32)
        if float(train_weights.sum()) <= 0:  # the weight is all on the held-out examples
            raise TransformerStudentError("cannot train the transformers student: every example outside the "
                                          "validation split has weight 0")
        steps_per_epoch = math.ceil(len(train_rows) / settings.batch_size)
        optimizer, scheduler = _optimizer(self.model_, settings, steps_per_epoch * settings.epochs)
        shuffle = random.Random(settings.seed)

        self.history_, self.best_epoch_, self.stopped_early_ = [], None, False
        best_loss, best_state, stale = math.inf, None, 0
        for epoch in range(1, settings.epochs + 1):
            self.model_.train()
            order = list(range(len(train_rows)))
            shuffle.shuffle(order)
            loss_sum, weight_sum = 0.0, 0.0
            for start in range(0, len(order), settings.batch_size):
                batch = order[start:start + settings.batch_size]
                batch_weights = train_weights[batch].to(self.device)
                total = float(batch_weights.sum())
                if total <= 0:  # nothing to learn from; the schedule still moves on as planned
                    scheduler.step()
                    continue
                logits = self.model_(**self._encode([train_texts[i] for i in batch])).logits
                losses = torch.nn.functional.cross_entropy(logits.float(), train_targets[batch].to(self.device),
                                                           reduction="none")
                loss = (losses * batch_weights).sum() / total
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model_.parameters(), MAX_GRAD_NORM)
                optimizer.step()
                scheduler.step()
                loss_sum += float(loss.detach()) * total
                weight_sum += total
            train_loss = loss_sum / weight_sum if weight_sum else 0.0
            if not math.isfinite(train_loss):
                raise TransformerStudentError(f"training the transformers student diverged in epoch {epoch} (the "
                                              f"loss is {train_loss}); lower learning_rate (now "
                                              f"{settings.learning_rate:g})")
            validation = (self._evaluate([texts[i] for i in validation_rows], [targets[i] for i in validation_rows],
                                         [weights[i] for i in validation_rows]) if validation_rows else None)
            record = EpochRecord(epoch, round(train_loss, 6), *(validation or (None, None)))
            self.history_.append(record)
            say(record.line(settings.epochs))
            if validation is None:
                self.best_epoch_ = epoch
                continue
            if validation[0] < best_loss:
                best_loss, self.best_epoch_, stale = validation[0], epoch, 0
                # on the CPU, so that a GPU holds one copy of the model, not two
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model_.state_dict().items()}
            else:
                stale += 1
                if stale >= settings.patience and epoch < settings.epochs:
                    self.stopped_early_ = True
                    say(f"stopping early: no validation improvement for {stale} epoch{'s' if stale > 1 else ''}; "
                        f"keeping epoch {self.best_epoch_}")
                    break
        if best_state is not None and self.best_epoch_ != len(self.history_):
            self.model_.load_state_dict(best_state)
        self.model_.eval()
        self.training_examples_ = len(train_rows)
        self.validation_examples_ = len(validation_rows)
        self.training_labels_ = dict(sorted(Counter(str(label) for label in labels).items()))
        self.trained_on_ = self.device
        return self

    def _check_training_set(self, texts: Sequence[str], labels: Sequence[str]) -> list[int]:
        """The labels as class indices, after the checks that make a training set trainable."""
        if len(texts) != len(labels):
            raise TransformerStudentError(f"cannot train the transformers student: {len(texts)} texts but "
                                          f"{len(labels)} labels")
        if not len(texts):
            raise TransformerStudentError("cannot train the transformers student: no training examples (name a "
                                          "pool the rules can label, or configure an LLM provider to generate "
                                          "examples)")
        index = {name: i for i, name in enumerate(self.classes)}
        for number, label in enumerate(labels, start=1):
            if label not in index:
                hint = did_you_mean(str(label), self.classes)
                raise TransformerStudentError(
                    f"cannot train the transformers student: example {number} has label {label!r}, which is not "
                    f"one of the classes {', '.join(repr(c) for c in self.classes)}" + (f"; {hint}" if hint else ""))
        present = sorted(set(labels), key=self.classes.index)
        if len(present) < 2:
            missing = [c for c in self.classes if c not in present]
            raise TransformerStudentError(
                f"cannot train the transformers student: the training data has only {present[0]!r}; no example of "
                f"{', '.join(repr(c) for c in missing)} (add a rationale with a rule for it, or configure an LLM "
                f"provider to generate examples)")
        return [index[label] for label in labels]

    def _evaluate(self, texts: list[str], targets: list[int], weights: list[float]) -> tuple[float, float]:
        """(weighted cross-entropy, weighted accuracy) on held-out examples; unweighted if all weights are 0."""
        probabilities = self.predict_proba(texts)
        w = np.asarray(weights, dtype=np.float64)
        if w.sum() <= 0:
            w = np.ones_like(w)
        picked = probabilities[np.arange(len(targets)), targets]
        loss = float((-np.log(np.clip(picked, 1e-12, None)) * w).sum() / w.sum())
        accuracy = float(((probabilities.argmax(axis=1) == np.asarray(targets)) * w).sum() / w.sum())
        return round(loss, 6), round(accuracy, 6)

    # -- prediction ----------------------------------------------------------------------------------

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """(items, classes) probabilities in the order of `classes`; each row sums to 1."""
        import torch

        self._require_fitted()
        size = batch_size or self.settings.batch_size
        if size < 1:
            raise TransformerStudentError(f"batch_size must be >= 1, not {size}")
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), len(self.classes)), dtype=np.float64)
        # longest first, so that a batch's texts have about the same length and little padding
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        self.model_.eval()
        with torch.inference_mode():
            for start in range(0, len(order), size):
                rows = order[start:start + size]
                logits = self.model_(**self._encode([texts[i] for i in rows])).logits
                out[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        if len(texts):
            out /= out.sum(axis=1, keepdims=True)  # float32 softmax → float64 rows that sum to 1 exactly enough
        return out

    def predict(self, texts: Sequence[str]) -> list[str]:
        probabilities = self.predict_proba(texts)
        return [self.classes[int(i)] for i in probabilities.argmax(axis=1)] if len(probabilities) else []

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        encoded = self.tokenizer_(texts, padding=True, truncation=True, max_length=self.max_length_,
                                  return_tensors="pt")
        return {name: tensor.to(self.device) for name, tensor in encoded.items()}

    def _require_fitted(self) -> None:
        if self.model_ is None:
            raise TransformerStudentError("the transformers student is not trained yet: call fit() or load()")

    # -- explanation ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What the student is, where it runs, and how its training went (student.json's `describe`)."""
        import torch
        import transformers

        parameters = sum(p.numel() for p in self.model_.parameters()) if self.model_ is not None else 0
        return {
            "provider": PROVIDER, "model": self.settings.model, "weights": self.weights_,
            "architecture": type(self.model_).__name__ if self.model_ is not None else None,
            "device": self.device, "trained_on": self.trained_on_,
            "classes": list(self.classes),
            "epochs": self.settings.epochs, "epochs_run": len(self.history_), "best_epoch": self.best_epoch_,
            "stopped_early": self.stopped_early_,
            "history": [asdict(record) for record in self.history_],
            "training_examples": self.training_examples_, "validation_examples": self.validation_examples_,
            "training_labels": dict(self.training_labels_),
            "parameters": int(parameters), "max_length": self.max_length_,
            "torch_version": torch.__version__, "transformers_version": transformers.__version__,
        }

    # -- persistence ---------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """The model's and tokenizer's files, then student.json last: a directory with one is whole."""
        self._require_fitted()
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / STUDENT_FILE).unlink(missing_ok=True)  # an older student's file must not vouch for this
            with _quiet_transformers():
                self.model_.save_pretrained(directory)
                self.tokenizer_.save_pretrained(directory)
        except OSError as exc:
            raise TransformerStudentError(f"{directory}: cannot save the transformers student: {exc}") from None
        write_json(directory / STUDENT_FILE, {"format": FORMAT_VERSION, "classes": list(self.classes),
                                              "settings": asdict(self.settings), "describe": self.describe()})

    @classmethod
    def load(cls, directory: Path, device: str | None = None) -> TransformerStudent:
        """Reload a saved student; refuse a directory that is not one, or one of another format version."""
        _require_dependencies()
        directory = Path(directory)
        if not directory.is_dir():
            raise TransformerStudentError(f"{directory}: no saved transformers student (not a directory)")
        try:
            stored = json.loads((directory / STUDENT_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TransformerStudentError(f"{directory}: not a saved transformers student ({STUDENT_FILE} "
                                          "missing)") from None
        except (OSError, ValueError) as exc:
            raise TransformerStudentError(f"{directory}: cannot read {STUDENT_FILE}: {exc}") from None
        if not isinstance(stored, dict) or stored.get("format") != FORMAT_VERSION:
            found = stored.get("format") if isinstance(stored, dict) else None
            raise TransformerStudentError(f"{directory}: the saved transformers student has format {found!r} "
                                          f"(this taskc reads format {FORMAT_VERSION}); run `taskc run` again "
                                          "to retrain")
        classes, settings = stored.get("classes"), stored.get("settings")
        if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes) and isinstance(settings, dict)):
            raise TransformerStudentError(f"{directory}: {STUDENT_FILE} lacks its classes or settings")
        known = {f.name for f in fields(TransformerSettings)}
        try:
            restored = TransformerSettings(**{k: v for k, v in settings.items() if k in known})
        except TypeError as exc:  # a setting without a default (the model) is missing
            raise TransformerStudentError(f"{directory}: {STUDENT_FILE} has incomplete settings: {exc}") from None
        student = cls(classes, restored, device)
        student.tokenizer_, student.model_ = _from_directory(directory)
        if int(getattr(student.model_.config, "num_labels", -1)) != len(classes):
            raise TransformerStudentError(f"{directory}: the saved model has {student.model_.config.num_labels} "
                                          f"outputs but {STUDENT_FILE} names {len(classes)} classes")
        student.model_.to(student.device)
        student.model_.eval()
        try:
            student._restore(stored.get("describe"))
        except (TypeError, ValueError) as exc:
            raise TransformerStudentError(f"{directory}: {STUDENT_FILE} has a malformed describe record: "
                                          f"{exc}") from None
        return student

    def _restore(self, described: Any) -> None:
        """Training facts from student.json, so that describe() of a loaded student tells how it was trained."""
        described = described if isinstance(described, dict) else {}
        self.weights_ = str(described.get("weights", ""))
        self.max_length_ = int(described.get("max_length", self.settings.max_length))
        self.history_ = [EpochRecord(**record) for record in described.get("history", [])
                         if isinstance(record, dict) and set(record) == {f.name for f in fields(EpochRecord)}]
        self.best_epoch_ = described.get("best_epoch")
        self.stopped_early_ = bool(described.get("stopped_early", False))
        self.training_examples_ = int(described.get("training_examples", 0))
        self.validation_examples_ = int(described.get("validation_examples", 0))
        self.training_labels_ = dict(described.get("training_labels", {}))
        self.trained_on_ = str(described.get("trained_on", ""))


# -- helpers -----------------------------------------------------------------------------------------


def _require_dependencies() -> None:
    message = missing_dependencies()
    if message:
        raise TransformerStudentError(message)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _resolve_device(device: str | None) -> str:
    """"cuda" if there is a GPU, else "mps" (Apple), else "cpu"; a device asked for must be there."""
    import torch

    if device is None:
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise TransformerStudentError(f"unknown device {device!r} ({exc}); use cpu, cuda, cuda:N or mps") from None
    mps = getattr(torch.backends, "mps", None)
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": mps is not None and mps.is_available()}
    if not available.get(kind, True):
        raise TransformerStudentError(f"device {device!r} was asked for but this machine has no {kind} device; "
                                      "leave the device unset to use the best one present")
    return str(device)


def _hub_offline() -> str | None:
    """The environment variable that switches the Hugging Face hub off, if one does."""
    return next((name for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
                 if os.environ.get(name, "").strip().lower() in _TRUE), None)


_LOCAL_HINT = ("set finetune.model to a local directory that holds the model's config.json and tokenizer files "
               "(and its weights; without them the model starts from random weights), e.g. one written by "
               "save_pretrained() or by `hf download MODEL --local-dir DIR` on a machine that can reach the hub")


def _load_pretrained(source: str, classes: tuple[str, ...]) -> tuple[Any, Any, str]:
    """(tokenizer, model with a fresh head for `classes`, "loaded" | "random") from a directory or a hub id."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    labels: dict[str, Any] = {"num_labels": len(classes), "id2label": dict(enumerate(classes)),
                              "label2id": {name: i for i, name in enumerate(classes)}}
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TransformerStudentError(f"model {source!r}: the directory has no config.json, so it is not a "
                                          f"Hugging Face model; {_LOCAL_HINT}")
        local, source = True, str(path)
    elif path.is_absolute() or source.startswith(("./", "../", "~")):  # a path, not a hub id (owner/name)
        raise TransformerStudentError(f"model {source!r}: no such directory; {_LOCAL_HINT}")
    elif offline := _hub_offline():
        raise TransformerStudentError(f"model {source!r} is not a local directory, and {offline} forbids "
                                      f"downloading it from the Hugging Face hub; {_LOCAL_HINT}")
    else:
        local = False
    with _quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            if local and not any((path / name).is_file() for name in _WEIGHT_FILES):
                config = AutoConfig.from_pretrained(source, **labels)
                model, weights = AutoModelForSequenceClassification.from_config(config), "random"
            else:
                model = AutoModelForSequenceClassification.from_pretrained(source, ignore_mismatched_sizes=True,
                                                                           **labels)
                weights = "loaded"
        except Exception as exc:  # OSError, ValueError, the hub's HTTP errors, ...: a library error stops here
            where = "" if local else " (downloading it from the Hugging Face hub failed, or it is not a model id)"
            raise TransformerStudentError(f"model {source!r} cannot be loaded{where}: {_first_line(exc)}; "
                                          f"{_LOCAL_HINT}") from None
    _ensure_padding(tokenizer, model, source)
    return tokenizer, model, weights


def _from_directory(directory: Path) -> tuple[Any, Any]:
    """The tokenizer and model of a saved student, as saved (its head already sized for its classes)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    with _quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(directory))
            model = AutoModelForSequenceClassification.from_pretrained(str(directory))
        except Exception as exc:
            raise TransformerStudentError(f"{directory}: cannot load the saved transformers student's model: "
                                          f"{_first_line(exc)}") from None
    _ensure_padding(tokenizer, model, str(directory))
    return tokenizer, model


def _ensure_padding(tokenizer: Any, model: Any, source: str) -> None:
    """Batches need a padding token; decoder-style models (GPT-2) ship none and pad with end-of-text."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TransformerStudentError(f"model {source!r}: its tokenizer has neither a padding nor an "
                                          "end-of-text token, so inputs cannot be batched")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def _usable_max_length(wanted: int, tokenizer: Any, model: Any) -> int:
    """`max_length`, capped by what the model's position embeddings and the tokenizer allow."""
    limits = [wanted]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and tokenizer_limit < 1_000_000:  # "no limit" is a huge sentinel
        limits.append(tokenizer_limit)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits)


def _validation_split(targets: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training rows, validation rows): per class, a seeded `fraction` of its examples, at least one of a class
    with two or more; no validation at all when the set is too small for `fraction` to hold one example."""
    if fraction <= 0 or len(targets) * fraction < 1:
        return list(range(len(targets))), []
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for row, target in enumerate(targets):
        by_class.setdefault(target, []).append(row)
    held: set[int] = set()
    for target in sorted(by_class):
        rows = by_class[target]
        if len(rows) < 2:
            continue  # its only example is worth more in training
        rng.shuffle(rows)
        held.update(rows[:min(len(rows) - 1, max(1, round(len(rows) * fraction)))])
    return [r for r in range(len(targets)) if r not in held], sorted(held)


def _check_weights(sample_weight: Sequence[float] | None, count: int) -> list[float]:
    if sample_weight is None:
        return [1.0] * count
    weights = [float(w) for w in sample_weight]
    if len(weights) != count:
        raise TransformerStudentError(f"cannot train the transformers student: {len(weights)} sample weights "
                                      f"for {count} examples")
    bad = next((i for i, w in enumerate(weights, start=1) if not math.isfinite(w) or w < 0), None)
    if bad is not None:
        raise TransformerStudentError(f"cannot train the transformers student: example {bad} has weight "
                                      f"{weights[bad - 1]!r}; weights must be finite and >= 0")
    if count and not sum(weights) > 0:
        raise TransformerStudentError("cannot train the transformers student: every training example has weight 0")
    return weights


def _optimizer(model: Any, settings: TransformerSettings, steps: int) -> tuple[Any, Any]:
    """AdamW without weight decay on biases and norms, under a linear warm-up then linear decay to zero."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    decayed: list[Any] = []
    plain: list[Any] = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (plain if parameter.ndim < 2 or "norm" in name.lower() else decayed).append(parameter)
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": WEIGHT_DECAY},
                                   {"params": plain, "weight_decay": 0.0}], lr=settings.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(steps * WARMUP_FRACTION), max(steps, 1))
    return optimizer, scheduler


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading and saving chatter ("Some weights ... newly initialized: you should TRAIN
    this model", progress bars for a few shards): a fresh head is the point here, and taskc reports its own
    progress. The previous verbosity and progress bar setting are restored afterwards."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


__all__ = ["INSTALL_HINT", "TransformerSettings", "TransformerStudent", "TransformerStudentError",
           "missing_dependencies"]
