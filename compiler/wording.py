"""Wording shared by every message taskc prints: a count with its noun agreeing.

A leaf module (it imports nothing of taskc), beside `money` (one way to write a price): `taskc diff` and
`compile`, the run's progress lines, its notes and every report section use it, so "1 item" and "2 items"
read the same everywhere. The runtime and the CLI reach it through the compiler's façade.
"""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``count`` with ``noun``, plural unless the count is one: "1 item", "3 items", "1,200 items"."""
    return f"{count:,} {noun}{'s' if count != 1 else ''}"


__all__ = ["counted"]
