"""The expert's answers to `taskc ask`: read before a run, used as expert labels and as extra dev gold.

A step of `taskc run` right after the pool and gold files are read. The answers
file is JSONL in the layout `taskc ask` writes (`questions.jsonl`): one object
per line with the task's input fields and a ``label``. A line whose label is
null (or missing) is a question the expert has not answered yet and is skipped,
so the expert can copy the questions file, fill in the labels they know and
leave the rest; any other key (the votes, the rank) is ignored. The task file
names the file with ``pool.answers`` (or `taskc run --answers FILE`); it need
not exist before the first answer.

An answer counts twice, never in the test half: in training it replaces the
pool item's label (or adds the item when it is not in the pool) with weight
EXPERT_WEIGHT, above any label the rules give (at most 1); in evaluation it is
an extra gold item of the dev half, so the report can show it, while the test
half, which judges the pass criterion, stays the hand-checked gold set alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskc.compiler import TaskIR, open_regular_file

from .datafiles import MAX_REPORTED_PROBLEMS, DataFileError, DataRecord, check_labelled_object
from .features import item_text

EXPERT_WEIGHT = 2.0  # a rule's label weighs its label model confidence (at most 1): the expert's weighs more
SOURCE = "expert"
MAX_ANSWERS_BYTES = 64 << 20


@dataclass(frozen=True)
class Answers:
    """The answered lines of the file (unanswered ones are counted, not kept)."""

    display: str
    records: tuple[DataRecord, ...]
    unanswered: int

    def keys(self, task: TaskIR) -> dict[str, str]:
        """item key -> the expert's label (a later line answers the same item again and wins)."""
        return {answer_key(task, r.values): str(r.label) for r in self.records}


def answer_key(task: TaskIR, values: Any) -> str:
    """What identifies an item across files: its fields' text, case and spacing folded."""
    return " ".join(item_text(task, values).lower().split())


def read_answers(path: Path, task: TaskIR, display: str) -> Answers | None:
    """The answers in ``path``; None when the file does not exist yet. Bad lines raise DataFileError, each
    problem as file:line: text, like a gold file's."""
    try:
        with open_regular_file(path) as stream:  # never a device or a FIFO, like the pool and the gold set
            data = stream.read(MAX_ANSWERS_BYTES + 1)
        if len(data) > MAX_ANSWERS_BYTES:
            raise DataFileError(f"{display}: larger than {MAX_ANSWERS_BYTES >> 20} MiB; an answers file holds the "
                                "expert's labels, one line per item")
        text = data.decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{display}: cannot read: {exc}") from None
    records: list[DataRecord] = []
    problems: list[str] = []
    unanswered = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except ValueError as exc:
            problems.append(f"{display}:{number}: not JSON: {exc}")
            continue
        if isinstance(value, dict) and value.get("label") is None:
            unanswered += 1
            continue
        record, line_problems = check_labelled_object(value, number, task)
        problems.extend(f"{display}:{number}:{problem}" for problem in line_problems)
        if record is not None:
            records.append(record)
    if problems:
        more = len(problems) - MAX_REPORTED_PROBLEMS
        raise DataFileError("\n".join(problems[:MAX_REPORTED_PROBLEMS]
                                      + ([f"{display}: ... and {more} more problems"] if more > 0 else [])))
    return Answers(display, tuple(records), unanswered)


def dev_gold_records(task: TaskIR, answers: Answers, gold: Sequence[DataRecord]) -> list[DataRecord]:
    """The answers that become dev gold items: one per item, none that the gold set already holds."""
    seen = {answer_key(task, r.values) for r in gold}
    extra: dict[str, DataRecord] = {}
    for record in answers.records:
        key = answer_key(task, record.values)
        if key not in seen:
            extra[key] = record  # the last answer to an item wins
    return list(extra.values())


__all__ = ["EXPERT_WEIGHT", "SOURCE", "Answers", "answer_key", "dev_gold_records", "read_answers"]
