"""The taskc runtime: executes a compiled task (generation plan, labeling, training, evaluation, report).

The public API is listed in `__all__`. Names are imported on first use (PEP 562),
so that importing one runtime module does not pull in scikit-learn or the
openai client when they are not needed.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "run": "pipeline", "RunOptions": "options", "RunResult": "result",
    "run_generation": "generation", "GenerationOptions": "generation", "GenerationSummary": "generation",
    "load_generated_examples": "generation", "planned_calls": "generation",
    "ProviderSettings": "provider", "provider_settings_from_env": "provider", "LLMClient": "provider",
    "CallResult": "provider", "Budget": "provider",
    "ResponseCache": "cache",
    "run_finetune": "finetune", "validate_training_file": "finetune",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'taskc.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
