"""Runtime provider: reading an answer, and deciding whether it can be used.

Both the online and the Batch path read a chat completion the same way
(`read_completion`, `parse_choice`, `parse_answer`): token usage that must be
whole, plausible numbers (`usage_of`), JSON (a reasoning block, a markdown fence or
words around one JSON object tolerated) that
passes the call's response schema and the caller's own check. An answer that
cannot be used raises `AnswerProblem`, which is worth a retry. `read_embeddings`
does the same for an `/embeddings` body; `answer_record` is what the cache keeps.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...compiler import CHARS_PER_TOKEN, canonical_json
from ..schema_check import Check, compile_schema_check

# More tokens than any model reads or writes in one response: a usage block claiming more is not believed.
MAX_TOKENS_PER_RESPONSE = 100_000_000
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)
# A reasoning model served without a reasoning parser writes its thinking into the content, before the answer.
_THINKING = re.compile(r"\s*<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)


def squeezed(text: str, limit: int = 300) -> str:
    """``text`` on one line (every run of whitespace one space), at most ``limit`` characters: a server's
    words as a failure or a note shows them."""
    return " ".join(text.split())[:limit]


class AnswerProblem(Exception):
    """An answer arrived but cannot be used (malformed, truncated, schema-invalid); worth a retry."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _SchemaCheckers:
    """A response schema's fast check (None when the schema is outside its subset) and its jsonschema
    validator, which has the last word and words the message. The validator is built for the first answer
    the fast check does not pass: jsonschema is then imported (~0.1 s), and a run whose answers all pass
    never imports it."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.fast_check: Check | None = compile_schema_check(schema)
        self._validator: Any = None

    def first_error(self, value: Any) -> Any:
        """jsonschema's best error for ``value`` (None when it is valid)."""
        import jsonschema

        if self._validator is None:
            self._validator = jsonschema.Draft202012Validator(self.schema)
        return jsonschema.exceptions.best_match(self._validator.iter_errors(value))


_checkers_by_text: dict[str, _SchemaCheckers] = {}
_checkers_by_identity: dict[int, tuple[Any, _SchemaCheckers]] = {}


def _schema_checkers(schema: Any) -> _SchemaCheckers:
    """The checkers of a response schema, built once per schema.

    Every call of a job passes the same schema object, so the lookup by identity (which keeps the
    object alive, so its id cannot be reused) spares serialising the schema on every answer.
    """
    known = _checkers_by_identity.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    text = canonical_json(schema)
    checkers = _checkers_by_text.get(text)
    if checkers is None:
        if len(_checkers_by_text) > 256:
            _checkers_by_text.clear()
        checkers = _checkers_by_text[text] = _SchemaCheckers(schema)
    if len(_checkers_by_identity) > 1024:
        _checkers_by_identity.clear()
    _checkers_by_identity[id(schema)] = (schema, checkers)
    return checkers


def parse_answer(content: str | None, finish_reason: str | None, response_format: Mapping[str, Any],
                 validate: Callable[[dict], str | None] | None = None) -> dict[str, Any]:
    """Check one answer the way both the online and the Batch path do; raise AnswerProblem if unusable. An
    answer that stopped at the token limit is truncated unless it holds a whole JSON object all the same (a
    server that says "length" for an answer that ended right at it)."""
    truncated = AnswerProblem("truncated", "answer truncated at the token limit")
    if not content or not isinstance(content, str):
        if finish_reason == "length":
            raise truncated
        raise AnswerProblem("malformed", "empty answer" if finish_reason != "content_filter" else "answer refused")
    try:
        value = _json_of(content)
    except AnswerProblem:
        if finish_reason == "length":
            raise truncated from None
        raise
    if not isinstance(value, dict):
        raise AnswerProblem("malformed", "answer is not a JSON object")
    schema = (response_format.get("json_schema") or {}).get("schema")
    if schema:
        checkers = _schema_checkers(schema)
        if checkers.fast_check is None or not checkers.fast_check(value):
            error = checkers.first_error(value)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "answer"
                raise AnswerProblem("schema_violation", f"{where}: {error.message[:200]}")
    if validate is not None:
        problem = validate(value)
        if problem:
            raise AnswerProblem("invalid", problem)
    return value


