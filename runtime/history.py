"""Runtime stage: the run history, so the expert can see what an edit changed and whether it mattered.

Every `taskc run` appends one record to RUN_DIR/history.jsonl (append-only: an
earlier run's facts are never rewritten) and keeps a copy of the task file it
ran (with its lexicon files and templates) under RUN_DIR/history/NNNN/, so the
next run can say, at the top of its report, "since the last run":

- what changed in the task (the semantic diff of the two task files);
- how each predictor's scores moved, with their 95% intervals, a change inside
  both runs' intervals marked as noise;
- each rationale's coverage and gold accuracy before and after;
- the gold items the primary predictor got right that it now gets wrong, and
  the reverse.

A record holds: its number, the time (UTC), the taskc version, the spec hash,
the git commit when the project is in a repository, the primary and whether it
passed, every predictor's scores, the LF figures per rationale, the plan's
estimated cost, and per gold item (by content key) whether the primary got it
right. `taskc runs RUN_DIR` lists the records.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.jsonl"
SNAPSHOT_DIR = "history"
FORMAT_VERSION = 1
SCORE_KEYS = ("accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "coverage")


def gold_key(values: Mapping[str, Any]) -> str:
    """A gold item's identity across runs: a hash of its input (not its line, which edits move)."""
    return hashlib.sha256(json.dumps(dict(values), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def git_commit(directory: Path) -> str | None:
    """HEAD of the repository holding ``directory`` (None outside one, or when git is missing or slow)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) >= 7 else None


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The records of earlier runs, oldest first (a torn last line of a killed run is skipped)."""
    path = Path(run_dir) / HISTORY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in raw.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("format") == FORMAT_VERSION:
            records.append(record)
    return records


def next_number(history: Sequence[Mapping[str, Any]]) -> int:
    return max((int(r.get("number") or 0) for r in history), default=0) + 1


def build_record(*, number: int, task: str, spec_hash: str, taskc_version: str, commit: str | None,
                 primary: str, passed: bool | None, metrics: Mapping[str, Any], rationales: Mapping[str, Any],
                 cost_estimate_usd: float | None, gold_correct: Mapping[str, bool], snapshot: str | None,
                 now: datetime | None = None, expert_answers: int = 0, files_hash: str | None = None
                 ) -> dict[str, Any]:
    """One history line. ``metrics``: predictor -> split -> metrics JSON (metrics.json's "predictors").
    ``spec_hash``: what a trained model depends on (`features.spec_hash`); ``files_hash``: the bytes of the
    task file and the small files it names (`files_hash`), which any edit changes, wording included."""
    scores = {name: {split: None if values is None else {key: values.get(key) for key in SCORE_KEYS}
                     for split, values in by_split.items()}
              for name, by_split in metrics.items()}
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {"format": FORMAT_VERSION, "number": number, "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "task": task, "spec_hash": spec_hash, "taskc_version": taskc_version, "git_commit": commit,
            "primary": primary, "passed": passed, "scores": scores, "rationales": dict(rationales),
            "cost_estimate_usd": cost_estimate_usd, "gold_correct": dict(gold_correct), "snapshot": snapshot,
            "expert_answers": expert_answers, "files_hash": files_hash}


def files_hash(spec: Path, small_files: Sequence[str]) -> str | None:
    """A hash of the task file's bytes and those of the small files it names (None when one cannot be read)."""
    parts = []
    try:
        for path in (spec, *(spec.parent / name for name in small_files)):
            parts.append(f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()}")
    except OSError:
        return None
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def append_record(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Add one line to history.jsonl, flushed to disk: earlier lines are never rewritten."""
    path = Path(run_dir) / HISTORY_FILE
    line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # a run killed mid-line left a torn record: start a line of our own
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot_spec(run_dir: Path, number: int, spec: Path, small_files: Sequence[str]) -> str:
    """Copy the task file and the small files it names (lexicon files, templates) to history/NNNN/; the
    pool and gold set are not copied (they are data, and large)."""
    relative = f"{SNAPSHOT_DIR}/{number:04d}"
    target = Path(run_dir) / relative
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spec, target / spec.name)
    for name in small_files:
        source = (spec.parent / name).resolve()
        try:
            inside = source.is_file() and source.is_relative_to(spec.parent.resolve())
        except OSError:
            inside = False
        if inside:
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    return f"{relative}/{spec.name}"


# -- what changed -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreChange:
    predictor: str
    metric: str  # accuracy | macro_f1
    before: float | None
    after: float | None
    before_ci: tuple[float, float] | None
    after_ci: tuple[float, float] | None

    @property
    def delta(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    @property
    def within_noise(self) -> bool:
        """Each value inside the other run's 95% interval: a change this small says nothing."""
        if self.before is None or self.after is None or self.before_ci is None or self.after_ci is None:
            return False
        return self.before_ci[0] <= self.after <= self.before_ci[1] and \
            self.after_ci[0] <= self.before <= self.after_ci[1]


@dataclass(frozen=True)
class RationaleChange:
    rationale: str
    coverage_before: float | None
    coverage_after: float | None
    accuracy_before: float | None
    accuracy_after: float | None


@dataclass(frozen=True)
class SinceLastRun:
    previous: Mapping[str, Any]
    current: Mapping[str, Any]
    scores: tuple[ScoreChange, ...]
    rationales: tuple[RationaleChange, ...]
    now_wrong: tuple[str, ...]  # gold keys the primary got right last run and wrong now
    now_right: tuple[str, ...]

    @property
    def same_spec(self) -> bool:
        """Whether the task files are byte for byte the same (records from before files_hash: the model's
        spec_hash, which a wording edit leaves alone)."""
        before, now = self.previous.get("files_hash"), self.current.get("files_hash")
        if before and now:
            return bool(before == now)
        return self.previous.get("spec_hash") == self.current.get("spec_hash")

    @property
    def answers(self) -> tuple[int, int]:
        """The expert answers the previous run and this one used (a record from before they were kept: 0)."""
        return int(self.previous.get("expert_answers") or 0), int(self.current.get("expert_answers") or 0)


def since_last_run(previous: Mapping[str, Any], current: Mapping[str, Any],
                   split: str = "test") -> SinceLastRun:
    """How ``current`` differs from ``previous``: scores on ``split`` (the half that judges), per rationale,
    and the gold items that flipped."""
    scores = []
    for name in sorted(set(previous.get("scores", {})) | set(current.get("scores", {}))):
        before = (previous.get("scores", {}).get(name) or {}).get(split) or {}
        after = (current.get("scores", {}).get(name) or {}).get(split) or {}
        for metric in ("macro_f1", "accuracy"):
            scores.append(ScoreChange(name, metric, before.get(metric), after.get(metric),
                                      _interval(before.get(f"{metric}_ci")), _interval(after.get(f"{metric}_ci"))))
    rationales = []
    for rationale in sorted(set(previous.get("rationales", {})) | set(current.get("rationales", {}))):
        before = previous.get("rationales", {}).get(rationale) or {}
        after = current.get("rationales", {}).get(rationale) or {}
        rationales.append(RationaleChange(rationale, before.get("coverage"), after.get("coverage"),
                                          before.get("gold_accuracy"), after.get("gold_accuracy")))
    old, new = previous.get("gold_correct", {}), current.get("gold_correct", {})
    shared = sorted(set(old) & set(new))
    return SinceLastRun(previous, current, tuple(scores), tuple(rationales),
                        tuple(k for k in shared if old[k] and not new[k]),
                        tuple(k for k in shared if not old[k] and new[k]))


def spec_changes(previous_spec: Path, current: Any) -> list[str] | None:
    """The task's changes since the previous run, one line each ("rationale starch: text changed", "lexicon
    sugars: +honey"), from the snapshot of its task file; None when the snapshot cannot be read."""
    from ..compiler import compile_task, entity_changes

    if not previous_spec.is_file():
        return None
    old = compile_task(previous_spec, emit=False).task  # its pool and gold are not in the snapshot: E033 is fine
    if old is None:
        return None
    lines = []
    for change in entity_changes(old, current):
        if change.status != "changed":
            lines.append(f"{change.kind} {change.key}: {change.status}")
            continue
        parts = []
        for attribute in change.attributes:
            if attribute.is_set_change:
                members = [f"+{m}" for m in attribute.added[:6]] + [f"-{m}" for m in attribute.removed[:6]]
                more = len(attribute.added) + len(attribute.removed) - len(members)
                parts.append(f"{attribute.name} {', '.join(members)}" + (f" (+{more} more)" if more > 0 else ""))
            else:
                parts.append(f"{attribute.name} changed")
        lines.append(f"{change.kind} {change.key}: {'; '.join(parts)}")
    return lines


def score_rows(change: SinceLastRun, primary: str) -> tuple[list[str], list[list[str]]]:
    """The score table of "since the last run": the primary first, each change with both intervals."""
    header = ["predictor", "metric", "last run", "this run", "change"]
    rows = []
    ordered = sorted(change.scores, key=lambda s: (s.predictor != primary, s.predictor, s.metric))
    for score in ordered:
        if score.before is None and score.after is None:
            continue
        delta = score.delta
        if delta is None:
            verdict = "n/a"
        elif abs(delta) < 0.0005:
            verdict = "no change"
        else:
            verdict = f"{delta:+.3f}" + (" (within noise)" if score.within_noise else "")
        rows.append([score.predictor, score.metric.replace("_", "-"), _with_interval(score.before, score.before_ci),
                     _with_interval(score.after, score.after_ci), verdict])
    return header, rows


def rationale_rows(change: SinceLastRun) -> tuple[list[str], list[list[str]]]:
    header = ["rationale", "pool coverage", "dev gold accuracy"]
    rows = []
    for r in change.rationales:
        if (r.coverage_before, r.accuracy_before) == (r.coverage_after, r.accuracy_after):
            continue
        rows.append([r.rationale, f"{_pct(r.coverage_before)} → {_pct(r.coverage_after)}",
                     f"{_pct(r.accuracy_before)} → {_pct(r.accuracy_after)}"])
    return header, rows


def trend_svg(records: Sequence[Mapping[str, Any]], primary: str, width: int = 560, height: int = 160) -> str:
    """The primary's macro-F1 (test half, else all) over the runs, with its intervals, as an inline SVG."""
    points = []
    for record in records:
        scores = (record.get("scores") or {}).get(primary) or {}
        judged = scores.get("test") or scores.get("all") or {}
        if judged.get("macro_f1") is not None:
            points.append((int(record.get("number") or 0), float(judged["macro_f1"]),
                           _interval(judged.get("macro_f1_ci"))))
    if len(points) < 2:
        return ""
    left, right, top, bottom = 40, 12, 12, 28
    low = min(min(ci[0] if ci else value for _, value, ci in points), 0.5)
    span = max(1e-9, 1.0 - low)

    def x(index: int) -> float:
        return left + index * (width - left - right) / (len(points) - 1)

    def y(value: float) -> float:
        return top + (1.0 - value) / span * (height - top - bottom)

    parts = [f'<svg role="img" aria-label="macro-F1 of {primary} over the runs" viewBox="0 0 {width} {height}" '
             f'width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{y(1.0):.1f}" x2="{width - right}" y2="{y(1.0):.1f}" stroke="#bbb"/>',
             f'<text x="4" y="{y(1.0) + 4:.1f}" font-size="11" fill="#333">1.0</text>',
             f'<text x="4" y="{y(low) + 4:.1f}" font-size="11" fill="#333">{low:.2f}</text>']
    for index, (number, value, ci) in enumerate(points):
        if ci:
            parts.append(f'<line x1="{x(index):.1f}" y1="{y(ci[1]):.1f}" x2="{x(index):.1f}" y2="{y(ci[0]):.1f}" '
                         'stroke="#7aa6d8" stroke-width="3"/>')
        parts.append(f'<circle cx="{x(index):.1f}" cy="{y(value):.1f}" r="4" fill="#1f4e89"><title>run {number}: '
                     f'{value:.3f}</title></circle>')
        parts.append(f'<text x="{x(index):.1f}" y="{height - 8}" font-size="11" text-anchor="middle" '
                     f'fill="#333">{number}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, (_, v, _) in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="#1f4e89" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)


def _with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" ({interval[0]:.3f}–{interval[1]:.3f})" if interval else "")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _interval(value: Any) -> tuple[float, float] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value):
        return float(value[0]), float(value[1])
    return None


__all__ = ["HISTORY_FILE", "RationaleChange", "ScoreChange", "SinceLastRun", "append_record", "build_record",
           "git_commit", "gold_key", "next_number", "rationale_rows", "read_history", "score_rows", "since_last_run",
           "snapshot_spec", "spec_changes", "trend_svg"]
