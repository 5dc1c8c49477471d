"""Runtime provider: what a run has spent and may still spend.

`CallStats` counts one phase's requests, answers, failures, tokens and cost (it
becomes the phase's part of stats.json); `Budget` is the run's spending guard
over every phase (`--max-calls`, `--max-cost`), priced by the plan's and the
built-in price tables. `count_requests` and `charge` add a request and an answer
to both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...compiler import builtin_prices, price_for
from .adjustments import AdjustedRequest, ServerAdjustments


@dataclass
class CallStats:
    """Counters of one run, updated by the client (single event loop, so no locks)."""

    requests: int = 0  # network attempts sent, retries included
    calls_made: int = 0  # calls answered usefully over the network
    calls_cached: int = 0
    calls_failed: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # by kind: rate_limit, server_error, malformed...
    unpriced_models: set[str] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0
    usage_estimated: int = 0  # answers without (a side of) token usage: charged by their length instead
    response_format_fallback: str | None = None  # "json_object" or "none": what the server took instead of the plan's
    dropped_parameters: set[str] = field(default_factory=set)  # sampling parameters the server refused, left out

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def record_adjusted(self, request: AdjustedRequest, adjustments: ServerAdjustments) -> None:
        """Count what a request sent as the server takes it (see ServerAdjustments.adjusted) left out."""
        if request.format_step:
            self.response_format_fallback = adjustments.response_format
        self.dropped_parameters |= request.dropped

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "calls_made": self.calls_made, "calls_cached": self.calls_cached,
                "calls_failed": self.calls_failed, "retries": self.retries, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": round(self.cost_usd, 6),
                "errors": dict(sorted(self.errors.items())), "unpriced_models": sorted(self.unpriced_models),
                "max_in_flight": self.max_in_flight,
                **({"usage_estimated": self.usage_estimated} if self.usage_estimated else {}),
                **({"response_format_fallback": self.response_format_fallback}
                   if self.response_format_fallback else {}),
                **({"dropped_parameters": sorted(self.dropped_parameters)} if self.dropped_parameters else {})}


class Budget:
    """The spending guard of one run: no new network request once max_calls requests or max_cost dollars are
    reached, counted over every phase and client that shares it (generation, pool labeling, evaluation). It
    also carries what those clients learned about the server (``adjustments``), the one object they share."""

    def __init__(self, max_cost: float | None = None, max_calls: int | None = None,
                 prices: Mapping[str, tuple[float, float]] | None = None, price_factor: float = 1.0) -> None:
        self.max_cost, self.max_calls = max_cost, max_calls
        self.prices = {**builtin_prices(), **(prices or {})}
        self.price_factor = price_factor  # 0.5 for a budget used only by the Batch API
        self.requests = 0  # network requests sent under this budget, by every client that shares it
        self.cost_usd = 0.0
        self.exhausted = False
        self.usage_estimated = 0  # answers without token usage, charged by their length (see charge)
        # what the run's server refused (a response_format, sampling parameters), for every phase's client
        self.adjustments = ServerAdjustments()

    def allows(self) -> bool:
        """Whether the run may make another request (the run's totals, over all its phases)."""
        if self.max_calls is not None and self.requests >= self.max_calls:
            self.exhausted = True
        if self.max_cost is not None and self.cost_usd >= self.max_cost:
            self.exhausted = True
        return not self.exhausted

    def room(self) -> int | None:
        """How many more requests max_calls allows (None: no limit)."""
        return None if self.max_calls is None else max(0, self.max_calls - self.requests)

    def cost(self, model: str, input_tokens: int, output_tokens: int,
             price_factor: float | None = None) -> float | None:
        price = price_for(self.prices, model)
        if price is None:
            return None
        factor = self.price_factor if price_factor is None else price_factor
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000 * factor


def count_requests(stats: CallStats, budget: Budget | None, requests: int) -> None:
    """Add requests about to be sent to the phase's counters and to the run's budget."""
    stats.requests += requests
    if budget is not None:
        budget.requests += requests


def charge(stats: CallStats, budget: Budget | None, model: str, usage: Mapping[str, int],
           price_factor: float | None = None, *, estimated: bool = False) -> None:
    """Add one response's tokens and cost to the phase's counters and to the run's budget (``estimated``:
    the usage was worked out from the call's length, the answer having none).

    ``model`` is the model the call asked for: the name a server answers with is its own to choose (a
    local server's "my-local-model"), and pricing by it would let any server make every call free."""
    input_tokens, output_tokens = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    if estimated:
        stats.usage_estimated += 1
        if budget is not None:
            budget.usage_estimated += 1
    stats.input_tokens += input_tokens
    stats.output_tokens += output_tokens
    pricing = budget or Budget()
    cost = pricing.cost(model, input_tokens, output_tokens, price_factor)
    if cost is None:
        stats.unpriced_models.add(model)
    else:
        stats.cost_usd += cost
        if budget is not None:
            budget.cost_usd += cost