def _json_of(content: str) -> Any:
    """The JSON value an answer holds: the whole content, or, around it, a reasoning block before it
    (``<think>...</think>``), a markdown code block (some local models wrap JSON in one even in JSON mode) or
    words before and after one whole JSON object ("Here is the JSON: {...}", as a model asked without a
    response_format may write); raises AnswerProblem when there is none. The schema check that follows is
    what makes the leniency safe."""
    thinking = _THINKING.match(content)
    if thinking:
        content = content[thinking.end():]
    fenced = _FENCE.fullmatch(content.strip())
    if fenced:
        content = fenced.group(1)
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        start = content.find("{")
        if start >= 0:
            try:
                return json.JSONDecoder().raw_decode(content, start)[0]
            except json.JSONDecodeError:
                pass
        raise AnswerProblem("malformed", f"answer is not JSON ({exc.msg} at {exc.pos})") from None


def read_completion(body: Any, requested_model: str) -> tuple[dict[str, int], str, dict[str, Any] | None]:
    """A chat completion's token usage, answering model (the requested one if it names none; for the record
    only, never for the price) and first choice (None when there is none): the parts both the online and the
    Batch path read. Raises AnswerProblem for a usage block no server could mean (see usage_of), and for an
    error sent in place of the choices (a proxy's 200 carrying its upstream's failure), naming it."""
    body = body if isinstance(body, dict) else {}
    answered = body.get("model")
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    if choice is None:  # a proxy may answer 200 with its upstream's error instead of a completion
        error = body.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        if isinstance(said, str) and said.strip():
            raise AnswerProblem("malformed", f"answer has no choices, only an error: {squeezed(said)}")
    return usage_of(body.get("usage")), answered if isinstance(answered, str) and answered else requested_model, choice


def parse_choice(choice: dict[str, Any] | None, response_format: Mapping[str, Any],
                 validate: Callable[[dict], str | None] | None = None) -> dict[str, Any]:
    """The checked answer of a completion's first choice (see parse_answer); raises AnswerProblem."""
    if choice is None:
        raise AnswerProblem("malformed", "answer has no choices")
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    refusal = message.get("refusal") if isinstance(message, dict) else None
    if not content and isinstance(refusal, str) and refusal.strip():  # structured outputs' way of saying no
        raise AnswerProblem("malformed", f"the model refused: {squeezed(refusal, 200)}")
    if isinstance(content, list):  # content parts, as some proxies send them: the text parts, in order
        content = "".join(part["text"] for part in content
                          if isinstance(part, dict) and part.get("type") in ("text", "output_text")
                          and isinstance(part.get("text"), str))
    return parse_answer(content, choice.get("finish_reason"), response_format, validate)


def answer_record(content: dict[str, Any], request_id: str | None, usage: dict[str, int], model: str,
                  **extra: Any) -> dict[str, Any]:
    """What the cache keeps of an answer."""
    return {"content": content, "request_id": request_id, "usage": usage, "model": model,
            "created": int(time.time()), **extra}


def usage_of(raw: Any) -> dict[str, int]:
    """Token usage of a response (object or dict) as {"input_tokens", "output_tokens"}.

    Raises AnswerProblem ("malformed", worth a retry) for a count that is a number but not a token count:
    negative, not finite (JSON's 1e999 reads as infinity), fractional, or beyond MAX_TOKENS_PER_RESPONSE."""
    if raw is None:
        return {"input_tokens": 0, "output_tokens": 0}
    get = raw.get if isinstance(raw, dict) else (lambda name, default=0: getattr(raw, name, default))
    return {"input_tokens": _token_count("prompt_tokens", get("prompt_tokens", 0)),
            "output_tokens": _token_count("completion_tokens", get("completion_tokens", 0))}


