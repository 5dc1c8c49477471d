"""What a run produced: the pool and gold items with the rules' votes, and the `RunResult` every later stage reads.

`pipeline.run` builds a `RunResult` stage by stage; the expert's loop, the
report (`report/`), metrics.json and `taskc run`'s summary read it. It holds
data only: each stage's own module computes its part. Some of those parts
come from stages that read the run themselves (the report's findings and data
shift, the `ExpertLoop`, the LLM as a labeling function), so their types are
imported for type checking only: `expert_loop` and `llm_labeling` read this
module (two type-only cycles, listed in tests/test_import_graph.py), and
importing `report.findings`, which does not, runs the report package, which does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskc.compiler import TaskIR

from . import labeling, local_model
from .analysis_records import ExpertLoop, LLMAsFunction
from .evaluate import CriterionResult, PredictorScores
from .expert_answers import Answers
from .gold_split import DEV
from .history import SinceLastRun
from .llm_data_effect import LLMDataEffect
from .predictor import Predictors

if TYPE_CHECKING:  # a plain import would run a module that imports this one before RunResult exists
    from .report.findings import DataShift, Findings


@dataclass(frozen=True)
class PoolItem:
    """A pool input with the rules' votes and the training label it ended up with (and from where)."""

    values: dict[str, Any]
    line: int
    votes: dict[str, str]  # rationale id -> class, for the rationales that fired
    majority: str | None
    label_model: str | None
    confidence: float | None  # label model posterior of its label
    label: str | None
    source: str | None  # label_model | majority | llm | expert | None (unlabeled)
    cited: tuple[str, ...] = ()  # with source "llm": the rationales the LLM said decided its label

    def to_json(self, task: TaskIR) -> dict[str, Any]:
        ordered = {f.name: self.values[f.name] for f in task.fields if f.name in self.values}
        return ordered | {"label": self.label, "label_source": self.source,
                          "confidence": None if self.confidence is None else round(self.confidence, 4),
                          "votes": self.votes, "majority": self.majority, "label_model": self.label_model,
                          "line": self.line} | ({"llm_rationales": list(self.cited)} if self.source == "llm" else {})


@dataclass(frozen=True)
class GoldItem:
    values: dict[str, Any]
    label: str
    line: int
    votes: dict[str, str]  # rationale id -> class, for the rationales that fired on it
    half: str = DEV  # dev (shown to the expert) or test (numbers only; judges the criterion)


@dataclass
class RunResult:
    task: TaskIR
    run_dir: Path
    functions: tuple[labeling.LabelingFunction, ...]
    analysis: labeling.LFAnalysis | None  # None without a pool
    pool: list[PoolItem]
    gold_display: str | None
    gold: list[GoldItem]
    predictions: dict[str, list[str | None]]  # predictor -> one prediction per gold item
    metrics: dict[str, PredictorScores]  # predictor -> its scores on all gold items, dev and test
    criterion: CriterionResult | None
    skipped_llm_steps: tuple[str, ...]
    training: dict[str, int]  # training examples by label source
    examples: tuple[local_model.TrainingExample, ...] = ()  # the students' training set (training_set.jsonl)
    notes: list[str] = field(default_factory=list)  # what did not run, and why
    llm: dict[str, Any] = field(default_factory=dict)  # generation / call summaries when a provider ran
    files: dict[str, Path] = field(default_factory=dict)
    findings: Findings | None = None  # the error analysis behind the report, set when the outputs are written
    predictors: Predictors | None = None  # the offline predictors, as saved in model/
    shift: DataShift | None = None  # how the gold set differs from the pool, set with the findings
    estimate_usd: float | None = None  # the plan's estimated cost (taskc compile's ESTIMATE)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier runs' records, and this one's last
    since: SinceLastRun | None = None  # how this run differs from the one before (None: the first run)
    spec_changes: list[str] | None = None  # the task's changes since the run before, one line each
    answers: Answers | None = None  # the expert's answers to `taskc ask` this run used
    expert: ExpertLoop | None = None  # questions, suggestions and authors (`expert_loop`), set with the findings
    llm_cited: list[tuple[str, ...]] | None = None  # per gold item: the rationales the prompted LLM cited
    llm_function: LLMAsFunction | None = None  # the LLM as a labeling function beside the rules
    llm_data_effect: LLMDataEffect | None = None  # the local model with and without the LLM's data, on dev

    @property
    def primary(self) -> str:
        return self.task.eval.primary if self.task.eval else "rules_then_model"

    @property
    def dev_indices(self) -> tuple[int, ...]:
        """The gold items the expert may see (the test half contributes numbers only)."""
        return tuple(i for i, g in enumerate(self.gold) if g.half == DEV)

    def summary_json(self) -> dict[str, Any]:
        return {
            "task": self.task.name, "run_dir": str(self.run_dir),
            "passed": None if self.criterion is None else self.criterion.passed,
            "criterion": None if self.criterion is None else self.criterion.to_json(),
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
            "gold": self.gold_display, "gold_items": len(self.gold),
            "pool": {"items": len(self.pool), "labeled": sum(p.label is not None for p in self.pool),
                     "by_source": dict(Counter(p.source for p in self.pool if p.source))},
            "training": self.training, "skipped_llm_steps": list(self.skipped_llm_steps), "notes": self.notes,
            "llm": self.llm, "files": {name: str(path) for name, path in self.files.items()},
        }


__all__ = ["GoldItem", "PoolItem", "RunResult"]
