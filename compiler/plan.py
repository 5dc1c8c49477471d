"""Emitter: the generation plan, a flat list of `GenerationJob`s.

One job per call, each with everything that affects the call (model, sampling,
seed, messages through its prompt, the JSON Schema the answer must follow) and
a cache key hashing exactly that, so the runtime can cache, resume and never pay
twice for the same call. The cells of the generation matrix (a class, and a
rationale or none) decide which prompts exist and how many calls each makes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import ir
from .hashing import call_cache_key, derive_seed, sha256_hex
from .prompts import RenderedPrompt


@dataclass(frozen=True)
class GenerationJob:
    id: str
    target_class: str
    rationale: str | None
    mode: str  # rationale | near_miss | class
    prompt: str  # output-relative prompt path
    prompt_sha256: str
    model: str
    temperature: float
    top_p: float | None
    max_tokens: int | None
    seed: int
    examples: int
    response_format: dict[str, Any]
    cache_key: str

    kind = "generate"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "class": self.target_class, "rationale": self.rationale,
            "mode": self.mode, "prompt": self.prompt, "prompt_sha256": self.prompt_sha256,
            "model": self.model, "sampling": self.sampling(), "seed": self.seed, "examples": self.examples,
            "response_format": self.response_format, "cache_key": self.cache_key,
        }

    def sampling(self) -> dict[str, Any]:
        values: dict[str, Any] = {"temperature": self.temperature}
        if self.top_p is not None:
            values["top_p"] = self.top_p
        if self.max_tokens is not None:
            values["max_tokens"] = self.max_tokens
        return values


@dataclass(frozen=True)
class GenerationCell:
    target_class: str
    rationale: ir.Rationale | None
    mode: str
    examples: int

    @property
    def prompt_path(self) -> str:
        if self.rationale is None:
            return f"prompts/generate/{self.target_class}/_class.md"
        return f"prompts/generate/{self.target_class}/{self.rationale.id}.md"


def generation_cells(task: ir.TaskIR) -> list[GenerationCell]:
    """The (class, rationale) cells of the generation matrix that have something to generate."""
    cells: list[GenerationCell] = []
    settings = task.generate
    for task_class in task.classes:
        for rationale in task.rationales:
            own = rationale.class_name == task_class.name
            count = settings.per_rationale if own else settings.near_misses
            if count > 0:
                cells.append(GenerationCell(task_class.name, rationale, "rationale" if own else "near_miss", count))
        if settings.per_class > 0:
            cells.append(GenerationCell(task_class.name, None, "class", settings.per_class))
    return cells


def build_plan(task: ir.TaskIR, prompts: Mapping[str, RenderedPrompt], response_format: dict[str, Any]
               ) -> list[GenerationJob]:
    settings = task.generate
    jobs: list[GenerationJob] = []
    for cell in generation_cells(task):
        prompt = prompts[cell.prompt_path]
        messages = prompt.as_chat()
        prompt_sha256 = sha256_hex(prompt.to_markdown())
        calls = math.ceil(cell.examples / settings.per_call)
        for index in range(calls):
            job_id = f"gen/{cell.target_class}/{cell.rationale.id if cell.rationale else '_class'}/{index:03d}"
            seed = derive_seed(settings.seed, job_id)
            job = GenerationJob(
                id=job_id, target_class=cell.target_class, rationale=cell.rationale.id if cell.rationale else None,
                mode=cell.mode, prompt=cell.prompt_path, prompt_sha256=prompt_sha256,
                model=settings.model, temperature=settings.temperature, top_p=settings.top_p,
                max_tokens=settings.max_tokens, seed=seed, examples=settings.per_call,
                response_format=response_format, cache_key="")
            key = call_cache_key(job.model, messages, job.sampling(), seed, response_format)
            jobs.append(dataclasses.replace(job, cache_key=key))
    return jobs
