"""A command's start-up without garbage collections: `uncollected_start_up`.

Importing modules, parsing arguments and receiving a compiled task make long-lived objects only
(the modules, the `openai` client's pydantic models, the task), and the collector would walk them
again and again to find nothing: about 0.3 s of CPU before `taskc run`'s first LLM call. This
module imports nothing but the standard library, so the command line can use it before it imports
anything else.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def uncollected_start_up() -> Iterator[Callable[[], None]]:
    """Pause the garbage collector for the block; the function it gives ends the start-up early.

    Ending it freezes what start-up made out of later collections (`gc.freeze`), so they walk only what
    the work itself makes, and turns the collector back on. Leaving the block unfreezes it all again (a
    garbage cycle the start-up made is collected then, and a process that runs many commands, a test's,
    keeps none of them) and leaves the collector as it was found."""
    enabled = gc.isenabled()
    gc.disable()
    frozen = False

    def started() -> None:
        nonlocal frozen
        if not frozen:
            gc.freeze()
            frozen = True
        if enabled:
            gc.enable()
    try:
        yield started
    finally:
        if frozen:
            gc.unfreeze()
        if enabled:
            gc.enable()
