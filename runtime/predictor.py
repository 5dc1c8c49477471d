"""The run's offline predictors, as one object that `taskc run` scores and saves and `taskc predict` serves.

Three predictors need no LLM:

- `labeling_functions`: the rules alone, their votes combined by the label
  model fitted on the pool (a majority vote without a pool); abstains where no
  rule fires;
- `local_model`: the student (`local_model.LocalModel`), which always answers;
- `rules_then_model`: the cascade: the rules' label where a rule fires, the
  local model's elsewhere. It is the default primary: where the expert wrote a
  rule the expert's knowledge decides (and stays explainable by the rules that
  fired); where the expert wrote none, the model's guess is better than no
  answer. So it is never worse than the rules with abstentions counted as errors,
  and never worse than the model where the rules are right.

With a `finetune.provider` student (`students.py`: embeddings or transformers)
two more: `finetuned` (the student alone) and `rules_then_finetuned` (the same
cascade with the student in the local model's place).

Everything is saved under RUN_DIR/model/: the local model (model.joblib,
metadata.json), the label model (label_model.json) and predictor.json (which
task and spec hash, which predictor is primary, where the task file is). A model
is served only for the task version it was trained for (`features.spec_hash`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from taskc.compiler import TaskcError, TaskIR

from . import label_model
from .datasets import write_json
from .features import ItemBatch, spec_hash
from .labeling import LabelingFunction, RuleVoter, fired_rules
from .local_model import LocalModel, LocalModelError
from .local_model import load as load_local_model
from .students import STUDENT_DIR, Embed, Student, StudentError, load_student

PREDICTOR_FILE = "predictor.json"
LABEL_MODEL_FILE = "label_model.json"
FORMAT_VERSION = 1
OFFLINE_PREDICTORS = ("rules_then_model", "local_model", "labeling_functions")
STUDENT_PREDICTORS = ("rules_then_finetuned", "finetuned")  # with a finetune.provider student


class PredictorError(TaskcError):
    """A saved predictor that cannot be served (missing, damaged, or trained for another task version)."""


@dataclass(frozen=True)
class Prediction:
    label: str | None  # None: the rules abstained (labeling_functions only)
    confidence: float | None
    predictor: str  # which predictor decided: for the cascade, labeling_functions or local_model
    rules: dict[str, str]  # rationale id -> class, for the rules that fired


@dataclass
class Predictors:
    """The rules (with their label model) and the local model of one run, for one task version."""

    task: TaskIR
    functions: tuple[LabelingFunction, ...]
    label_model: label_model.LabelModelResult | None  # None: the rules' votes are combined by majority
    local: LocalModel | None  # None: the local model could not be trained
    student: Student | None = None  # the finetune.provider student (embeddings, transformers), when trained
    voter: RuleVoter = field(init=False, repr=False)  # the rules' votes, remembered across batches

    def __post_init__(self) -> None:
        self.voter = RuleVoter(self.task, self.functions)

    @property
    def available(self) -> tuple[str, ...]:
        offline = OFFLINE_PREDICTORS if self.local is not None else ("labeling_functions",)
        return offline + (STUDENT_PREDICTORS if self.student is not None else ())

    def rule_labels(self, batch: ItemBatch) -> tuple[list[str | None], np.ndarray]:
        """The rules' label per item (None where none fired) and its posterior."""
        classes = self.task.class_names
        if self.label_model is not None:
            labels, probabilities = label_model.predict(self.label_model, batch.votes)
        else:
            labels = label_model.majority_vote(batch.votes, len(classes))
            probabilities = label_model.vote_shares(batch.votes, len(classes))
        return label_model.label_names(labels, classes), probabilities

    def predict(self, batch: ItemBatch, predictor: str) -> list[Prediction]:
        if predictor not in self.available:
            raise PredictorError(f"the predictor '{predictor}' is not available here (available: "
                                 f"{', '.join(self.available)})")
        rows = list(map(tuple, batch.votes.tolist()))
        distinct = list(dict.fromkeys(rows))  # a batch of thousands has a few dozen distinct rows
        fired = {row: fired_rules(self.functions, np.asarray(row)) for row in distinct}  # shared by the answers
        decided = self._decisions(distinct, fired, predictor)
        out: list[Prediction | None] = [decided.get(row) for row in rows]
        # the local model only where nobody answered yet (in the cascade: where no rule fired)
        rest = [i for i, answer in enumerate(out) if answer is None]
        if rest:
            uses_student = predictor in STUDENT_PREDICTORS
            model = self.student if uses_student else self.local
            assert model is not None
            name = "finetuned" if uses_student else "local_model"
            classes = self.task.class_names
            probabilities = model.predict_proba(ItemBatch(tuple(batch.values[i] for i in rest), batch.votes[rest]))
            for i, row in zip(rest, probabilities, strict=True):
                best = int(row.argmax())
                out[i] = Prediction(classes[best], float(row[best]), name, fired[rows[i]])
        return [answer for answer in out if answer is not None]

    def _decisions(self, distinct: list[tuple[int, ...]], fired: dict[tuple[int, ...], dict[str, str]],
                   predictor: str) -> dict[tuple[int, ...], Prediction]:
        """The rules' answer per distinct row of votes (it depends on the row alone): rows the rules leave
        to a model are absent."""
        if predictor in ("local_model", "finetuned") or not distinct:
            return {}
        votes = np.array(distinct, dtype=np.int64).reshape(len(distinct), len(self.functions))
        ruled, posterior = self.rule_labels(ItemBatch((), votes))
        sureness = posterior.max(axis=1).tolist()
        return {row: Prediction(label, sureness[k] if label is not None else None, "labeling_functions", fired[row])
                for k, (row, label) in enumerate(zip(distinct, ruled, strict=True))
                if label is not None or predictor == "labeling_functions"}

    def labels(self, batch: ItemBatch, predictor: str) -> list[str | None]:
        return [p.label for p in self.predict(batch, predictor)]

    # -- persistence ---------------------------------------------------------------------------------

    def save(self, directory: Path, *, primary: str, spec_path: Path, taskc_version: str) -> None:
        """predictor.json and label_model.json (the local model saves itself beside them)."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.label_model is not None:
            write_json(directory / LABEL_MODEL_FILE, {
                "rules": [f.rationale_id for f in self.functions], "classes": list(self.task.class_names),
                "class_prior": self.label_model.class_prior.tolist(),
                "confusion": self.label_model.confusion.tolist()})
        else:
            (directory / LABEL_MODEL_FILE).unlink(missing_ok=True)
        write_json(directory / PREDICTOR_FILE, {
            "format": FORMAT_VERSION, "task": self.task.name, "spec_hash": spec_hash(self.task),
            "spec": os.path.relpath(spec_path.resolve(), directory.resolve()), "primary": primary,
            "predictors": list(self.available), "label_model": self.label_model is not None,
            "student": None if self.student is None else self.student.describe(),
            "taskc_version": taskc_version})
        if self.student is not None:
            self.student.save(directory / STUDENT_DIR)


def read_manifest(directory: Path) -> dict[str, Any]:
    """predictor.json of a run's model directory (RUN_DIR/model), checked for shape."""
    path = directory / PREDICTOR_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictorError(f"{path}: not found: no trained predictor here (run `taskc run SPEC` first; "
                             "RUN_DIR is the run's directory, runs/<task> by default)") from None
    except (OSError, ValueError) as exc:
        raise PredictorError(f"{path}: cannot read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise PredictorError(f"{path}: not a predictor manifest this taskc can read (format "
                             f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    return manifest


def spec_path_of(directory: Path, manifest: dict[str, Any]) -> Path:
    """Where the task file the predictor was trained from is (as recorded, relative to the model directory)."""
    return (directory / str(manifest.get("spec", ""))).resolve()


def version_mismatch(manifest: dict[str, Any], task: TaskIR) -> str | None:
    """How a run's predictor.json differs from ``task`` ("another version of the task (...)"), or None."""
    expected = spec_hash(task)
    if manifest.get("task") == task.name and manifest.get("spec_hash") == expected:
        return None
    return (f"another version of the task (task {manifest.get('task')!r}, spec hash "
            f"{str(manifest.get('spec_hash'))[:12]}; this task file: {task.name!r}, {expected[:12]}): its fields, "
            "classes, lexicons or rules changed since")


def load_predictors(directory: Path, task: TaskIR, functions: Sequence[LabelingFunction],
                    embed_for: Callable[[str], Embed] | None = None, *, with_student: bool = True) -> Predictors:
    """Reload a run's predictors for ``task``; refuse them when the task's spec hash differs.

    The student (finetuned, rules_then_finetuned) is loaded when ``with_student`` and the run trained one;
    an embeddings student needs ``embed_for(model)``, the embedder of its endpoint."""
    manifest = read_manifest(directory)
    mismatch = version_mismatch(manifest, task)
    if mismatch:
        raise PredictorError(f"{directory}: the predictor was trained for {mismatch}. Run `taskc run` on this task "
                             "file to train a predictor for it")
    expected = spec_hash(task)
    fitted = _load_label_model(directory, task, functions) if manifest.get("label_model") else None
    local = None
    if "local_model" in (manifest.get("predictors") or ()):
        try:
            local = load_local_model(directory, task, functions, expected)
        except LocalModelError as exc:
            raise PredictorError(str(exc)) from None
    student = None
    if with_student and manifest.get("student"):
        try:
            student = load_student(directory / STUDENT_DIR, task, functions, embed_for)
        except StudentError as exc:
            raise PredictorError(str(exc)) from None
    return Predictors(task, tuple(functions), fitted, local, student)


def _load_label_model(directory: Path, task: TaskIR,
                      functions: Sequence[LabelingFunction]) -> label_model.LabelModelResult:
    path = directory / LABEL_MODEL_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        prior = np.asarray(state["class_prior"], dtype=np.float64)
        confusion = np.asarray(state["confusion"], dtype=np.float64)
        rules = list(state["rules"])
    except FileNotFoundError:
        raise PredictorError(f"{path}: missing (the run's model directory is incomplete; run `taskc run` "
                             "again)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PredictorError(f"{path}: cannot read the label model: {exc}") from None
    n_classes = len(task.class_names)
    if rules != [f.rationale_id for f in functions] or prior.shape != (n_classes,) \
            or confusion.shape != (len(functions), n_classes, n_classes + 1):
        raise PredictorError(f"{path}: the label model does not fit this task's rules and classes; run "
                             "`taskc run` again")
    return label_model.fitted_from(prior, confusion)


__all__ = ["OFFLINE_PREDICTORS", "STUDENT_PREDICTORS", "Prediction", "PredictorError", "Predictors",
           "load_predictors", "read_manifest", "spec_path_of", "version_mismatch"]
