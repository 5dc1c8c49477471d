"""Wording shared by every message of the runtime: a count with its noun agreeing.

A leaf module (it imports nothing of taskc): the progress lines, the notes and every report section
use it, so "1 item" and "2 items" read the same everywhere.
"""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """``count`` with ``noun``, plural unless the count is one: "1 item", "3 items", "1,200 items"."""
    return f"{count:,} {noun}{'s' if count != 1 else ''}"


__all__ = ["counted"]
