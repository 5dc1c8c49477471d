"""Each gold item is listed once in a report: where it first appears, and a pointer everywhere after.

An error that three rationales voted for belongs under each of them, and again under the next step that
names them; written out in full each time it buries the report in copies. The report's sections ask an
`ItemListing` which of their items are new (listed in full, with every rationale that voted on it: the
item line already names them) and which were listed before (one line pointing back to where).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class ItemListing:
    """Where each gold item was first listed, in the order the report is written."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # a section lists at most this many items in full
        self._first: dict[int, str] = {}

    def split(self, indices: Sequence[int], where: str) -> tuple[list[int], list[int]]:
        """(items to list here in full, items listed before); the first are recorded as listed `where`."""
        new = [i for i in indices if i not in self._first]
        before = [i for i in indices if i in self._first]
        for index in new[:self.limit]:
            self._first[index] = where
        return new, before

    def pointer(self, before: Sequence[int], line_of: Callable[[int], int]) -> str:
        """`Also listed above: lines 9 and 10 of the gold file (under `praise`).` for the items of `before`;
        the places are as the sections gave them to `split` (already in the report's markup)."""
        by_place: dict[str, list[int]] = {}
        for index in before:
            by_place.setdefault(self._first[index], []).append(line_of(index))
        places = "; ".join(f"{_lines(lines)} (under {place})" for place, lines in by_place.items())
        return f"Also listed above: {places}."


def _lines(numbers: Sequence[int]) -> str:
    shown = [str(n) for n in sorted(set(numbers))]
    if len(shown) == 1:
        return f"line {shown[0]} of the gold file"
    return f"lines {', '.join(shown[:-1])} and {shown[-1]} of the gold file"
