"""Runtime provider: keeping the API key out of everything a response brings in.

`scrub` removes the key from one text, `scrub_in_place` from every string of a
parsed response; both are applied where a response enters taskc (the client, the
Batch path, fine-tuning), before anything stores or shows it.
"""

from __future__ import annotations

from typing import Any

from .settings import PLACEHOLDER_API_KEY

REDACTED = "[redacted]"


def scrub(text: str, secret: str | None) -> str:
    """Remove the API key from a text that may end up in a file or on the screen."""
    if secret is not None and _worth_scrubbing(secret) and secret in text:
        text = text.replace(secret, REDACTED)
    return text


def scrub_in_place(value: Any, secret: str | None) -> Any:
    """Remove the API key from every string in a value parsed from a response (dict keys too, at any
    depth) and return it; containers are changed in place, as the parsed response is taskc's own.

    This is the boundary where a response enters taskc: a server that echoes the bearer token in an
    answer (by mistake or on purpose) must not get it into the cache, the datasets or a model's
    vocabulary. A loop rather than recursion: a response may nest as deep as the JSON parser allows.
    """
    if secret is None or not _worth_scrubbing(secret):
        return value
    if isinstance(value, str):
        return scrub(value, secret)
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if any(isinstance(key, str) and secret in key for key in node):
                items = list(node.items())
                node.clear()
                node.update((scrub(k, secret) if isinstance(k, str) else k, v) for k, v in items)
            for key, item in node.items():
                if isinstance(item, str):
                    if secret in item:
                        node[key] = item.replace(secret, REDACTED)
                elif isinstance(item, (dict, list)):
                    pending.append(item)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    if secret in item:
                        node[index] = item.replace(secret, REDACTED)
                elif isinstance(item, (dict, list)):
                    pending.append(item)
    return value


def _worth_scrubbing(secret: str) -> bool:
    # the placeholder of a keyless local server is no secret, and a key of a few characters would
    # redact half of every answer
    return secret != PLACEHOLDER_API_KEY and len(secret) >= 4

