"""Runtime stage: the run's input files, read before anything is written.

The pool and the gold set (eval.gold, or the user's --gold file) are read here, each task path as
lowering resolved it (`TaskIR.data_path`: inside the task's directory unless --allow-outside-paths
allowed otherwise, checked at compile time), and the gold set is split
into its dev and test halves. An unusable file raises DataFileError (exit 1) with its line; a file's
lesser problems become notes of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from taskc.compiler import TaskIR

from .datafiles import DataFile, DataRecord, read_gold, read_pool
from .features import item_text
from .gold_split import DEV, split_gold
from .options import PathOptions


def read_inputs(task: TaskIR, paths: PathOptions,
                notes: list[str]) -> tuple[list[DataRecord], list[DataRecord], str | None]:
    """The pool's records, the gold set's records and how to name the gold file in messages (None: no gold)."""
    project = Path(task.project_dir)
    pool: list[DataRecord] = []
    if task.pool is not None:
        pool_file = read_pool(task.data_path(task.pool.path), task,
                              display=_display(project, task.pool.path), limit=task.pool.limit)
        pool = list(pool_file.records)
        _note_warnings(pool_file, notes)
    if paths.gold is not None:
        display = str(paths.gold)
        gold_file = read_gold(paths.gold, task, display=display)
    elif task.eval is not None:
        display = _display(project, task.eval.gold)
        gold_file = read_gold(task.data_path(task.eval.gold), task, display=display)
    else:
        return pool, [], None
    _note_warnings(gold_file, notes)
    return pool, list(gold_file.records), display


def gold_halves(task: TaskIR, records: Sequence[DataRecord]) -> tuple[str, ...]:
    """The half (dev or test) of each gold record, by the task's eval split."""
    if task.eval is None or not records:
        return tuple(DEV for _ in records)
    return split_gold([r.label or "" for r in records], [item_text(task, r.values) for r in records],
                      task.eval.test_fraction, task.eval.split_seed)


def _note_warnings(data: DataFile, notes: list[str]) -> None:
    if data.warnings:
        more = f" (and {len(data.warnings) - 3} more)" if len(data.warnings) > 3 else ""
        notes.append("; ".join(data.warnings[:3]) + more)


def _display(project: Path, relative: str) -> str:
    """How to name a project file in messages: relative to the working directory when possible."""
    target = (project / relative).resolve()
    try:
        return str(target.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(target)


__all__ = ["gold_halves", "read_inputs"]
