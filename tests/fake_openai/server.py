"""A fake, OpenAI-compatible HTTP server for tests and benchmarks.

It speaks enough of the OpenAI REST API (chat completions with structured outputs,
files, fine-tuning jobs, batches) for the real ``openai`` client to talk to it, and it
injects latency and faults (429, 500, hangs, connection resets, malformed, truncated or
schema-violating content, and schema-valid but sloppy generated examples: off-target labels,
empty strings, the same examples for every request) at configurable rates. Only the standard library is used: an
asyncio HTTP/1.1 server with keep-alive runs on 127.0.0.1 in a background thread, so one
process holds hundreds of concurrent connections without a thread per connection.
Content is generated from the request alone, so identical requests get identical answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

Responder = Callable[[dict], str | dict]
# Transport faults replace the whole answer; content faults alter a 200 answer.
TRANSPORT_FAULTS = ("rate_limit", "server_error", "timeout", "reset")
CONTENT_FAULTS = ("malformed", "truncated", "schema_violation", "off_target", "empty_strings", "repeats")
# content faults that keep the answer schema-valid and only make generated examples bad
SLOPPY_FAULTS = ("off_target", "empty_strings", "repeats")
FAULT_KINDS = TRANSPORT_FAULTS + CONTENT_FAULTS
MAX_BODY = 256 * 1024 * 1024
MAX_DEPTH = 8  # stops recursive schemas ($ref to itself) from recursing forever

WORDS = [
    "grilled salmon", "butter", "spinach", "rice", "roast chicken", "garlic", "lentils",
    "tomato", "basil", "olive oil", "feta", "quinoa", "avocado", "sourdough", "mushrooms",
    "chickpeas", "lemon", "ginger", "tofu", "brown rice", "sweet potato", "kale", "oats",
    "yogurt", "honey", "almonds", "walnuts", "blueberries", "banana", "apple", "carrots",
    "broccoli", "cauliflower", "zucchini", "eggplant", "bell pepper", "onion", "shallot",
    "parsley", "cilantro", "mint", "thyme", "rosemary", "paprika", "cumin", "black beans",
    "corn tortilla", "cheddar", "parmesan", "mozzarella", "pasta", "couscous", "bulgur",
    "shrimp", "cod", "tuna", "beef stew", "pork belly", "egg noodles", "miso soup",
]  # fmt: skip
FORMATS = {
    "date-time": "2024-05-01T12:00:00Z", "date": "2024-05-01", "time": "12:00:00",
    "email": "chef@example.com", "uri": "https://example.com/recipe", "uuid": str(uuid.UUID(int=0)),
}  # fmt: skip


@dataclass
class Faults:
    """Per-request fault probabilities in [0, 1]. They are drawn in field order from one
    uniform number, so when they add up to more than 1 the earlier kinds win."""

    rate_limit: float = 0.0  # 429 with Retry-After
    server_error: float = 0.0  # 500
    timeout: float = 0.0  # hold the request timeout_seconds, then answer
    reset: float = 0.0  # close the connection with RST, no answer
    malformed: float = 0.0  # 200, content is not JSON
    truncated: float = 0.0  # 200, content cut in half, finish_reason "length"
    schema_violation: float = 0.0  # 200, valid JSON that fails the requested schema
    # A sloppy generator, on answers holding an "examples" list (schema-valid, so only the runtime's checks
    # can catch them):
    off_target: float = 0.0  # every example labeled with a class other than the one the prompt asked for
    empty_strings: float = 0.0  # a string field of every example is "", and a list field gains an "" item
    repeats: float = 0.0  # the same examples whatever the request, so calls repeat each other
    retry_after: float = 0.05  # seconds, sent in Retry-After on 429s
    timeout_seconds: float = 30.0
    control_plane: bool = False  # also fault files / fine-tuning / batch endpoints (transport kinds only)
    refuse_finetuning: bool = False  # creating a fine-tuning job answers 403, as for an organisation without access
    embeddings_down: bool = False  # /v1/embeddings answers 500 to every request
    # A hostile or broken server, on every 200 chat answer (and retry_after_header on every 429):
    answer_model: str | None = None  # the "model" it claims answered, whatever was asked for
    retry_after_header: str | None = None  # sent verbatim as Retry-After and rate-limit reset ("3600", "inf")
    trickle_seconds: float = 0.0  # send the whole reply one byte at a time, this many seconds apart
    padding_bytes: int = 0  # whitespace inside the answer's JSON, making the body this much larger
    gzip: bool = False  # send the body gzip-compressed: with padding_bytes, a gzip bomb
    echo_key: bool = False  # put the request's bearer token in x-request-id, the id, model and free-text content
    usage_json: str | None = None  # sent verbatim as the answer's "usage", e.g. '{"prompt_tokens": 1e999}'

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            if not 0.0 <= getattr(self, kind) <= 1.0:
                raise ValueError(f"Faults.{kind} must be in [0, 1], got {getattr(self, kind)}")

    @property
    def reshapes_answers(self) -> bool:
        return bool(self.answer_model is not None or self.trickle_seconds or self.padding_bytes or self.gzip
                    or self.echo_key or self.usage_json is not None)


class Stats:
    """Counters written by the server thread and readable from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.by_endpoint: dict[str, int] = {}  # "POST /v1/chat/completions" -> count
        self.faults: dict[str, int] = {}  # fault kind -> count; batch lines count as "batch:<kind>"
        self.completions_ok = 0  # /chat/completions answered 200 with no fault injected
        self.in_flight = 0
        self.max_in_flight = 0

    def begin(self, endpoint: str) -> None:
        with self._lock:
            self.total += 1
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_ok(self) -> None:
        with self._lock:
            self.completions_ok += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"total": self.total, "by_endpoint": dict(self.by_endpoint), "faults": dict(self.faults),
                    "completions_ok": self.completions_ok, "in_flight": self.in_flight,
                    "max_in_flight": self.max_in_flight}


