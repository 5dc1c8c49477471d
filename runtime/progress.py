"""Runtime stage: showing a run's progress while it happens.

Every phase of `taskc run` (generation, pool labeling, gold scoring, training,
the report) reports into one `ProgressReporter`: `phase_start` / `phase_done`
around each phase, `update` for the calls of an LLM phase. Which reporter is
used is decided once from the options: a rich live bar on a terminal (calls
done/total, accepted, rejected, tokens, cost), plain lines at a modest rate
when the output is a pipe or a log file, JSON lines for tools (`--format json`:
"phase" events with status "start" / "done", "progress" and "done" events for
calls), or nothing with --quiet. The calls' events name the phase they belong to
as its "phase" events do, and the part of it in "step" where a phase has more than
one (gold scoring: "prompted LLM", "fine-tuned model"; training: "embeddings"),
with "batch" in it when the calls go through the Batch API. Offline runs show their phases too. Progress
goes to stderr so stdout stays free for the summary.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, TextIO

# The phases of `taskc run`, in order, as the progress and its JSON events name them.
GENERATION, POOL_LABELING, TRAINING, GOLD_SCORING, REPORT = (
    "generation", "pool labeling", "training", "gold scoring", "report")


@dataclass(frozen=True)
class ProgressState:
    done: int
    total: int
    accepted: int | None  # None: the phase does not check the answers as they come (a batch's are checked after)
    rejected: int | None
    failed: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    phase: str = GENERATION  # the run's phase, as its phase_start names it
    skipped: int = 0  # calls not made because the budget ran out: not failures (a rerun with more makes them)
    step: str = ""  # which calls of the phase, where it has more than one kind ("prompted LLM", "embeddings, batch")

    @property
    def label(self) -> str:
        return step_label(self.phase, self.step)

    def counts(self) -> list[str]:
        """What the calls so far came to: accepted and rejected (where counted), failed, skipped, tokens, cost."""
        checked = [] if self.accepted is None else [f"{self.accepted} accepted", f"{self.rejected or 0} rejected"]
        skipped = [f"{self.skipped} not made (budget)"] if self.skipped else []
        return [*checked, f"{self.failed} failed", *skipped, f"{self.input_tokens + self.output_tokens:,} tokens",
                f"${self.cost_usd:.4f}"]

    def line(self) -> str:
        return f"{self.label}: {self.done}/{self.total} calls, " + ", ".join(self.counts())


def step_label(phase: str, step: str = "") -> str:
    """How a phase's calls are named in a progress line: "gold scoring (prompted LLM, batch)"."""
    return f"{phase} ({step})" if step else phase


def batched(step: str) -> str:
    """The step of calls that go through the Batch API."""
    return f"{step}, batch" if step else "batch"


class ProgressReporter:
    """Base reporter: says nothing (used for --quiet). It knows the phase under way (``current_phase``), so
    calls made wherever the work needs them (an embedding the student asks for) are shown under it."""

    current_phase = ""

    def phase_start(self, phase: str, detail: str = "") -> None:
        self.current_phase = phase

    def phase_done(self, phase: str, detail: str = "") -> None:
        self.current_phase = ""

    def start(self, total: int, phase: str = GENERATION, step: str = "") -> None:
        pass

    def update(self, state: ProgressState) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def finish(self, state: ProgressState | None = None) -> None:
        pass


class PlainProgress(ProgressReporter):
    """One line at most every ``interval`` seconds, plus the final state."""

    def __init__(self, stream: TextIO, interval: float = 2.0) -> None:
        self.stream, self.interval = stream, interval
        self._last = 0.0
        self._state: ProgressState | None = None
        self._started: dict[str, float] = {}
        self._written = ""

    def update(self, state: ProgressState) -> None:
        self._state = state
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(state.line())

    def message(self, text: str) -> None:
        self._write(text)

    def phase_start(self, phase: str, detail: str = "") -> None:
        super().phase_start(phase)
        self._started[phase] = time.monotonic()
        self._state = None
        self._write(f"{phase}: started" + (f" ({detail})" if detail else ""))

    def phase_done(self, phase: str, detail: str = "") -> None:
        super().phase_done(phase)
        seconds = time.monotonic() - self._started.pop(phase, time.monotonic())
        self._write(f"{phase}: done in {seconds:.1f} s" + (f" ({detail})" if detail else ""))

    def finish(self, state: ProgressState | None = None) -> None:
        final = state or self._state
        if final is not None and final.line() != self._written:  # the last line may say it already
            self._write(final.line())

    def _write(self, text: str) -> None:
        self._written = text
        print(text, file=self.stream, flush=True)


