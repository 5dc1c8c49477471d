"""The options of `taskc run`, grouped by concern: built once by the CLI, read by the runtime.

Each group is a small frozen record of one concern: the endpoint and how hard to call it
(`EndpointOptions`), what the run may spend (`BudgetOptions`), how it shows its progress
(`PresentationOptions`), where its files are and may be (`PathOptions`) and whether it fine-tunes
(`FinetuneOptions`). `RunOptions` composes them. The provider's `ProviderSettings` and generation's
`GenerationOptions` are built from them here and nowhere else, so a new option is added to one group
and, if the provider or generation needs it, to one builder below. Nothing here imports the provider
code: an offline run never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .generation import GenerationOptions
    from .provider import ProviderSettings

HOW_TO_ENABLE_LLM = "set OPENAI_API_KEY, or OPENAI_BASE_URL / --base-url for a local server"

Notice = Callable[[str], None]  # where the run's notices go (the CLI's stderr, or nowhere under --quiet)


@dataclass(frozen=True)
class EndpointOptions:
    """Which LLM endpoint and model a run calls, and how hard (None: the provider's default)."""

    base_url: str | None = None  # --base-url; else $OPENAI_BASE_URL
    model: str | None = None  # --model: every LLM call uses it instead of the plan's model
    concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    deadline: float | None = None  # --deadline: seconds after which no LLM request starts; the run ends, exit 4
    batch: bool = False  # --batch: every batchable call through the Batch API
    request_timeout: float | None = None  # --request-timeout: seconds one request may take (default 60)

    @property
    def configured(self) -> bool:
        """Whether a provider is configured at all (checked without importing the provider code)."""
        return bool(self.base_url or os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


@dataclass(frozen=True)
class BudgetOptions:
    """What the whole run may spend on LLM calls (--max-cost, --max-calls)."""

    max_cost: float | None = None
    max_calls: int | None = None


@dataclass(frozen=True)
class PresentationOptions:
    """How the run shows its progress (--quiet, --format json)."""

    quiet: bool = False
    json_progress: bool = False


@dataclass(frozen=True)
class PathOptions:
    """Where the run writes, and which files it may read instead of (or beside) the task's."""

    run_dir: Path
    gold: Path | None = None  # --gold: overrides eval.gold; any path (it is the user's own file)
    answers: Path | None = None  # --answers: the expert's answers to `taskc ask`; overrides pool.answers


@dataclass(frozen=True)
class FinetuneOptions:
    """Whether the run fine-tunes (--finetune) and how long it waits for the job (--finetune-max-wait)."""

    enabled: bool = False
    max_wait: float | None = None


@dataclass(frozen=True)
class RunOptions:
    paths: PathOptions
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)
    budget: BudgetOptions = field(default_factory=BudgetOptions)
    presentation: PresentationOptions = field(default_factory=PresentationOptions)
    finetune: FinetuneOptions = field(default_factory=FinetuneOptions)


def provider_settings(endpoint: EndpointOptions) -> ProviderSettings | None:
    """The provider's settings for this endpoint (its --deadline counted from now); None when none is configured."""
    if not endpoint.configured:  # checked first so that an offline run never imports the provider code
        return None
    from .provider import RunDeadline, provider_settings_from_env

    return provider_settings_from_env(base_url=endpoint.base_url, model=endpoint.model,
                                      concurrency=endpoint.concurrency, rpm=endpoint.rpm, tpm=endpoint.tpm,
                                      timeout=endpoint.request_timeout, run_deadline=None if endpoint.deadline is None
                                      else RunDeadline.after(endpoint.deadline))


def generation_options(options: RunOptions) -> GenerationOptions:
    """Generation's options within a run (its request limits are in the provider settings)."""
    from .generation import GenerationOptions

    return GenerationOptions(max_cost=options.budget.max_cost, max_calls=options.budget.max_calls,
                             batch=options.endpoint.batch, quiet=options.presentation.quiet,
                             json_progress=options.presentation.json_progress)


__all__ = ["BudgetOptions", "EndpointOptions", "FinetuneOptions", "HOW_TO_ENABLE_LLM", "Notice", "PathOptions",
           "PresentationOptions", "RunOptions", "generation_options", "provider_settings"]
