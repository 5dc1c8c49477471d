"""Emitter support: the Jinja2 sandbox the prompt templates are compiled and rendered in.

Its own module so that Jinja is imported only where a template is compiled: `taskc run` gets its task
compiled by its model process, with every prompt of the plan rendered, and mostly compiles none.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment


def sandbox() -> BoundedSandbox:
    """A new environment for the task's templates."""
    # autoescape off: prompts are plain text, and values are data either way (never template code)
    return BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)


MAX_RANGE = 10_000  # items of one range() in a template
MAX_POWER_BITS = 4_096  # bits of a ** result in a template
MAX_REPEAT_CHARS = 1_000_000  # characters or items of a string / list built by * or + in a template


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, which stops code from escaping but not from working forever: here `**`, `*` and `+`
    refuse results past a size, and `range` past MAX_RANGE items, with a SecurityError naming the limit.
    What a template can still spend (loops over loops) is bounded by rendering custom templates in a
    process with CPU and memory limits at compile time (`prompts.render_bounded`)."""

    intercepted_binops = frozenset({"**", "*", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _bounded_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_number(left) and _is_number(right):
            magnitude = abs(left) if isinstance(left, int) else 2
            if isinstance(right, int) and right > 0 and max(1, int(magnitude).bit_length()) * right > MAX_POWER_BITS:
                raise SecurityError(f"'**' would build a number of more than {MAX_POWER_BITS} bits")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int) \
                        and len(sequence) * times > MAX_REPEAT_CHARS:
                    raise SecurityError(f"'*' would build a {type(sequence).__name__} of more than "
                                        f"{MAX_REPEAT_CHARS:,} items")
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple) \
                and len(left) + len(right) > MAX_REPEAT_CHARS:
            raise SecurityError(f"'+' would build a value of more than {MAX_REPEAT_CHARS:,} items")
        return super().call_binop(context, operator, left, right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bounded_range(*args: int) -> range:
    found = range(*args)
    if len(found) > MAX_RANGE:
        raise SecurityError(f"range() of more than {MAX_RANGE:,} items")
    return found