# ---------------------------------------------------------------------------- content


class SchemaInstance:
    """Deterministic generator of a JSON value that validates against a JSON Schema."""

    def __init__(self, root: dict, rng: random.Random) -> None:
        self.root, self.rng = root, rng

    def resolve(self, schema: Any) -> dict:
        while isinstance(schema, dict) and "$ref" in schema:
            target: Any = self.root
            for part in schema["$ref"].lstrip("#").split("/"):
                if part:
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            # Keywords next to $ref (description, title...) are kept.
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema if isinstance(schema, dict) else {}

    def value(self, schema: Any, depth: int = 0) -> Any:
        s = self.resolve(schema)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return self.rng.choice(s["enum"])
        for key in ("anyOf", "oneOf"):
            if key in s:
                branches = [self.resolve(b) for b in s[key]]
                if depth >= MAX_DEPTH:  # prefer a branch that ends the recursion
                    branches.sort(key=lambda b: b.get("type") != "null")
                return self.value(branches[0], depth + 1)
        if "allOf" in s:  # merge the parts; properties and required accumulate
            merged: dict = {"properties": {}, "required": []}
            for sub in map(self.resolve, s["allOf"]):
                merged["properties"].update(sub.get("properties", {}))
                merged["required"] += sub.get("required", [])
                merged.update({k: v for k, v in sub.items() if k not in merged})
            return self.value(merged, depth + 1)
        kind = s.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in s else "array" if "items" in s else "string"
        return getattr(self, "_" + kind, self._string)(s, depth)

    def _object(self, s: dict, depth: int) -> dict:
        out = {name: self.value(sub, depth + 1) for name, sub in s.get("properties", {}).items()}
        for name in s.get("required", []):
            out.setdefault(name, self.phrase())
        return out

    def _array(self, s: dict, depth: int) -> list:
        lo = s.get("minItems", 1)
        hi = max(lo, min(s.get("maxItems", lo + 2), lo + 3))
        # Deep inside a recursive schema, the fewest items allowed ends the recursion.
        count = s.get("minItems", 0) if depth >= MAX_DEPTH else self.rng.randint(lo, hi)
        items: list = []
        seen: set = set()
        while len(items) < count:
            for _ in range(20):  # re-draw repeats so that lists of strings look distinct
                item = self.value(s.get("items", {}), depth + 1)
                key = item if isinstance(item, (str, int, float)) else json.dumps(item, sort_keys=True)
                if key not in seen:
                    break
            seen.add(key)
            items.append(item)
        return items

    def _string(self, s: dict, depth: int) -> str:
        if s.get("format") in FORMATS:
            return FORMATS[s["format"]]
        text = self.phrase()
        while len(text) < s.get("minLength", 0):
            text += " " + self.rng.choice(WORDS)
        if "maxLength" in s:
            text = text[: s["maxLength"]]
            if len(text.rstrip()) >= max(1, s.get("minLength", 0)):
                text = text.rstrip()
        return text

    def _integer(self, s: dict, depth: int) -> int:
        lo, hi = self._bounds(s, 1)
        return self.rng.randint(int(lo), int(hi))

    def _number(self, s: dict, depth: int) -> float:
        lo, hi = self._bounds(s, 0.01)
        x = round(self.rng.uniform(lo, hi), 2)
        return x if lo <= x <= hi else (lo + hi) / 2

    def _bounds(self, s: dict, step: float) -> tuple[float, float]:
        lo = s.get("minimum", s["exclusiveMinimum"] + step if "exclusiveMinimum" in s else None)
        hi = s.get("maximum", s["exclusiveMaximum"] - step if "exclusiveMaximum" in s else None)
        lo = lo if lo is not None else (hi - 100 if hi is not None else 0)
        return lo, hi if hi is not None else lo + 100

    def _boolean(self, s: dict, depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, s: dict, depth: int) -> None:
        return None

    def phrase(self) -> str:
        return " ".join(self.rng.sample(WORDS, self.rng.choice((1, 1, 2, 2, 3))))


_WORD_VECTORS: dict[tuple[str, int], list[float]] = {}


def hashed_embedding(text: str, size: int) -> list[float]:
    """The fake's vector of a text: the sum of a fixed pseudo-random vector per lower-cased word, normalised."""
    total = [0.0] * size
    for word in re.findall(r"\w+", text.lower()) or [text]:
        vector = _WORD_VECTORS.get((word, size))
        if vector is None:
            rng = random.Random(hashlib.sha256(word.encode()).digest())
            vector = _WORD_VECTORS[(word, size)] = [rng.gauss(0.0, 1.0) for _ in range(size)]
        total = [a + b for a, b in zip(total, vector, strict=True)]
    norm = math.sqrt(sum(x * x for x in total)) or 1.0
    return [round(x / norm, 6) for x in total]


