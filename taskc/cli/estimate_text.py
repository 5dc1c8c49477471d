"""How `taskc compile` words the plan's estimate: the calls by phase, and what --finetune would add."""

from __future__ import annotations

from taskc.compiler import counted
from taskc.compiler.call_plan import PHASE_TITLES
from taskc.compiler.driver import CompiledTask
from taskc.compiler.money import format_usd


def _usd(cost: float | None) -> str:
    return "unknown (model not in the price table)" if cost is None else format_usd(cost)


def estimate_lines(compiled: CompiledTask) -> list[str]:
    """One line per phase: its calls, tokens and cost."""
    return [f"{PHASE_TITLES[name]}: {counted(phase.calls, 'call')}, ~{phase.input_tokens:,} + "
            f"~{phase.output_tokens:,} tokens, ~{_usd(phase.cost_usd)}"
            for name, phase in compiled.estimate.phases.items()]


def estimate_extras(compiled: CompiledTask) -> list[str]:
    """What the plan prices apart: the hosted fine-tune (with --finetune), and what cannot be planned."""
    lines = []
    finetune = compiled.estimate.finetune
    if finetune is not None:
        scoring, training = finetune["scoring"], finetune["training"] or {}
        epochs = counted(training.get("epochs") or 0, "epoch") + (
            "" if training.get("epochs_given") else " (auto, priced as 3)")
        lines.append(f"with --finetune: +{counted(scoring['calls'], 'call')} of the fine-tuned model on the gold set, "
                     f"~{_usd(scoring['cost_usd'])}; training ~{training.get('training_tokens', 0):,} tokens "
                     f"({counted(training.get('examples', 0), 'example')} × {epochs}), "
                     f"~{_usd(training.get('cost_usd'))}")
    for problem in compiled.calls.problems:
        lines.append(f"not planned: {problem}")
    return lines
