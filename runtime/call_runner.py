"""Runtime: the one way the online phases make their LLM calls (generation, classification, embeddings).

`run_online` opens an `LLMClient` over the run's response cache, budget and the
phase's counters, and lets a bounded pool of workers take the items in order,
each worker handing one item at a time to the phase's ``send``. The client bounds
the requests in flight (`--concurrency`), the rate limits, the budget and the
deadlines; the runner keeps a few more workers than slots, so a worker asleep in a
retry's backoff leaves no slot idle. Each result is handed to ``on_result`` (the
phase's progress) as it arrives, and every result comes back in the items' order.
A failed call is a result, not an exception (`CallResult.failure` says why);
only what ends a run (`RunDeadlinePassed`, a phase's own error) propagates, once
the client is closed. While the calls run, the objects that exist already are
kept out of the garbage collector's way (`heap_frozen`).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from .cache import ResponseCache
from .provider import Budget, CallFailure, CallResult, CallStats, LLMClient, ProviderSettings

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_online(items: Sequence[Item], send: Callable[[LLMClient, Item], Awaitable[Result]], *,
               settings: ProviderSettings, cache: ResponseCache | None, budget: Budget | None, stats: CallStats,
               on_result: Callable[[Item, Result], None] | None = None) -> list[Result]:
    """Send every item through one client (see the module doc); the results in the items' order."""
    return asyncio.run(_run(items, send, settings, cache, budget, stats, on_result))


def failures_by_key(keys: Sequence[str], results: Sequence[CallResult]) -> dict[str, CallFailure]:
    """{key: why not} for the calls that did not succeed, ``keys`` naming the calls in the results' order."""
    return {key: failure for key, result in zip(keys, results, strict=True)
            if (failure := result.failure) is not None}


async def _run(items: Sequence[Item], send: Callable[[LLMClient, Item], Awaitable[Result]],
               settings: ProviderSettings, cache: ResponseCache | None, budget: Budget | None, stats: CallStats,
               on_result: Callable[[Item, Result], None] | None) -> list[Result]:
    client = LLMClient(settings, cache, budget, stats)
    results: list[Result | None] = [None] * len(items)
    pending: Iterator[tuple[int, Item]] = iter(enumerate(items))

    async def worker() -> None:
        for index, item in pending:  # workers share one iterator, so each item is taken exactly once
            result = await send(client, item)
            results[index] = result
            if on_result is not None:
                on_result(item, result)

    # A few more workers than slots, so a worker sleeping in backoff does not leave a slot idle.
    workers = min(len(items), settings.concurrency + max(4, settings.concurrency // 4))
    try:
        with heap_frozen():
            await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await client.aclose()
    return results  # type: ignore[return-value]  # every slot is filled once gather returns


@contextmanager
def heap_frozen() -> Iterator[None]:
    """Keep the garbage collector off the objects that exist now (modules, the plan) while calls run.

    A full collection walks every object in the process, ~100 ms with the compiler, the openai
    client and scikit-learn loaded, and all calls in flight wait for it. Frozen objects are skipped
    (gc.freeze), so collections during the calls walk only what the calls create.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


__all__ = ["failures_by_key", "heap_frozen", "run_online"]
