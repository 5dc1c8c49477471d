"""Emitter helper: the hashes and seeds that make compiled output and the run's cache deterministic.

`canonical_json` is the one serialization every hash reads (sorted keys, no
spaces), `call_cache_key` keys an LLM call by everything that affects it
(model, messages, sampling, seed, response schema), and `derive_seed` gives each
job a seed that is the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def sha256_hex(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def call_cache_key(model: str, messages: list[dict[str, str]], sampling: dict[str, Any], seed: int,
                   response_format: dict[str, Any]) -> str:
    """The key under which a call's response is cached: a hash of everything that affects the call."""
    payload = {"model": model, "messages": messages, "sampling": sampling, "seed": seed,
               "response_format": response_format, "v": 1}
    return sha256_hex(canonical_json(payload))


def derive_seed(base: int, job_id: str) -> int:
    """A stable per-job seed: the same base seed and job id give the same seed on every machine."""
    return (base * 1_000_003 + zlib.crc32(job_id.encode("utf-8"))) % 2**31