def charged_usage(body: Any, usage: dict[str, int], messages: Any, response_format: Mapping[str, Any],
                  choice: Mapping[str, Any] | None) -> tuple[dict[str, int], bool]:
    """What to charge for a completion (``usage``: what `read_completion` read from ``body``): its own usage,
    or, when it reports none (some OpenAI-compatible servers and proxies do not), an estimate from its length,
    and whether it is one. A usage that leaves a side out or counts it as 0 tokens (a request always has
    some, and so has an answer with content) is estimated on that side: a server that counts nothing, or
    the prompt only, must not let a run spend past --max-cost."""
    reported = isinstance(body, dict) and isinstance(body.get("usage"), dict)
    if reported and all(usage.values()):
        return usage, False  # (every answer of a server that counts: the estimate is not worked out)
    estimate = estimated_usage(messages, response_format, choice)
    if not reported:
        return estimate, True
    charged = {side: count or estimate[side] for side, count in usage.items()}
    return charged, charged != usage


def estimated_usage(messages: Any, response_format: Mapping[str, Any], choice: Mapping[str, Any] | None
                    ) -> dict[str, int]:
    """The tokens of a call whose answer came without usage, from its length (CHARS_PER_TOKEN characters a
    token, the estimate's rule): what it sent (messages and schema) and what it got back. Charged instead of
    nothing, so that --max-cost still holds against a server that does not count."""
    message = choice.get("message") if isinstance(choice, Mapping) else None
    content = message.get("content") if isinstance(message, Mapping) else None
    sent = len(canonical_json(messages)) + len(canonical_json(dict(response_format)))
    return {"input_tokens": -(-sent // CHARS_PER_TOKEN),
            "output_tokens": -(-len(content) // CHARS_PER_TOKEN) if isinstance(content, str) else 0}


def _token_count(name: str, value: Any) -> int:
    # A usage block that is not numbers at all (a string, a list) counts as no tokens rather than failing the
    # call, as before; a number no server could mean is a malformed answer.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise AnswerProblem("malformed", f"usage: {name} is {value!r}, not a whole number of tokens")
    if not 0 <= value <= MAX_TOKENS_PER_RESPONSE:
        raise AnswerProblem("malformed", f"usage: {name} is {value!r}, not a plausible number of tokens")
    return int(value)



def embedding_tokens(texts: Sequence[str]) -> int:
    """The input tokens an embeddings request is estimated at before its answer: CHARS_PER_TOKEN characters
    a token, and one more per text."""
    return sum(len(text) for text in texts) // CHARS_PER_TOKEN + len(texts)


def charged_embedding_usage(body: Any, texts: Sequence[str]) -> tuple[dict[str, int], bool]:
    """What to charge for an embeddings answer: the input tokens it reports, or, when it reports none, the
    estimate from its texts, and whether it is one (AnswerProblem: a usage no server could mean)."""
    tokens = usage_of(body.get("usage") if isinstance(body, dict) else None)["input_tokens"]
    return ({"input_tokens": tokens}, False) if tokens else ({"input_tokens": embedding_tokens(texts)}, True)


def read_embeddings(body: Any, expected: int) -> list[list[float]]:
    """The vectors of an `/embeddings` response in input order; ValueError when the body is not one."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        raise ValueError(f"expected {expected} vectors, got {len(data) if isinstance(data, list) else 'none'}")
    ordered: list[list[float] | None] = [None] * expected
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < expected or ordered[index] is not None:
            raise ValueError(f"item {position} has no usable index")
        if not isinstance(vector, list) or not vector or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in vector):
            raise ValueError(f"item {position} is not a list of finite numbers (base64 vectors are not read)")
        ordered[index] = vector
    if len({len(v) for v in ordered if v is not None}) != 1:
        raise ValueError("the vectors differ in length")
    return ordered  # type: ignore[return-value]

