"""Emitter helper: which call of its cell each generation job is, and the messages that call sends.

A generation cell (a class, and a rationale or none) is asked for its examples
in several calls. Sent the same messages, a model answers them with the same
examples (only the seed would differ), so each call of a cell is rendered with
its own number and focus (`prompts.call_context`) and its prompt file keeps the
messages of every call. The plan's jobs of one prompt are its calls in order;
this module maps a job to its call and keys the job by the messages that call
really sends, so the cache key still hashes everything that affects the call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from .hashing import call_cache_key
from .plan import GenerationJob
from .prompts import RenderedPrompt


def call_indices(plan: Sequence[GenerationJob]) -> list[int]:
    """The 0-based call number of each job within its prompt (jobs of one prompt come in call order)."""
    seen: dict[str, int] = {}
    indices = []
    for job in plan:
        index = seen.get(job.prompt, 0)
        seen[job.prompt] = index + 1
        indices.append(index)
    return indices


def job_messages(plan: Sequence[GenerationJob], prompts: Mapping[str, RenderedPrompt]) -> list[list[dict[str, str]]]:
    """The chat messages each job sends."""
    out = []
    for job, index in zip(plan, call_indices(plan), strict=True):
        prompt = prompts[job.prompt]
        out.append(prompt.as_chat(index if index < prompt.calls else 0))
    return out


def keyed_by_call(plan: Sequence[GenerationJob], prompts: Mapping[str, RenderedPrompt]) -> list[GenerationJob]:
    """The plan with each job's cache key computed from its own call's messages."""
    keyed = []
    for job, messages in zip(plan, job_messages(plan, prompts), strict=True):
        key = call_cache_key(job.model, messages, job.sampling(), job.seed, job.response_format)
        keyed.append(job if key == job.cache_key else dataclasses.replace(job, cache_key=key))
    return keyed
