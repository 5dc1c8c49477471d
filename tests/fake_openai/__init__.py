"""Fake OpenAI-compatible HTTP server for tests and benchmarks (standard library only).

Usage::

    from fake_openai import FakeOpenAI, Faults

    with FakeOpenAI(faults=Faults(rate_limit=0.1), latency=0.05) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        server.stats.snapshot()

Run ``python tests/fake_openai --help`` for the command-line server.
"""

from .server import FAULT_KINDS, FakeOpenAI, Faults, Stats, default_content, violate_schema

__all__ = ["FAULT_KINDS", "FakeOpenAI", "Faults", "Stats", "default_content", "violate_schema"]
