"""The taskc compiler: task file → diagnostics, IR and deterministic compiled outputs.

Stages, one module each: `loader` (YAML with positions and limits) → `structure`
(JSON Schema) → `lowering` (the IR in `ir`, expressions parsed by `expr_parser`)
→ `passes` (names, types via `expr_check`, warnings) → emitters (`prompts`,
`plan`, `call_plan`, `configs`, `response_formats`, with `pricing` and
`hashing`). `driver.compile_task` runs them all; `semantic_diff`/`diff_render`
and `formatting` serve `taskc diff` and `taskc fmt`.

This module is the compiler's façade: the runtime imports the compiler only
through the names below (`from taskc.compiler import CompiledTask`), never from
its modules, so the contract between the two is this list.
"""

from typing import TYPE_CHECKING

from .call_plan import (
    BATCH_PRICE_FACTOR,
    EMBED,
    GENERATE,
    LABEL_POOL,
    SCORE_FINETUNED,
    SCORE_GOLD,
    CallPlan,
    LLMCall,
    PlanItem,
    gold_calls,
    largest_call_cost,
)
from .configs import (
    DEFAULT_EMBEDDING_MODEL,
    EMBEDDING_TOKENS_PER_TEXT,
    EmbeddingsStudentConfig,
    EvalConfig,
    FinetuneConfig,
    HostedJob,
    StudentConfig,
    TransformersStudentConfig,
)
from .diagnostics import Diagnostic, DiagnosticBag, ExitStatus, Severity, Span, TaskcError, did_you_mean
from .driver import CompiledTask, CompileResult, compile_task, dump_ir, dumps, write_outputs
from .embedding_calls import POOL_PART, gold_embedding_calls
from .expr_eval import ExpressionEvaluationError
from .expr_nodes import Expr
from .expr_types import OVERALL_METRICS, PER_CLASS_METRICS, metric_reads
from .functions import LexiconIndex, lexicon_index, mentions
from .generation_calls import job_messages
from .hashing import call_cache_key, canonical_json, sha256_hex
from .ir import DedupePolicy, InputField, TaskIR
from .item_text import EMPTY_TEXT, FIELD_SEPARATOR, VIEW_TYPES, embedded_text, field_view_values, item_text
from .lexicon_coverage import KnowledgeGap, knowledge_gaps
from .passes import OPENAI_FINETUNING_ALTERNATIVES, OPENAI_FINETUNING_SUNSET, value_problem
from .paths import first_link_inside, open_regular_file, write_atomic
from .plan import GenerationJob
from .pricing import CHARS_PER_TOKEN, PriceTable, builtin_prices, parse_price_table, price_for
from .rule_key import rule_key
from .wording import counted

if TYPE_CHECKING:
    from .semantic_diff import entity_changes

__all__ = [
    "BATCH_PRICE_FACTOR", "CHARS_PER_TOKEN", "CallPlan", "CompileResult", "CompiledTask", "DEFAULT_EMBEDDING_MODEL",
    "DedupePolicy", "Diagnostic", "DiagnosticBag", "EMBED", "EMBEDDING_TOKENS_PER_TEXT", "EMPTY_TEXT",
    "EmbeddingsStudentConfig", "EvalConfig", "ExitStatus", "Expr", "ExpressionEvaluationError", "FIELD_SEPARATOR",
    "FinetuneConfig", "GENERATE", "GenerationJob", "HostedJob", "InputField", "KnowledgeGap", "LABEL_POOL", "LLMCall",
    "LexiconIndex", "OPENAI_FINETUNING_ALTERNATIVES", "OPENAI_FINETUNING_SUNSET", "OVERALL_METRICS",
    "PER_CLASS_METRICS", "POOL_PART", "PlanItem", "PriceTable", "SCORE_FINETUNED", "SCORE_GOLD", "Severity", "Span",
    "StudentConfig", "TaskIR", "TaskcError", "TransformersStudentConfig", "VIEW_TYPES", "builtin_prices",
    "call_cache_key", "canonical_json", "compile_task", "counted", "did_you_mean", "dump_ir", "dumps", "embedded_text",
    "entity_changes", "field_view_values", "first_link_inside", "gold_calls", "gold_embedding_calls", "item_text",
    "job_messages", "knowledge_gaps", "largest_call_cost", "lexicon_index", "mentions", "metric_reads",
    "open_regular_file", "parse_price_table", "price_for", "rule_key", "sha256_hex", "value_problem", "write_atomic",
    "write_outputs",
]


def __getattr__(name: str) -> object:
    """`taskc diff`'s module, loaded on first use only: the runtime needs it for a run's history alone."""
    if name == "entity_changes":
        from .semantic_diff import entity_changes

        return entity_changes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
