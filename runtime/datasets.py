"""Runtime stage: the files of a run directory, written atomically.

Generation ends here: accepted examples with their provenance go to
`examples.jsonl`, the same examples in OpenAI's chat fine-tuning layout to
`train.jsonl` / `val.jsonl` (a deterministic, per-class split), rejected and
duplicate examples with their reasons to `rejected.jsonl`, and the counters to
`stats.json`. Every file is written to a temporary name, flushed to disk and
renamed over the old one, so a reader (or a killed run) never sees half a file.
The offline pipeline reads the examples back with `read_jsonl`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from taskc.compiler import dumps, write_atomic

EXAMPLES_FILE = "examples.jsonl"
TRAIN_FILE = "train.jsonl"
VAL_FILE = "val.jsonl"
REJECTED_FILE = "rejected.jsonl"
STATS_FILE = "stats.json"
CACHE_FILE = "cache.sqlite"


def jsonl_bytes(rows: Iterable[Any]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n" for row in rows).encode("utf-8")


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    write_atomic(path, jsonl_bytes(rows))


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, dumps(value))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def split_train_val(examples: Sequence[dict[str, Any]], validation_split: float
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A deterministic split, stratified by label: within each class, examples are ordered by a hash
    of their id and the first ``validation_split`` share goes to validation. The same examples always
    give the same split, whatever order they arrive in."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for example in examples:
        by_label.setdefault(str(example["label"]), []).append(example)
    validation_ids: set[str] = set()
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda e: hashlib.sha256(e["id"].encode("utf-8")).hexdigest())
        count = round(len(group) * validation_split)
        if validation_split > 0 and count == 0 and len(group) >= 2:
            count = 1  # a class with few examples still shows up in validation
        validation_ids.update(e["id"] for e in group[:count])
    train = [e for e in examples if e["id"] not in validation_ids]
    val = [e for e in examples if e["id"] in validation_ids]
    return train, val


def write_dataset(run_dir: Path, accepted: Sequence[dict[str, Any]], rejected: Sequence[dict[str, Any]],
                  training_messages: Callable[[dict[str, Any], str], list[dict[str, str]]],
                  input_fields: Sequence[str], validation_split: float) -> dict[str, Path]:
    """Write examples, train/val and rejected files; return their paths by role."""
    paths = {"examples": run_dir / EXAMPLES_FILE, "train": run_dir / TRAIN_FILE, "val": run_dir / VAL_FILE,
             "rejected": run_dir / REJECTED_FILE}
    write_jsonl(paths["examples"], accepted)
    train, val = split_train_val(accepted, validation_split)

    def chat(example: dict[str, Any]) -> dict[str, Any]:
        values = {name: example[name] for name in input_fields if name in example}
        return {"messages": training_messages(values, example["label"])}

    write_jsonl(paths["train"], map(chat, train))
    write_jsonl(paths["val"], map(chat, val))
    write_jsonl(paths["rejected"], rejected)
    return paths
