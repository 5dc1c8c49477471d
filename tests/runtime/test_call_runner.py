"""The one runner of every phase's online calls (runtime/call_runner.py), against the fake server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from taskc.runtime.cache import ResponseCache
from taskc.runtime.call_runner import failures_by_key, run_online
from taskc.runtime.provider import Budget, CallResult, CallStats, ErrorKind, LLMClient, ProviderSettings
from test_runtime_fixtures import API_KEY

SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}


def _echo(body: dict) -> dict:
    return {"label": body["messages"][-1]["content"]}


async def _send(client: LLMClient, item: str) -> CallResult:
    return await client.complete_json(
        messages=[{"role": "user", "content": item}], model="gpt-4o-mini",
        response_format={"type": "json_schema", "json_schema": {"name": "label", "schema": SCHEMA}},
        sampling={"temperature": 0.0}, seed=1, cache_key=f"key-{item}")


def _settings(server: FakeOpenAI, concurrency: int) -> ProviderSettings:
    return ProviderSettings(base_url=server.base_url, api_key=API_KEY, concurrency=concurrency, max_retries=1,
                            backoff_base=0.01, timeout=5.0)


def test_every_item_once_in_order_within_the_concurrency(tmp_path: Path) -> None:
    items = [f"item-{index}" for index in range(20)]
    seen: list[tuple[str, Any]] = []
    stats = CallStats()
    with FakeOpenAI(responder=_echo, latency=0.02) as server, ResponseCache(tmp_path / "cache.sqlite") as cache:
        results = run_online(items, _send, settings=_settings(server, 3), cache=cache, budget=None, stats=stats,
                             on_result=lambda item, result: seen.append((item, result.content)))
        again = run_online(items, _send, settings=_settings(server, 3), cache=cache, budget=None,
                           stats=CallStats())
    assert [result.content for result in results] == [{"label": item} for item in items]
    assert sorted(seen, key=lambda pair: items.index(pair[0])) == [(item, {"label": item}) for item in items]
    assert stats.requests == stats.calls_made == 20 and 1 < stats.max_in_flight <= 3
    assert all(result.cached for result in again) and failures_by_key(items, results) == {}


def test_calls_the_budget_stops_are_failures_of_that_kind(tmp_path: Path) -> None:
    items = [f"item-{index}" for index in range(12)]
    stats = CallStats()
    with FakeOpenAI(responder=_echo) as server, ResponseCache(tmp_path / "cache.sqlite") as cache:
        results = run_online(items, _send, settings=_settings(server, 2), cache=cache, budget=Budget(max_calls=5),
                             stats=stats)
    failures = failures_by_key(items, results)
    assert stats.requests == 5 and sum(result.ok for result in results) == 5
    assert len(failures) == 7 and all(failure.kind is ErrorKind.BUDGET_EXHAUSTED for failure in failures.values())
    assert all(failure.message == "budget exhausted" and failure.stopped_by_budget for failure in failures.values())


def test_a_phase_error_ends_the_phase_after_the_client_is_closed(tmp_path: Path) -> None:
    closed: list[bool] = []

    async def send(client: LLMClient, item: str) -> CallResult:
        if item == "bad":
            original = client.aclose

            async def aclose() -> None:
                closed.append(True)
                await original()

            client.aclose = aclose  # type: ignore[method-assign]
            raise ValueError("the phase cannot use this answer")
        return await _send(client, item)

    with FakeOpenAI(responder=_echo) as server, ResponseCache(tmp_path / "cache.sqlite") as cache:
        with pytest.raises(ValueError, match="cannot use"):
            run_online(["a", "bad", "c"], send, settings=_settings(server, 1), cache=cache, budget=None,
                       stats=CallStats())
    assert closed == [True]
