"""Runtime provider: what a run learns about a server that refuses parts of the planned requests.

Servers nobody on the team wrote refuse things the plan sends: structured outputs (`response_format`
`json_schema`, or JSON mode too), a sampling parameter a model does not take (OpenAI's reasoning
models accept only the default `temperature`; some servers reject `seed` or `top_p` as unknown), or
more completion tokens than a model writes. A call refused so (a 400 or 422 that names it) is asked
again at once without it (or for fewer tokens), and so is every later call of the run, every phase:
`ServerAdjustments` is what the run learned, shared by every phase's client through the run's `Budget`
and by the Batch API's rounds (a refused batch line goes in the next round as adjusted). `refusal_of`
reads what an error status refuses; `ServerAdjustments.adjusted` is a planned request body as the server
takes it. The planned call stays what the cache key and the checks follow: an answer is always checked
against the planned response schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from ...compiler import canonical_json, counted
from .answers import squeezed
from .transport import first_line

# Words of a 400 that refuses the request's response_format (OpenAI: "'response_format' of type 'json_schema'
# is not supported with this model"; DeepSeek: "This response_format type is unavailable now"; servers
# without JSON mode: "json_object is not supported"; Gemini's, of a schema keyword it lacks: 'Unknown name
# "additionalProperties" at 'generation_config.response_schema''), matched lower-cased.
_FORMAT_REFUSAL_WORDS = ("response_format", "response format", "response_schema", "json_schema", "json_object",
                         "json mode", "structured output")
# The sampling parameters a call can do without (the server's default then applies), and the words of a
# refusal of one: OpenAI's "Unsupported value: 'temperature' does not support 0.9 with this model. Only the
# default (1) value is supported.", "Unrecognized request argument supplied: seed", a FastAPI server's
# "Extra inputs are not permitted".
DROPPABLE_PARAMETERS = ("temperature", "top_p", "seed")
# Fewer completion tokens than any answer of a plan fits in: a server limit below this fails the call instead.
MIN_COMPLETION_TOKENS = 16
_PARAMETER_REFUSAL_WORDS = ("unsupported", "not supported", "unrecognized", "unknown", "extra", "not permitted",
                            "not allowed", "only the default")


@dataclass
class ServerAdjustments:
    """What a run's server refused, and so what the run's calls leave out from then on."""

    response_format: str | None = None  # the format_ladder step taken by name ("json_object", "none"), if any
    format_refusal: str = ""  # the server's message when it refused the planned format
    dropped: dict[str, str] = field(default_factory=dict)  # sampling parameter -> the server's refusal
    completion_cap: int | None = None  # the most completion tokens the model takes, once the server said it
    cap_refusal: str = ""  # the server's words when it said so
    max_completion_tokens: bool = False  # the model wants max_completion_tokens, not max_tokens (newer models)
    # told each adjustment as it is made (the run's notices: a line on stderr, a "message" event)
    announce: Callable[[str], None] = field(default=lambda line: None, repr=False, compare=False)

    def step_down(self, refused: str, taken: str, refusal: str) -> None:
        """The server refused the format named ``refused`` (``refusal``: its words); ask for ``taken``."""
        self.response_format = taken
        self.format_refusal = refusal
        asked = "in JSON mode" if taken == "json_object" else "without a response_format"
        self.announce(f"the server refused response_format {refused} ({refusal}): asking {asked}, with the "
                      "response schema in the prompt, from now on")

    def drop(self, parameter: str, refusal: str) -> None:
        """The server refused ``parameter`` (``refusal``: its words); later calls leave it out."""
        if parameter in self.dropped:
            return
        self.dropped[parameter] = refusal
        self.announce(f"the server refused {parameter} ({refusal}): sending the calls without it from now on "
                      "(the server's default applies)")

    def cap_completion(self, cap: int, refusal: str) -> None:
        """The model takes at most ``cap`` completion tokens (``refusal``: the server's words); later calls
        ask for no more."""
        if self.completion_cap is not None and self.completion_cap <= cap:
            return
        self.completion_cap, self.cap_refusal = cap, refusal
        self.announce(f"the server allows at most {cap:,} completion tokens ({refusal}): asking for no more "
                      "from now on")

    def rename_max_tokens(self) -> None:
        """The server asked for max_completion_tokens instead of max_tokens; later calls send that."""
        self.max_completion_tokens = True

    def step_for(self, response_format: dict[str, Any]) -> int:
        """The format_ladder step to send a call of ``response_format`` at: 0 (the planned format) until the
        server refused it."""
        if self.response_format is None:
            return 0
        names = [format_name(step) for step in format_ladder(response_format)]
        return names.index(self.response_format) if self.response_format in names else 0

    def step_down_from(self, refused_step: int, response_format: dict[str, Any], refusal: str) -> bool:
        """After the server refused the format of ``refused_step`` (``refusal``: its words): whether to ask
        again, at the next step down, which every later call takes too (a call refused at a step others have
        already left just asks again at the current one). False when the ladder has no step left."""
        ladder = format_ladder(response_format)
        if refused_step < self.step_for(response_format):
            return True
        if refused_step + 1 >= len(ladder):
            return False
        self.step_down(format_name(ladder[refused_step]), format_name(ladder[refused_step + 1]), refusal)
        return True

    def adjusted(self, body: dict[str, Any], response_format: dict[str, Any]) -> AdjustedRequest:
        """A planned chat completions request ``body`` (whose planned format is ``response_format``) as this
        server takes it: without the parameters it refused, no more completion tokens than it allows, under
        the name it wants, at the format step it took (with the schema in the prompt below the plan's)."""
        built = dict(body)
        dropped = frozenset(name for name in self.dropped if built.pop(name, None) is not None)
        if self.max_completion_tokens and "max_tokens" in built:
            built["max_completion_tokens"] = built.pop("max_tokens")
        for name in ("max_tokens", "max_completion_tokens"):
            if self.completion_cap is not None and isinstance(built.get(name), int) \
                    and built[name] > self.completion_cap:
                built[name] = self.completion_cap
        step = self.step_for(response_format)
        if step:
            sent_format = format_ladder(response_format)[step]
            built["messages"] = with_schema_in_prompt(built["messages"], response_format)
            if sent_format is None:
                built.pop("response_format", None)
            else:
                built["response_format"] = sent_format
        return AdjustedRequest(built, step, dropped)

    def to_json(self) -> dict[str, Any]:
        """What the run learned, as a record a later run can take on (see recall)."""
        return {"response_format": self.response_format, "format_refusal": self.format_refusal,
                "dropped": dict(sorted(self.dropped.items())), "completion_cap": self.completion_cap,
                "cap_refusal": self.cap_refusal, "max_completion_tokens": self.max_completion_tokens}

    def recall(self, record: Any) -> list[str]:
        """Take on what an earlier run learned of the same server (``record``: its to_json), as far as this
        run has not learned it already; returns what it took on, by name (nothing for a record that is not
        one). Nothing is announced: the caller says it once."""
        if not isinstance(record, dict):
            return []
        taken = []
        step = record.get("response_format")
        if self.response_format is None and step in ("json_object", "none"):
            self.response_format, self.format_refusal = step, str(record.get("format_refusal") or "")
            taken.append(f"response_format (now {step})")
        dropped = record.get("dropped")
        for name, refusal in (dropped.items() if isinstance(dropped, dict) else ()):
            if name in DROPPABLE_PARAMETERS and name not in self.dropped:
                self.dropped[name] = str(refusal)
                taken.append(name)
        cap = record.get("completion_cap")
        if isinstance(cap, int) and not isinstance(cap, bool) and cap >= MIN_COMPLETION_TOKENS \
                and (self.completion_cap is None or cap < self.completion_cap):
            self.completion_cap, self.cap_refusal = cap, str(record.get("cap_refusal") or "")
            taken.append(f"more than {cap:,} completion tokens")
        if record.get("max_completion_tokens") is True and not self.max_completion_tokens:
            self.max_completion_tokens = True
            taken.append("max_tokens (now max_completion_tokens)")
        return taken

    def notes(self) -> list[str]:
        """What the run's report says about them (nothing when the server took every planned request)."""
        notes = []
        if self.response_format is not None:
            taken = ("asked for JSON mode (response_format json_object)" if self.response_format == "json_object"
                     else "were sent without a response_format")
            notes.append(f"the server refused the planned response_format ({self.format_refusal}), so the calls "
                         f"from then on {taken} with the response schema written into the prompt; every answer was "
                         "still checked against the schema (those that fail it are retried and counted as "
                         "schema_violation); the refused requests, and the schema's tokens in every prompt, are "
                         "spent beyond the plan's estimate")
        if self.dropped:
            refusals = "; ".join(f"{name}: {message}" for name, message in sorted(self.dropped.items()))
            names = ", ".join(sorted(self.dropped))
            notes.append(f"the server refused {counted(len(self.dropped), 'sampling parameter')} of the plan "
                         f"({refusals}), so the calls from then on were sent without {names}: the server's default "
                         "applies, not the task's; the refused requests are counted beyond the plan")
        if self.completion_cap is not None:
            notes.append(f"the server allows at most {self.completion_cap:,} completion tokens ({self.cap_refusal}), "
                         "so the calls that planned more were sent with that many: an answer longer than that is "
                         "truncated (lower generate.per_call if many are)")
        return notes


@dataclass(frozen=True)
class AdjustedRequest:
    """A request body as ServerAdjustments.adjusted makes it, and what it left out of the plan's."""

    body: dict[str, Any]
    format_step: int  # of format_ladder(the planned format): 0 is the planned format itself
    dropped: frozenset[str]  # the sampling parameters taken out


@dataclass(frozen=True)
class Refusal:
    """What an error status refuses of a request that the run can do without, as refusal_of reads it."""

    response_format: bool = False  # the request's response_format (see format_ladder)
    parameter: str | None = None  # a droppable sampling parameter (DROPPABLE_PARAMETERS)
    completion_limit: tuple[int, bool] | None = None  # fewer completion tokens (see completion_limit)
    rename_max_tokens: bool = False  # max_tokens, where the model wants max_completion_tokens

    def __bool__(self) -> bool:
        return bool(self.response_format or self.parameter or self.completion_limit or self.rename_max_tokens)


def refusal_of(status: int, message: str, param: Any = None) -> Refusal:
    """What an error status (``message``: the server's words, ``param``: the parameter its error names, if
    any) refuses of a request: nothing unless it is a 400 or 422 that names a part the run can do without."""
    if status not in (400, 422):
        return Refusal()
    limit = completion_limit(message)
    parameter = None if param == "response_format" else refused_parameter(param, message)
    return Refusal(response_format=parameter is None and refuses_response_format(param, message),
                   parameter=parameter, completion_limit=limit,
                   rename_max_tokens=status == 400 and "max_completion_tokens" in message and limit is None)


def format_ladder(response_format: dict[str, Any]) -> tuple[dict[str, Any] | None, ...]:
    """The response formats to ask a server for, best first, when it refuses one: the planned format, JSON mode
    (for a planned JSON schema), then none (the answer's JSON asked for by the prompt alone). Whatever is sent,
    the answer is checked against the planned format's schema, so a lower step costs retries, never a label
    outside the schema."""
    if response_format.get("type") == "json_schema":
        return response_format, {"type": "json_object"}, None
    return response_format, None


def format_name(response_format: dict[str, Any] | None) -> str:
    """A step of format_ladder by name: its type ("json_schema", "json_object"), or "none"."""
    return "none" if response_format is None else str(response_format.get("type"))


def with_schema_in_prompt(messages: list[dict[str, str]], response_format: dict[str, Any]) -> list[dict[str, str]]:
    """``messages`` with the planned response schema written into the first system message (or a system message
    of its own, first), for a server that is not sent it as response_format: the model must still see it."""
    schema = (response_format.get("json_schema") or {}).get("schema")
    instruction = ("Answer with one JSON object and nothing else (no prose, no code fence)"
                   + (f", valid against this JSON Schema:\n{canonical_json(schema)}" if schema else "."))
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        return [{**first, "content": f"{first.get('content') or ''}\n\n{instruction}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def refuses_response_format(param: Any, message: str) -> bool:
    """Whether an error status refuses the request's response_format (``param``: the parameter its error names,
    or its ``message``)."""
    if param == "response_format":
        return True
    lowered = message.lower()
    return any(word in lowered for word in _FORMAT_REFUSAL_WORDS)


def refused_parameter(param: Any, message: str) -> str | None:
    """The droppable sampling parameter an error status refuses, if it refuses one: the parameter it names
    (``param``: OpenAI's `param`), or the one its message quotes (a FastAPI server's `loc`), with words of a
    refusal."""
    lowered = message.lower()
    if not any(word in lowered for word in _PARAMETER_REFUSAL_WORDS):
        return None
    if param in DROPPABLE_PARAMETERS:
        return str(param)
    for name in DROPPABLE_PARAMETERS:
        if re.search(rf"(?<![\w.-]){name}(?![\w-])", message):  # not a model's name: "seed-oss-36b"
            return name
    return None


def completion_limit(message: str) -> tuple[int, bool] | None:
    """What a refusal of a request's max_tokens says the request may ask for, and whether that holds for the
    model (True: "supports at most 16384 completion tokens", "64000, which is the maximum allowed number of
    output tokens") or for this request only (False: a context length less this request's input tokens, as
    vLLM words it); None when it says neither."""
    model_wide = (re.search(r"at most (\d+) completion tokens", message)
                  or re.search(r"(\d+),? which is the maximum allowed number of output tokens", message))
    if model_wide:
        return int(model_wide.group(1)), True
    context = re.search(r"maximum context length is (\d+) tokens", message)
    given = re.search(r"(\d+) in the messages|request has (\d+) input tokens", message)
    if context and given:
        return int(context.group(1)) - int(given.group(1) or given.group(2)), False
    return None


def server_message(exc: openai.APIStatusError) -> str:
    """The first line of what the server said in an error status: the message of its error, without the
    client's "Error code: 400 - " before it (the caller says the status once), or, for a body the client
    finds no message in (a FastAPI server's {"detail": [...]}, plain text), the body itself, shortened."""
    text = first_line(exc)
    prefix = f"Error code: {exc.status_code}"
    if text.startswith(prefix + " - "):
        return text[len(prefix) + 3:][:300]
    if text != prefix:
        return text[:300]
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message", body.get("error")))
        if isinstance(detail, list):  # FastAPI / pydantic: [{"loc": ["body", "seed"], "msg": "..."}]
            detail = "; ".join(_validation_error(item) for item in detail[:5])
        body = detail if isinstance(detail, str) else json.dumps(detail if detail is not None else body)
    return (squeezed(str(body)) if body is not None else "") or text


def _validation_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc") or () if part != "body")
    return f"{where}: {item.get('msg', '')}".strip(": ") if where else str(item.get("msg", item))