class JsonProgress(PlainProgress):
    """Progress as JSON lines (one object per update) for machines."""

    def __init__(self, stream: TextIO, interval: float = 1.0) -> None:
        super().__init__(stream, interval)

    def update(self, state: ProgressState) -> None:
        self._state = state
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit({"event": "progress", **asdict(state)})

    def message(self, text: str) -> None:
        self._emit({"event": "message", "text": text})

    def phase_start(self, phase: str, detail: str = "") -> None:
        ProgressReporter.phase_start(self, phase)  # not PlainProgress's: it writes its own line
        self._started[phase] = time.monotonic()
        self._state = None
        self._emit({"event": "phase", "phase": phase, "status": "start", "detail": detail})

    def phase_done(self, phase: str, detail: str = "") -> None:
        ProgressReporter.phase_done(self, phase)
        seconds = time.monotonic() - self._started.pop(phase, time.monotonic())
        self._emit({"event": "phase", "phase": phase, "status": "done", "detail": detail,
                    "seconds": round(seconds, 3)})

    def finish(self, state: ProgressState | None = None) -> None:
        final = state or self._state
        if final is not None:
            self._emit({"event": "done", **asdict(final)})

    def _emit(self, record: dict[str, Any]) -> None:
        print(json.dumps(record, sort_keys=True), file=self.stream, flush=True)


class RichProgress(ProgressReporter):
    """A live progress bar for terminals."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(file=stream)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=self.console, transient=False)
        self._task: Any = None
        self._started: dict[str, float] = {}

    def start(self, total: int, phase: str = GENERATION, step: str = "") -> None:
        label = step_label(phase, step)
        if self._task is None:  # a new display: the bars of the last one are on the screen already
            for shown in list(self.progress.task_ids):
                self.progress.remove_task(shown)
            self.progress.start()
        elif self.progress.tasks[-1].description == label:  # the same step started again: one bar for it
            self.progress.remove_task(self._task)
        self._task = self.progress.add_task(label, total=total, detail="")

    def update(self, state: ProgressState) -> None:
        if self._task is None:
            self.start(state.total, state.phase, state.step)
        detail = " · ".join(state.counts())
        self.progress.update(self._task, completed=state.done, total=state.total, detail=detail)

    def message(self, text: str) -> None:
        self.progress.console.print(text)

    def phase_start(self, phase: str, detail: str = "") -> None:
        super().phase_start(phase)
        self._started[phase] = time.monotonic()

    def phase_done(self, phase: str, detail: str = "") -> None:
        super().phase_done(phase)
        from rich.markup import escape

        seconds = time.monotonic() - self._started.pop(phase, time.monotonic())
        self.console.print(f"[bold]{escape(phase)}[/]: done in {seconds:.1f} s"
                           + (f" ({escape(detail)})" if detail else ""), highlight=False)

    def finish(self, state: ProgressState | None = None) -> None:
        if state is not None:
            self.update(state)
        if self._task is not None:
            self.progress.stop()
            self._task = None


def make_reporter(*, quiet: bool, json_progress: bool, stream: TextIO | None = None) -> ProgressReporter:
    """The reporter the options ask for: nothing, JSON lines, a rich bar on a terminal, or plain lines."""
    stream = stream or sys.stderr
    if quiet:
        return ProgressReporter()
    if json_progress:
        return JsonProgress(stream)
    if stream.isatty():
        return RichProgress(stream)
    return PlainProgress(stream)
