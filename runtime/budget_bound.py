"""Runtime: how far past `--max-cost` a run can go, said when the run starts.

`Budget` stops new requests once the spend reaches the limit, but the requests
already in flight then still finish and are paid. So the overshoot is at most
the calls in flight times the dearest call: `--concurrency` online, and with
`--batch` every request of a batch submitted before the limit was reached (the
Batch API bills what it ran, at half price). The dearest call is read from the
plan, its output counted at `max_tokens` where it has one, so the bound holds
whatever the model writes (its input is the plan's estimate, ~4 characters a
token).
"""

from __future__ import annotations

from dataclasses import dataclass

from taskc.compiler import (
    BATCH_PRICE_FACTOR,
    CompiledTask,
    builtin_prices,
    largest_call_cost,
)


@dataclass(frozen=True)
class OvershootBound:
    max_cost: float
    in_flight: int  # calls that may be under way when the limit is reached
    largest_call_usd: float
    batch: bool

    @property
    def bound_usd(self) -> float:
        return self.in_flight * self.largest_call_usd

    def line(self) -> str:
        where = (f"every request of a batch submitted before it is reached still runs (up to {self.in_flight:,}, "
                 f"at the Batch API's half price)" if self.batch else
                 f"calls already in flight when it is reached still finish (up to {self.in_flight:,}, --concurrency)")
        return (f"--max-cost ${self.max_cost:g} stops new LLM calls once the run has spent it; {where}, so the run "
                f"may spend up to ${self.max_cost + self.bound_usd:.4f}: at most {self.in_flight:,} × "
                f"${self.largest_call_usd:.6f}, the dearest planned call at its max_tokens, past the limit")


def overshoot_bound(compiled: CompiledTask, max_cost: float, concurrency: int, *, model: str | None = None,
                    batch: bool = False, finetune: bool = False) -> OvershootBound | None:
    """The bound for this run, or None when a call it makes has no price (then --max-cost is refused)."""
    task = compiled.ir
    prices = {**builtin_prices(), **dict(task.generate.prices)}
    calls = [call for call in compiled.calls.calls if call.when is None or finetune]
    largest = largest_call_cost(calls, prices, model)
    if largest is None:
        return None
    if batch:
        phase_sizes = [sum(1 for call in calls if call.phase == phase) for phase in {c.phase for c in calls}]
        return OvershootBound(max_cost, max(phase_sizes, default=0), largest * BATCH_PRICE_FACTOR, True)
    return OvershootBound(max_cost, concurrency, largest, False)


__all__ = ["OvershootBound", "overshoot_bound"]
