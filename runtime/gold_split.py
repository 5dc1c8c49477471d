"""The dev and test halves of the gold set: the expert learns from one, the launch is judged on the other.

Used by `taskc run` before evaluation. If the expert reads every gold error and
edits rules until they go away, the gold score stops measuring anything: it
measures how well the rules were fitted to those very items. So the gold set is
split once, deterministically and stratified by label: the report shows the
expert only dev items (errors, examples, suggestions), the test half contributes
numbers only, and the pass criterion is judged on test.

An item's half depends on its content (the canonical input text), its label and
the split seed, never on the order of the file: shuffling the file, or adding
items, moves no existing item except the few at the boundary of its class.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

DEV, TEST = "dev", "test"


def split_gold(labels: Sequence[str], keys: Sequence[str], test_fraction: float, seed: int) -> tuple[str, ...]:
    """Each item's half (DEV or TEST): per class, the round(n × test_fraction) items ranked first by a
    seeded hash of their key go to TEST. Items with equal keys (duplicates) are ranked by position."""
    if len(labels) != len(keys):
        raise ValueError(f"{len(labels)} labels but {len(keys)} keys")
    halves = [DEV] * len(labels)
    for label in sorted(set(labels)):
        members = [i for i, item_label in enumerate(labels) if item_label == label]
        ranked = sorted(members, key=lambda i: (_rank(seed, keys[i]), i))
        for i in ranked[:round(len(members) * test_fraction)]:
            halves[i] = TEST
    return tuple(halves)


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


__all__ = ["DEV", "TEST", "split_gold"]
