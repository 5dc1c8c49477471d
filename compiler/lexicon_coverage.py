"""Knowledge the rules never apply: a lexicon's words in a field that no rule tests against that lexicon.

Used by the `warn_lexicon_in_unread_field` pass (W107, on a bounded sample of the
task's pool and gold files) and by the run's report (on the whole gold set and
pool). The typical case: every rule reads `ingredients` against `high_carb`,
while a menu entry has only a `dish` name full of those words; the rules then
say nothing on exactly the inputs where the expert's knowledge was needed.
Which field a rule tests against which lexicon comes from its parsed form
(`expr_nodes.lexicon_reads`); whether a field mentions a lexicon is decided by
the same matcher `mentions` uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ir
from .expr_nodes import lexicon_reads
from .functions import lexicon_index
from .paths import open_regular_file

GAP_SHARE = 0.05  # a lexicon mentioned in a field of at least this share of the items is worth a warning
SAMPLE_LINES = 2000  # what `taskc check` reads of a pool or gold file
SAMPLE_BYTES = 4 << 20


@dataclass(frozen=True)
class KnowledgeGap:
    lexicon: str
    field: str
    gold_share: float | None  # share of gold items whose field mentions the lexicon (None: no gold read)
    pool_share: float | None

    def message(self) -> str:
        shares = [f"{share:.0%} of the {name}" for name, share in (("gold items", self.gold_share),
                                                                  ("pool items", self.pool_share))
                  if share is not None]
        return (f"words of lexicon `{self.lexicon}` occur in the field `{self.field}` of {' and '.join(shares)}, "
                f"but no rule reads `{self.field}` against `{self.lexicon}`")

    def hint(self) -> str:
        return f"add mentions({self.field}, lexicon.{self.lexicon}) (or a lambda over it) to the rule that needs it"


def knowledge_gaps(task: ir.TaskIR, gold: Sequence[Mapping[str, Any]] | None,
                   pool: Sequence[Mapping[str, Any]] | None) -> list[KnowledgeGap]:
    """(lexicon, field) pairs whose words occur in the data that no rule tests. Lexicons no rule uses at
    all are W103's business, not a gap of one field."""
    read = {pair for r in task.rationales if r.rule is not None and r.rule.node is not None
            for pair in lexicon_reads(r.rule.node)}
    used = {lexicon for _, lexicon in read}
    gaps = []
    index = lexicon_index(task.lexicon_words())
    for lexicon in task.lexicons:
        if lexicon.name not in used:
            continue
        holds = index.holds(lexicon.name)
        for field in task.fields:
            if field.type not in ("string", "list[string]") or (field.name, lexicon.name) in read:
                continue
            gold_share = _mention_share(gold, field.name, holds) if gold else None
            pool_share = _mention_share(pool, field.name, holds) if pool else None
            if max(gold_share or 0.0, pool_share or 0.0) >= GAP_SHARE:
                gaps.append(KnowledgeGap(lexicon.name, field.name, gold_share, pool_share))
    return gaps


def _mention_share(items: Sequence[Mapping[str, Any]], name: str, holds: Any) -> float:
    def mentioned(value: Any) -> bool:
        if isinstance(value, str):
            return bool(holds(value))
        return isinstance(value, list) and any(holds(v) for v in value if isinstance(v, str))

    return sum(mentioned(values.get(name)) for values in items) / len(items)


def sample_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of the first SAMPLE_LINES lines of a JSONL file (at most SAMPLE_BYTES read; lines
    that do not parse are skipped: the run reports them, located). Only a regular file is opened, and
    lines end at a line feed only, as the run reads them (a JSON string may hold U+2028 raw)."""
    try:
        with open_regular_file(path) as stream:
            data = stream.read(SAMPLE_BYTES)
    except OSError:
        return []
    records = []
    for raw in data.decode("utf-8", errors="replace").split("\n")[:SAMPLE_LINES]:
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):  # a huge integer, deep nesting: the run reports the line
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


__all__ = ["KnowledgeGap", "knowledge_gaps", "sample_records"]
