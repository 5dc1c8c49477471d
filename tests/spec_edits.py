"""Editing a task file's text in a test, checked: an edit that no longer applies fails loudly.

Tests derive hostile or changed specs from the shipped example. A bare `str.replace` that finds nothing
returns the text unchanged, and the test then checks the unedited example and passes while testing
nothing; `edit` refuses that.
"""

from __future__ import annotations


def edit(text: str, old: str, new: str, count: int = 1) -> str:
    """``text`` with ``old`` replaced by ``new``, which must occur exactly ``count`` times."""
    found = text.count(old)
    if found != count:
        raise AssertionError(f"the edit expects {count} occurrence(s) of {old!r} in the spec, found {found}: "
                             "the example changed; update the test's edit")
    return text.replace(old, new)
