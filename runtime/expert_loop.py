"""The expert's loop, wired into `taskc run`: answers in, questions, suggestions and authors' conflicts out.

A façade over `expert_answers` (read before the rules run), `questions` (what to
ask the expert next), `suggestions` (lexicon changes with their tried effect)
and `authors` (several experts), so the pipeline calls a few functions here and
the report reads one `ExpertLoop`. The run writes RUN_DIR/questions.jsonl (the
questions, in the layout of an answers file: fill in `label`) and
RUN_DIR/suggestions.json; `taskc ask` and `taskc suggest` print them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from taskc.compiler import TaskIR, counted

from .analysis_records import ExpertLoop
from .authors import analyse_authors
from .datafiles import DataFileError, DataRecord
from .datasets import write_json, write_jsonl
from .expert_answers import SOURCE, Answers, answer_key, read_answers
from .questions import ask
from .result import PoolItem, RunResult
from .suggestions import suggest

QUESTIONS_FILE = "questions.jsonl"
SUGGESTIONS_FILE = "suggestions.json"


def read_task_answers(task: TaskIR, override: Path | None, notes: list[str]) -> Answers | None:
    """The answers named by --answers or pool.answers (None when neither names one, or it does not exist yet)."""
    if override is not None:
        path, display = override, str(override)
    elif task.pool is not None and task.pool.answers:
        path, display = task.data_path(task.pool.answers), task.pool.answers  # resolved by lowering
    else:
        return None
    answers = read_answers(path, task, display)
    if answers is None:
        if override is not None:
            raise DataFileError(f"{display}: no such file (the expert's answers to `taskc ask`)")
        notes.append(f"pool.answers names {display}, which does not exist yet: copy questions.jsonl there and "
                     "fill in the labels you know")
        return None
    notes.append(f"{counted(len(answers.records), 'expert answer')} from {display} "
                 f"({counted(answers.unanswered, 'question')} there still unanswered): expert labels in training, "
                 "extra dev gold items")
    return answers


def answered_pool(task: TaskIR, pool: Sequence[PoolItem], answers: Answers) -> list[PoolItem]:
    """The pool with the expert's answers in place of the rules' (or the LLM's) labels."""
    labels = answers.keys(task)
    out = []
    for item in pool:
        label = labels.get(answer_key(task, item.values))
        out.append(item if label is None else dataclasses.replace(item, label=label, source=SOURCE, confidence=None))
    return out


def answers_outside_pool(task: TaskIR, pool: Sequence[PoolItem], answers: Answers | None) -> list[DataRecord]:
    """The answered items the pool does not hold (they join the training set on their own)."""
    if answers is None:
        return []
    in_pool = {answer_key(task, item.values) for item in pool}
    kept: dict[str, DataRecord] = {}
    for record in answers.records:
        key = answer_key(task, record.values)
        if key not in in_pool:
            kept[key] = record
    return list(kept.values())


def analyse(result: RunResult) -> ExpertLoop:
    return ExpertLoop(questions=ask(result), suggestions=suggest(result), authors=analyse_authors(result),
                      gold_lines=tuple(g.line for g in result.gold), pool_lines=tuple(p.line for p in result.pool))


def write_files(result: RunResult) -> None:
    loop = result.expert
    if loop is None:
        return
    field_names = result.task.field_names
    write_jsonl(result.run_dir / QUESTIONS_FILE, (q.to_json(field_names) for q in loop.questions))
    result.files["questions"] = result.run_dir / QUESTIONS_FILE
    write_json(result.run_dir / SUGGESTIONS_FILE, {
        "task": result.task.name,
        "note": ("lexicon changes tried on the dev half: fixes and breaks count dev gold items, the rules "
                 "evaluated again with the change, the run's trained models held fixed"),
        "suggestions": [s.to_json(loop.gold_lines) for s in loop.suggestions]})
    result.files["suggestions"] = result.run_dir / SUGGESTIONS_FILE


__all__ = ["QUESTIONS_FILE", "SUGGESTIONS_FILE", "ExpertLoop", "analyse", "answered_pool", "answers_outside_pool",
           "read_task_answers", "write_files"]