def _response_schema(body: dict) -> dict | None:
    fmt = body.get("response_format") or {}
    return (fmt.get("json_schema") or {}).get("schema") or {} if fmt.get("type") == "json_schema" else None


def default_content(body: dict, index: int = 0) -> str:
    """The built-in responder: schema-valid JSON, a JSON object, or a line of text.
    It depends only on the request body and the choice index, never on timing."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big") * 1000 + index)
    schema = _response_schema(body)
    if schema is not None:
        return json.dumps(SchemaInstance(schema, rng).value(schema))
    if (body.get("response_format") or {}).get("type") == "json_object":
        return json.dumps({"answer": SchemaInstance({}, rng).phrase()})
    main, *sides = rng.sample(WORDS, 4)
    return f"Try the {main} with {sides[0]}, {sides[1]} and {sides[2]}."


def _example_label_classes(schema: dict | None) -> list[str]:
    """The label enum of a generation schema ({"examples": [{..., "label": enum}]}), or []."""
    try:
        return list(schema["properties"]["examples"]["items"]["properties"]["label"]["enum"])  # type: ignore[index]
    except (KeyError, TypeError):
        return []


def asked_class(body: dict, classes: list[str]) -> str | None:
    """The class a generation prompt asks for: the first class named in quotes in its last user message."""
    users = [m.get("content") for m in body.get("messages", []) if isinstance(m, dict) and m.get("role") == "user"]
    text = users[-1] if users and isinstance(users[-1], str) else ""
    found = [(text.find(f'"{c}"'), c) for c in classes if f'"{c}"' in text]
    return min(found)[1] if found else None


def follow_asked_class(body: dict, content: str) -> str:
    """A compliant generator labels its examples with the class it was asked for (the built-in responder
    draws labels from the schema's enum, which would otherwise be off target half of the time)."""
    classes = _example_label_classes(_response_schema(body))
    target = asked_class(body, classes) if classes else None
    if target is None:
        return content
    data = json.loads(content)
    for example in data.get("examples", []):
        if isinstance(example, dict):
            example["label"] = target
    return json.dumps(data)


def sloppy_examples(kind: str, schema: dict, body: dict, content: str) -> str:
    """A schema-valid answer with bad examples: off-target labels, empty strings, or examples that do not
    depend on the request (so every call repeats the others)."""
    classes = _example_label_classes(schema)
    if not classes:
        return content
    if kind == "repeats":
        content = json.dumps(SchemaInstance(schema, random.Random(0)).value(schema))
        return follow_asked_class(body, content)
    data = json.loads(content)
    examples = [e for e in data.get("examples", []) if isinstance(e, dict)]
    target = asked_class(body, classes)
    fields = schema["properties"]["examples"]["items"]["properties"]
    for example in examples:
        if kind == "off_target":
            others = [c for c in classes if c != target] or classes
            example["label"] = others[0]
            continue
        for name, sub in fields.items():
            kinds = sub.get("type") if isinstance(sub.get("type"), list) else [sub.get("type")]
            if name == "label" or "enum" in sub:
                continue
            if "string" in kinds:
                example[name] = ""
            elif "array" in kinds and isinstance(example.get(name), list):
                example[name] = [*example[name], ""]
    return json.dumps(data)


def violate_schema(schema: dict, content: str) -> str:
    """Valid JSON that a validator for ``schema`` rejects: a required key goes missing
    or, failing that, a value of the wrong type (schemas of only enum/const/oneOf excepted)."""
    try:
        doc = json.loads(content)
    except ValueError:
        doc = None
    s = SchemaInstance(schema, random.Random(0)).resolve(schema)
    if isinstance(doc, dict) and s.get("required"):
        doc.pop(s["required"][0], None)
        return json.dumps(doc)
    declared = s.get("type", "object")
    declared = set(declared) if isinstance(declared, list) else {declared}
    wrong_values: list[tuple[Any, set[str]]] = [([], {"array"}), ({}, {"object"}), ("x", {"string"}),
                                                (0, {"integer", "number"})]
    for wrong, types in wrong_values:
        if not declared & types:
            return json.dumps(wrong)
    return json.dumps(doc)


def echo_token(content: str, schema: dict, token: str) -> str:
    """``content`` with `` <token>`` appended to every free-text string the schema allows it in (no enum,
    const, format or pattern; within maxLength), so the answer stays valid and the token reaches the data."""
    try:
        doc = json.loads(content)
    except ValueError:
        return f"{content} {token}"
    resolve = SchemaInstance(schema, random.Random(0)).resolve

    def walk(value: Any, sub: Any) -> Any:
        s = resolve(sub)
        if isinstance(value, str):
            free = not any(key in s for key in ("enum", "const", "format", "pattern"))
            fits = len(value) + 1 + len(token) <= s.get("maxLength", math.inf)
            return f"{value} {token}" if free and fits else value
        if isinstance(value, list):
            return [walk(item, s.get("items", {})) for item in value]
        if isinstance(value, dict):
            properties = s.get("properties", {})
            return {key: walk(item, properties.get(key, {})) for key, item in value.items()}
        return value

    return json.dumps(walk(doc, schema))


def _gzip_padded(head: bytes, padding: int, tail: bytes) -> bytes:
    """gzip of head + padding spaces + tail, compressed a block at a time (a gigabyte of padding never
    sits in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [packer.compress(head)]
    block = b" " * (1 << 20)
    while padding > 0:
        parts.append(packer.compress(block[:padding]))
        padding -= len(block)
    parts += [packer.compress(tail), packer.flush()]
    return b"".join(parts)


def _message_text(messages: list) -> str:
    parts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return "".join(parts)


# ---------------------------------------------------------------------------- HTTP plumbing


@dataclass
class Request:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-cased names
    body: bytes
    keep_alive: bool = True
    fault: str | None = None  # content fault to apply, chosen by the dispatcher

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    status: int
    body: Any = None  # bytes are sent as is, anything else as JSON
    headers: dict[str, str] | None = None
    reset: bool = False  # close the socket without answering
    trickle: float = 0.0  # seconds between the bytes of the reply (0: all at once)

    def encode(self, keep_alive: bool, request_id: str) -> bytes:
        binary = isinstance(self.body, bytes)
        raw = self.body if binary else json.dumps(self.body).encode()
        head = {"Content-Type": "application/octet-stream" if binary else "application/json",
                "Content-Length": str(len(raw)), "x-request-id": request_id,
                "Connection": "keep-alive" if keep_alive else "close", **(self.headers or {})}
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}"]
        lines += [f"{k}: {v}" for k, v in head.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error"}


class ApiError(Exception):
    """Raised by handlers; becomes an OpenAI-style error response."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 type_: str = "invalid_request_error", headers: dict[str, str] | None = None, *,
                 param: str | None = None, body: dict[str, Any] | None = None) -> None:
        """``body``: the whole error body, for a server whose errors are not OpenAI's shape."""
        super().__init__(message)
        if body is None:
            body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.response = Response(status, body, headers)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed an idle keep-alive connection
    start, *lines = head.decode("latin-1").split("\r\n")
    method, target, version = start.split(" ", 2)
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]  # each chunk ends with CRLF
        await reader.readline()  # the empty trailer
    else:
        length = int(headers.get("content-length", 0))
        if length > MAX_BODY:
            raise ValueError("request body too large")
        body = await reader.readexactly(length) if length else b""
    connection = headers.get("connection", "").lower()
    keep_alive = connection == "keep-alive" or (version == "HTTP/1.1" and connection != "close")
    return Request(method.upper(), target.partition("?")[0], headers, body, keep_alive)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Split multipart/form-data into {field: (filename, bytes)}, by hand so bytes stay exact."""
    header = Message()
    header["content-type"] = content_type
    boundary = str(header.get_param("boundary")).encode()
    parts: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        raw_head, _, data = part[2:].partition(b"\r\n\r\n")
        head = Message()
        for line in raw_head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            head[name.strip()] = value.strip()
        filename = head.get_param("filename", header="content-disposition")
        name = str(head.get_param("name", header="content-disposition"))
        parts[name] = (str(filename) if filename else None, data[:-2])  # drop the CRLF before the boundary
    return parts


# ---------------------------------------------------------------------------- the server

_AUTH = re.compile(r"Bearer\s+\S+", re.IGNORECASE)
_TERMINAL = {"succeeded", "failed", "cancelled", "completed", "expired"}
_DEFAULT_HP = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
_ID = "([^/]+)"
_BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
_BATCH_LINE_FAULTS = ("rate_limit", "server_error") + CONTENT_FAULTS  # a hang or reset means nothing per line


def _now() -> int:
    return int(time.time())


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _listing(items: list[dict]) -> dict:
    items = items[::-1]  # stores keep creation order; the real API lists newest first
    return {"object": "list", "data": items, "has_more": False,
            "first_id": items[0]["id"] if items else None, "last_id": items[-1]["id"] if items else None}


def _lookup(store: dict[str, dict], key: str, what: str) -> dict:
    if key not in store:
        raise ApiError(404, f"No such {what}: {key}", re.sub(r"\W", "_", what) + "_not_found")
    return store[key]


class FakeOpenAI:
    """The fake server. Handlers run on its event-loop thread, one at a time, so the
    in-memory stores need no locks; a custom ``responder`` runs there too and should be fast."""

    def __init__(self, faults: Faults | None = None, latency: float = 0.0, responder: Responder | None = None,
                 seed: int = 0, *, host: str = "127.0.0.1", port: int = 0, finetune_polls_to_finish: int = 3,
                 batch_polls_to_finish: int = 2, record_requests: bool = True) -> None:
        self.faults = faults or Faults()
        self.latency = latency  # seconds added to every authorised request; may change while running
        self.responder = responder
        self.host, self.port = host, port
        self.finetune_polls_to_finish = finetune_polls_to_finish
        self.batch_polls_to_finish = batch_polls_to_finish
        self.record_requests = record_requests  # turn off for long benchmarks to save memory
        self.stats = Stats()
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []  # (method, path, headers, json body)
        self.files: dict[str, dict] = {}
        self.file_data: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.embedded_texts: list[str] = []  # every text /v1/embeddings was asked for, in order
        self._polls: dict[str, int] = {}  # job / batch id -> GETs so far, which drive its status
        self._events: dict[str, list[dict]] = {}
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._request_ids = iter(range(1, 1 << 62))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[asyncio.Task] = set()
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("POST", "/chat/completions", self._chat),
            ("POST", "/embeddings", self._embeddings),
            ("POST", "/files", self._file_create),
            ("GET", "/files", lambda req: _listing(list(self.files.values()))),
            ("GET", f"/files/{_ID}", lambda req, fid: _lookup(self.files, fid, "file")),
            ("DELETE", f"/files/{_ID}", self._file_delete),
            ("GET", f"/files/{_ID}/content", self._file_content),
            ("POST", "/fine_tuning/jobs", self._job_create),
            ("GET", "/fine_tuning/jobs", lambda req: _listing(list(self.jobs.values()))),
            ("GET", f"/fine_tuning/jobs/{_ID}", self._job_get),
            ("GET", f"/fine_tuning/jobs/{_ID}/events", self._job_events),
            ("POST", f"/fine_tuning/jobs/{_ID}/cancel", self._job_cancel),
            ("POST", "/batches", self._batch_create),
            ("GET", "/batches", lambda req: _listing(list(self.batches.values()))),
            ("GET", f"/batches/{_ID}", self._batch_get),
            ("POST", f"/batches/{_ID}/cancel", self._batch_cancel),
        ]
        # (method, regex, handler, stats key such as "GET /v1/files/{id}")
        self._routes = [(verb, re.compile(f"/v1{path}$"), handler, f"{verb} /v1{path.replace(_ID, '{id}')}")
                        for verb, path, handler in routes]

    # ---- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults  # a single attribute swap, so each request sees one consistent Faults

    def start(self) -> FakeOpenAI:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if self._loop is None:
            raise OSError(f"fake OpenAI server could not listen on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(asyncio.start_server(self._connection, self.host, self.port,
                                                                  backlog=2048))
        except OSError:
            loop.close()
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._loop = loop
        ready.set()
        loop.run_forever()
        server.close()  # in Python 3.11 this leaves open connections alone, so end them too
        loop.run_until_complete(self._close_connections())
        loop.close()

    async def _close_connections(self) -> None:
        tasks = list(self._conns)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while (req := await _read_request(reader)) is not None:
                resp = await self._serve(req)
                if resp.reset:
                    # SO_LINGER 0 turns close() into an RST, like a crashed upstream or proxy.
                    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                               struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                data = resp.encode(req.keep_alive, f"req_{next(self._request_ids)}")
                if resp.trickle:
                    for index in range(len(data)):
                        if writer.is_closing():  # the client gave up on us
                            return
                        writer.write(data[index:index + 1])
                        await writer.drain()
                        await asyncio.sleep(resp.trickle)
                else:
                    writer.write(data)
                await writer.drain()
                if not req.keep_alive:
                    break
        except Exception:
            pass  # a dropped or garbled connection just ends; the client sees it closed, nothing is logged
        except asyncio.CancelledError:
            pass  # the server is stopping
        finally:
            self._conns.discard(task)
            writer.close()

    async def _serve(self, req: Request) -> Response:
        handler: Callable[..., Any] | None = None
        ids: tuple[str, ...] = ()
        endpoint = "unknown"
        for method, pattern, func, name in self._routes:
            if method == req.method and (match := pattern.match(req.path)):
                handler, ids, endpoint = func, match.groups(), name
                break
        self.stats.begin(endpoint)
        try:
            if self.record_requests:
                self._record(req)
            return await self._dispatch(req, handler, ids)
        except ApiError as exc:
            return exc.response
        except ValueError as exc:  # includes bad JSON
            return ApiError(400, f"Invalid request: {exc}", "invalid_request").response
        except Exception as exc:  # a broken responder must not take the connection down
            return ApiError(500, f"Unhandled error in the fake: {exc!r}", "fake_bug", "server_error").response
        finally:
            self.stats.end()

    def _record(self, req: Request) -> None:
        headers = dict(req.headers)
        if "authorization" in headers:  # never keep credentials, not even in memory
            headers["authorization"] = "[redacted]"
        try:
            body = req.json() if headers.get("content-type", "").startswith("application/json") else None
        except ValueError:
            body = None
        self.requests.append((req.method, req.path, headers, body))

    async def _dispatch(self, req: Request, handler: Callable[..., Any] | None, ids: tuple) -> Response:
        if handler is None:
            raise ApiError(404, f"Unknown request URL: {req.method} {req.path}.", "unknown_url")
        if not _AUTH.fullmatch(req.headers.get("authorization", "")):
            raise ApiError(401, "You didn't provide an API key. Send 'Authorization: Bearer <key>'.",
                           "invalid_api_key")
        # The answer (or error) is worked out first and sent once the latency is up, so the
        # server's own work is part of the stated latency instead of being added to it: under
        # load that work queues in this one event loop, and a benchmark against "100 ms" would
        # measure the fake as much as the client.
        deadline = time.monotonic() + self.latency
        faults = self.faults
        is_chat = handler == self._chat
        fault = None
        if is_chat or faults.control_plane or handler == self._embeddings:
            fault = self._pick_fault(faults, FAULT_KINDS if is_chat else TRANSPORT_FAULTS)
        if fault == "timeout":
            deadline += faults.timeout_seconds  # then answer normally, far too late
        try:
            if fault == "reset":
                return Response(0, reset=True)
            if fault == "rate_limit":
                headers = {"Retry-After": f"{faults.retry_after:g}", "x-ratelimit-remaining-requests": "0",
                           "x-ratelimit-reset-requests": f"{faults.retry_after * 1000:.0f}ms"}
                if faults.retry_after_header is not None:
                    headers |= {"Retry-After": faults.retry_after_header,
                                "x-ratelimit-reset-requests": faults.retry_after_header}
                raise ApiError(429, "Rate limit reached (fake).", "rate_limit_exceeded", "requests", headers)
            if fault == "server_error":
                raise ApiError(500, "The server had an error (fake).", None, "server_error")
            req.fault = fault if fault in CONTENT_FAULTS else None
            result = handler(req, *ids)
            return result if isinstance(result, Response) else Response(200, result)
        finally:
            if (wait := deadline - time.monotonic()) > 0:
                await asyncio.sleep(wait)

    def _pick_fault(self, faults: Faults, kinds: tuple[str, ...], label: str = "") -> str | None:
        with self._rng_lock:
            draw = self._rng.random()
        threshold = 0.0
        for kind in kinds:
            threshold += getattr(faults, kind)
            if draw < threshold:
                self.stats.count_fault(label + kind)
                return kind
        return None

    # ---- chat completions

    def _chat(self, req: Request) -> dict | Response:
        body = req.json()
        completion = self._completion(body, req.fault)
        if req.fault is None:
            self.stats.count_ok()
        if isinstance(completion, dict) and self.faults.reshapes_answers:
            return self._reshaped(completion, body, req)
        return completion

    def _reshaped(self, completion: dict, body: dict, req: Request) -> Response:
        """A 200 answer as a hostile or broken server sends it (see the last fields of Faults)."""
        faults = self.faults
        headers: dict[str, str] = {"Content-Type": "application/json"}
        if faults.answer_model is not None:
            completion["model"] = faults.answer_model
        if faults.echo_key:
            token = re.sub(r"^Bearer\s+", "", req.headers.get("authorization", ""), flags=re.IGNORECASE)
            headers["x-request-id"] = f"req_{token}"
            completion.update(id=f"chatcmpl-{token}", model=f"{completion['model']}-{token}",
                              system_fingerprint=token)
            schema = _response_schema(body) or {}
            for choice in completion["choices"]:
                choice["message"]["content"] = echo_token(choice["message"]["content"], schema, token)
        if faults.usage_json is not None:
            completion["usage"] = "__usage__"
        text = json.dumps(completion)
        if faults.usage_json is not None:
            text = text.replace('"__usage__"', faults.usage_json)
        head, tail = text[:-1].encode(), text[-1:].encode()  # padding goes before the closing brace
        if faults.gzip:
            headers["Content-Encoding"] = "gzip"
            data = _gzip_padded(head, faults.padding_bytes, tail)
        else:
            data = head + b" " * faults.padding_bytes + tail
        return Response(200, data, headers, trickle=faults.trickle_seconds)

    def _content(self, body: dict, index: int) -> str:
        if self.responder is None:
            return follow_asked_class(body, default_content(body, index))
        out = self.responder(body)
        return out if isinstance(out, str) else json.dumps(out)

    def _completion(self, body: Any, fault: str | None) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            raise ApiError(400, "'model' and 'messages' are required.", "missing_parameter")
        schema = _response_schema(body)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        choices: list[dict[str, Any]] = []
        for index in range(int(body.get("n") or 1)):
            content, finish = self._content(body, index), "stop"
            if limit and len(content) > 4 * limit:  # ~4 characters per token
                content, finish = content[: 4 * limit], "length"
            if fault == "malformed":
                content = "Sure! Here is the JSON you asked for: " + content[: len(content) // 2]
            elif fault == "truncated":
                content, finish = content[: max(1, len(content) // 2)], "length"
            elif fault == "schema_violation" and schema is not None:
                content = violate_schema(schema, content)
            elif fault in SLOPPY_FAULTS and schema is not None:
                content = sloppy_examples(fault, schema, body, content)
            choices.append({"index": index, "finish_reason": finish, "logprobs": None, "message": {
                "role": "assistant", "content": content, "refusal": None, "annotations": []}})
        prompt_tokens = max(1, len(_message_text(body["messages"])) // 4)
        completion_tokens = max(1, sum(len(c["message"]["content"]) for c in choices) // 4)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        return {"id": _new_id("chatcmpl-"), "object": "chat.completion", "created": _now(),
                "model": body["model"], "choices": choices, "usage": usage,
                "system_fingerprint": "fp_fake", "service_tier": "default"}

    # ---- embeddings

    def _embeddings(self, req: Request) -> dict:
        """Deterministic vectors: a hashed bag of the input's words (similar texts get similar vectors, so a
        head trained on them can learn), L2-normalised, `dimensions` long (default 64)."""
        return self._embedded(req.json())

    def _embedded(self, body: Any) -> dict:
        """The answer to one embeddings request body (online, or a line of a batch)."""
        if self.faults.embeddings_down:
            raise ApiError(500, "The embeddings server had an error (fake).", None, "server_error")
        if not isinstance(body, dict) or not body.get("model") or "input" not in body:
            raise ApiError(400, "'model' and 'input' are required.", "missing_parameter")
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if not texts or len(texts) > 2048 or not all(isinstance(t, str) and t for t in texts):
            raise ApiError(400, "'input' must be a non-empty string or an array of 1 to 2048 non-empty strings.",
                           "invalid_input")
        size = int(body.get("dimensions") or 64)
        data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(text, size)}
                for i, text in enumerate(texts)]
        tokens = sum(max(1, len(t) // 4) for t in texts)
        self.stats.count_ok()
        self.embedded_texts.extend(texts)
        return {"object": "list", "data": data, "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    # ---- files

    def _store_file(self, filename: str, data: bytes, purpose: str) -> dict:
        file_id = _new_id("file-")
        self.file_data[file_id] = data
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(data), "created_at": _now(),
                               "filename": filename, "purpose": purpose, "status": "processed",
                               "expires_at": None, "status_details": None}
        return self.files[file_id]

    def _file_create(self, req: Request) -> dict:
        content_type = req.headers.get("content-type", "")
        multipart = content_type.startswith("multipart/form-data")
        parts = parse_multipart(content_type, req.body) if multipart else {}
        if "file" not in parts or "purpose" not in parts:
            raise ApiError(400, "Send multipart/form-data with 'file' and 'purpose'.", "missing_parameter")
        filename, data = parts["file"]
        return self._store_file(filename or "upload", data, parts["purpose"][1].decode())

    def _file_content(self, req: Request, file_id: str) -> bytes:
        return self.file_data[_lookup(self.files, file_id, "file")["id"]]

    def _file_delete(self, req: Request, file_id: str) -> dict:
        _lookup(self.files, file_id, "file")
        del self.files[file_id], self.file_data[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    # ---- fine-tuning: status advances one step per GET of the job

    def _job_create(self, req: Request) -> dict:
        if self.faults.refuse_finetuning:
            raise ApiError(403, "Fine-tuning is not available for your organization. The fine-tuning platform is "
                                "no longer open to new users.", "finetuning_not_available")
        body = req.json() or {}
        for key in ("training_file", "validation_file"):
            if (key == "training_file" or body.get(key)) and body.get(key) not in self.files:
                raise ApiError(400, f"{key} {body.get(key)!r} does not exist.", f"invalid_{key}")
        if not body.get("model"):
            raise ApiError(400, "'model' is required.", "missing_parameter")
        method = body.get("method") or {"type": "supervised",
                                        "supervised": {"hyperparameters": body.get("hyperparameters") or {}}}
        hp = body.get("hyperparameters") or (method.get(method["type"]) or {}).get("hyperparameters") or {}
        unset = ("error", "fine_tuned_model", "finished_at", "trained_tokens", "estimated_finish")
        job = {**dict.fromkeys(unset), "id": _new_id("ftjob-"), "object": "fine_tuning.job",
               "created_at": _now(), "model": body["model"],
               "hyperparameters": {k: hp.get(k, "auto") for k in _DEFAULT_HP}, "method": method,
               "organization_id": "org-fake", "result_files": [], "seed": body.get("seed", 42),
               "status": "validating_files", "training_file": body["training_file"],
               "validation_file": body.get("validation_file"), "integrations": [],
               "metadata": body.get("metadata"), "user_provided_suffix": body.get("suffix")}
        self.jobs[job["id"]], self._polls[job["id"]], self._events[job["id"]] = job, 0, []
        self._job_event(job, "Validating training file: " + job["training_file"])
        return job

    def _job_event(self, job: dict, message: str) -> None:
        self._events[job["id"]].append({"id": _new_id("ftevent-"), "object": "fine_tuning.job.event",
                                        "created_at": _now(), "level": "info", "message": message,
                                        "data": {}, "type": "message"})

    def _job_get(self, req: Request, job_id: str) -> dict:
        job = _lookup(self.jobs, job_id, "fine-tuning job")
        if job["status"] not in _TERMINAL:
            polls = self._polls[job_id] = self._polls[job_id] + 1
            done = polls >= self.finetune_polls_to_finish
            status = "succeeded" if done else "queued" if polls == 1 else "running"
            if status != job["status"]:
                self._advance_job(job, status)
        return job

    def _advance_job(self, job: dict, status: str) -> None:
        job["status"] = status
        if status == "queued":
            return self._job_event(job, "Files validated, moving job to queued state")
        # The real API replaces "auto" hyperparameters with concrete values once training starts.
        job["hyperparameters"] = {k: _DEFAULT_HP[k] if v == "auto" else v
                                  for k, v in job["hyperparameters"].items()}
        if status == "running":
            return self._job_event(job, "Fine-tuning job started")
        tokens = max(1, len(self.file_data.get(job["training_file"], b"")) // 4)
        metrics = self._store_file("step_metrics.csv", b"step,train_loss\n1,1.25\n2,0.73\n3,0.41\n",
                                   "fine-tune-results")
        job.update(fine_tuned_model=f"ft:{job['model']}:fake:{job['user_provided_suffix'] or ''}:{job['id']}",
                   finished_at=_now(), trained_tokens=tokens * int(job["hyperparameters"]["n_epochs"]),
                   result_files=[metrics["id"]])
        self._job_event(job, "The job has successfully completed")

    def _job_events(self, req: Request, job_id: str) -> dict:
        _lookup(self.jobs, job_id, "fine-tuning job")
        return _listing(self._events[job_id])

    def _job_cancel(self, req: Request, job_id: str) -> dict:
        job = _lookup(self.jobs, job_id, "fine-tuning job")
        if job["status"] in _TERMINAL:
            raise ApiError(400, f"Job has already {job['status']}.", "invalid_state")
        job["status"] = "cancelled"
        self._job_event(job, "Fine-tuning job cancelled")
        return job

    # ---- batches: validating -> in_progress -> completed, one step per GET of the batch

    def _batch_create(self, req: Request) -> dict:
        body = req.json() or {}
        if body.get("input_file_id") not in self.files:
            raise ApiError(400, f"No such input_file_id: {body.get('input_file_id')!r}.", "invalid_batch")
        if body.get("endpoint") not in _BATCH_ENDPOINTS or body.get("completion_window") != "24h":
            raise ApiError(400, "Only endpoints /v1/chat/completions and /v1/embeddings, window 24h are faked.",
                           "invalid_batch")
        lines = [line for line in self.file_data[body["input_file_id"]].splitlines() if line.strip()]
        unset = ("errors", "output_file_id", "error_file_id", "in_progress_at", "finalizing_at",
                 "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at")
        batch = {**dict.fromkeys(unset), "id": _new_id("batch_"), "object": "batch",
                 "endpoint": body["endpoint"], "input_file_id": body["input_file_id"],
                 "completion_window": "24h", "status": "validating", "created_at": _now(),
                 "expires_at": _now() + 86400, "metadata": body.get("metadata"),
                 "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        self.batches[batch["id"]], self._polls[batch["id"]] = batch, 0
        return batch

    def _batch_get(self, req: Request, batch_id: str) -> dict:
        batch = _lookup(self.batches, batch_id, "batch")
        if batch["status"] == "cancelling":
            batch.update(status="cancelled", cancelled_at=_now())
        elif batch["status"] not in _TERMINAL:
            polls = self._polls[batch_id] = self._polls[batch_id] + 1
            if polls >= self.batch_polls_to_finish:
                self._finish_batch(batch)
            else:
                batch.update(status="in_progress", in_progress_at=batch["in_progress_at"] or _now())
        return batch

    def _finish_batch(self, batch: dict) -> None:
        """Answer every input line with the responder; lines get their own faults."""
        ok, failed = [], []
        for line in filter(bytes.strip, self.file_data[batch["input_file_id"]].splitlines()):
            entry: dict[str, Any] = {"id": _new_id("batch_req_"), "custom_id": None, "response": None,
                                     "error": None}
            request_id = f"req_{next(self._request_ids)}"
            try:
                item = json.loads(line)
                entry["custom_id"] = item["custom_id"]
                fault = self._pick_fault(self.faults, _BATCH_LINE_FAULTS, "batch:")
                if fault in ("rate_limit", "server_error"):
                    raise ApiError(429 if fault == "rate_limit" else 500, f"Injected {fault} (fake).")
                if item.get("url") != batch["endpoint"]:
                    raise ApiError(400, f"The line's url {item.get('url')!r} is not the batch's endpoint.")
                answer = (self._embedded(item["body"]) if batch["endpoint"] == "/v1/embeddings" else
                          self._completion(item["body"], fault))
                entry["response"] = {"status_code": 200, "request_id": request_id, "body": answer}
                ok.append(entry)
            except ApiError as exc:
                resp = exc.response
                entry["response"] = {"status_code": resp.status, "request_id": request_id, "body": resp.body}
                failed.append(entry)
            except (ValueError, KeyError, TypeError) as exc:
                entry["error"] = {"code": "invalid_request", "message": f"Bad batch line: {exc!r}"}
                failed.append(entry)
        for key, entries, kind in (("output_file_id", ok, "output"), ("error_file_id", failed, "error")):
            if entries:
                data = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
                batch[key] = self._store_file(f"{batch['id']}_{kind}.jsonl", data, "batch_output")["id"]
        now = _now()
        counts = {"total": len(ok) + len(failed), "completed": len(ok), "failed": len(failed)}
        batch.update(status="completed", in_progress_at=batch["in_progress_at"] or now, finalizing_at=now,
                     completed_at=now, request_counts=counts)

    def _batch_cancel(self, req: Request, batch_id: str) -> dict:
        batch = _lookup(self.batches, batch_id, "batch")
        if batch["status"] in _TERMINAL:
            raise ApiError(400, f"Cannot cancel a batch that is {batch['status']}.", "invalid_state")
        batch.update(status="cancelling", cancelling_at=_now())
        return batch
