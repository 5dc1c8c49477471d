"""Tests for the fake OpenAI server in tests/fake_openai, driven by the real openai client.

The fake stands in for the OpenAI API in the rest of the suite and in bench/, so these
tests pin down what it promises: schema-valid structured output, determinism, every
injected fault kind, the files / fine-tuning / batch lifecycles and concurrency.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1]))

import jsonschema  # noqa: E402
import openai  # noqa: E402
import pytest  # noqa: E402
from fake_openai import FakeOpenAI, Faults, default_content, violate_schema  # noqa: E402
from pydantic import BaseModel  # noqa: E402

MENU_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "courses", "servings", "price", "vegetarian", "cuisine", "notes", "version"],
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "courses": {"type": "array", "minItems": 2, "maxItems": 4, "items": {"$ref": "#/$defs/course"}},
        "servings": {"type": "integer", "minimum": 1, "maximum": 8},
        "price": {"type": "number", "minimum": 5, "maximum": 50},
        "vegetarian": {"type": "boolean"},
        "cuisine": {"enum": ["italian", "thai", "mexican"]},
        "notes": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "version": {"const": 2},
    },
    "$defs": {
        "course": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "ingredients"],
            "properties": {
                "name": {"type": "string", "minLength": 3},
                "ingredients": {"type": "array", "minItems": 3, "maxItems": 6, "items": {"type": "string"}},
            },
        }
    },
}


class Ingredient(BaseModel):
    name: str
    grams: int | None


class Recipe(BaseModel):
    title: str
    ingredients: list[Ingredient]
    vegetarian: bool


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def make_client(server: FakeOpenAI, max_retries: int = 0, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=max_retries, **kwargs)


def menu_request(content: str = "Plan a dinner", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-fake", "messages": [{"role": "user", "content": content}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "menu", "schema": MENU_SCHEMA, "strict": True}},
            **extra}


def ask(client: openai.OpenAI, content: str = "Plan a dinner", **extra: Any) -> Any:
    return client.chat.completions.create(**menu_request(content, **extra))


# ---------------------------------------------------------------- chat completions


def test_structured_output_validates_against_requested_schema(server: FakeOpenAI) -> None:
    raw = make_client(server).chat.completions.with_raw_response.create(**menu_request(n=3))
    completion = raw.parse()
    assert raw.headers["x-request-id"].startswith("req_")
    assert completion.object == "chat.completion" and completion.model == "gpt-fake"
    assert len(completion.choices) == 3
    for choice in completion.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), MENU_SCHEMA)
    usage = completion.usage
    assert usage.prompt_tokens >= 1 and usage.completion_tokens > 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert server.stats.completions_ok == 1


def test_parse_with_pydantic_model(server: FakeOpenAI) -> None:
    parsed = make_client(server).chat.completions.parse(
        model="gpt-fake", messages=[{"role": "user", "content": "a recipe"}], response_format=Recipe
    ).choices[0].message.parsed
    assert isinstance(parsed, Recipe) and parsed.ingredients


def test_content_is_deterministic_per_request(server: FakeOpenAI) -> None:
    client = make_client(server)
    first = ask(client).choices[0].message.content
    assert ask(client).choices[0].message.content == first
    assert ask(client, "Plan a lunch").choices[0].message.content != first
    assert ask(client, seed=7).choices[0].message.content != first
    # A fresh server gives the same answer: content depends on the request only.
    with FakeOpenAI(seed=99) as other:
        assert ask(make_client(other)).choices[0].message.content == first


def test_food_words_and_distinct_string_items(server: FakeOpenAI) -> None:
    for i in range(5):
        menu = json.loads(ask(make_client(server), f"dinner {i}").choices[0].message.content)
        for course in menu["courses"]:
            assert len(set(course["ingredients"])) == len(course["ingredients"])
    text = make_client(server).chat.completions.create(
        model="gpt-fake", messages=[{"role": "user", "content": "hello"}]).choices[0].message.content
    assert text.startswith("Try the ") and not text.startswith("{")


GENERATOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "enum": {"enum": ["a", "b"]},
    "const": {"const": 7},
    "string_bounds": {"type": "string", "minLength": 30, "maxLength": 32},
    "tiny_string": {"type": "string", "maxLength": 3},
    "integer_bounds": {"type": "integer", "minimum": 5, "maximum": 6},
    "only_maximum": {"type": "integer", "maximum": -500},
    "exclusive_number": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "unique_array": {"type": "array", "items": {"type": "string"}, "minItems": 6, "maxItems": 6,
                     "uniqueItems": True},
    "nullable": {"type": ["null", "string"]},
    "one_of": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
    "all_of": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                         {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
    "untyped_object": {"properties": {"x": {"type": "boolean"}}, "required": ["x"]},
    "formats": {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}},
    "recursive": {"$ref": "#/$defs/node", "$defs": {"node": {
        "type": "object", "additionalProperties": False, "required": ["name", "children"],
        "properties": {"name": {"type": "string"},
                       "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}},
    "recursive_nullable": {"$ref": "#/$defs/list", "$defs": {"list": {
        "type": "object", "required": ["head", "tail"],
        "properties": {"head": {"type": "integer"},
                       "tail": {"anyOf": [{"$ref": "#/$defs/list"}, {"type": "null"}]}}}}},
}


@pytest.mark.parametrize("name", sorted(GENERATOR_SCHEMAS))
def test_generator_and_violation_per_schema_kind(name: str) -> None:
    schema = GENERATOR_SCHEMAS[name]
    for seed in range(5):
        body = menu_request(f"case {seed}")
        body["response_format"]["json_schema"]["schema"] = schema
        content = default_content(body)
        jsonschema.validate(json.loads(content), schema)
        if name not in ("enum", "const", "one_of"):  # no generic wrong value for these
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(json.loads(violate_schema(schema, content)), schema)


def test_custom_responder_overrides_content() -> None:
    seen: list[dict] = []

    def responder(body: dict) -> dict:
        seen.append(body)
        return {"echo": body["messages"][-1]["content"]}

    with FakeOpenAI(responder=responder) as fake:
        content = ask(make_client(fake), "ping").choices[0].message.content
    assert json.loads(content) == {"echo": "ping"} and seen[0]["model"] == "gpt-fake"


def test_missing_or_malformed_key_gets_401(server: FakeOpenAI) -> None:
    client = make_client(server)
    for header in (openai.Omit(), "Basic abc", "Bearer"):
        with pytest.raises(openai.AuthenticationError) as info:
            ask(client, extra_headers={"Authorization": header})
        assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"


def test_unknown_route_gets_openai_style_404(server: FakeOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        make_client(server).models.list()
    assert info.value.body == {"message": "Unknown request URL: GET /v1/models.",
                               "type": "invalid_request_error", "param": None, "code": "unknown_url"}


def test_requests_are_recorded_without_credentials(server: FakeOpenAI) -> None:
    ask(make_client(server))
    method, path, headers, body = server.requests[-1]
    assert (method, path, body["model"]) == ("POST", "/v1/chat/completions", "gpt-fake")
    assert headers["authorization"] == "[redacted]" and "sk-test" not in repr(server.requests)


# ---------------------------------------------------------------- faults


def only(kind: str, **extra: Any) -> Faults:
    return Faults(**{kind: 1.0}, **extra)


def test_rate_limit_fault_sends_retry_after() -> None:
    with FakeOpenAI(faults=only("rate_limit", retry_after=0.02)) as fake:
        with pytest.raises(openai.RateLimitError) as info:
            ask(make_client(fake))
        headers = info.value.response.headers
        assert headers["retry-after"] == "0.02" and headers["x-ratelimit-reset-requests"] == "20ms"
        # The client honours Retry-After and retries; every attempt is counted.
        with pytest.raises(openai.RateLimitError):
            ask(make_client(fake, max_retries=2))
        assert fake.stats.faults == {"rate_limit": 4} and fake.stats.completions_ok == 0


def test_server_error_fault() -> None:
    with FakeOpenAI(faults=only("server_error")) as fake, pytest.raises(openai.InternalServerError):
        ask(make_client(fake))


def test_timeout_fault_trips_client_timeout() -> None:
    with FakeOpenAI(faults=only("timeout", timeout_seconds=2.0)) as fake:
        with pytest.raises(openai.APITimeoutError):
            ask(make_client(fake, timeout=0.3))
        assert fake.stats.faults == {"timeout": 1}


def test_reset_fault_is_a_connection_error() -> None:
    with FakeOpenAI(faults=only("reset")) as fake:
        with pytest.raises(openai.APIConnectionError) as info:
            ask(make_client(fake))
        assert not isinstance(info.value, openai.APITimeoutError)


def test_malformed_fault_returns_non_json() -> None:
    with FakeOpenAI(faults=only("malformed")) as fake:
        completion = ask(make_client(fake))
    assert completion.choices[0].finish_reason == "stop"
    with pytest.raises(json.JSONDecodeError):
        json.loads(completion.choices[0].message.content)


def test_truncated_fault_cuts_content_with_length_finish() -> None:
    with FakeOpenAI(faults=only("truncated")) as fake:
        client = make_client(fake)
        completion = ask(client)
        assert completion.choices[0].finish_reason == "length"
        with pytest.raises(json.JSONDecodeError):
            json.loads(completion.choices[0].message.content)
        with pytest.raises(openai.LengthFinishReasonError):
            client.chat.completions.parse(model="m", messages=[{"role": "user", "content": "x"}],
                                          response_format=Recipe)


def test_schema_violation_fault_is_valid_json_failing_the_schema() -> None:
    with FakeOpenAI(faults=only("schema_violation")) as fake:
        document = json.loads(ask(make_client(fake)).choices[0].message.content)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, MENU_SCHEMA)


def test_faults_and_latency_change_while_running(server: FakeOpenAI) -> None:
    client = make_client(server)
    ask(client)
    server.set_faults(only("server_error"))
    with pytest.raises(openai.InternalServerError):
        ask(client)
    server.set_faults(Faults())
    server.latency = 0.05
    started = time.monotonic()
    ask(client)
    assert time.monotonic() - started >= 0.05  # the new latency applies to the next request
    assert server.stats.snapshot()["completions_ok"] == 2


def test_control_plane_is_only_faulted_on_request() -> None:
    with FakeOpenAI(faults=only("server_error")) as fake:
        client = make_client(fake)
        client.files.list()  # control endpoints are spared by default
        fake.set_faults(only("server_error", control_plane=True))
        with pytest.raises(openai.InternalServerError):
            client.files.list()


# ---------------------------------------------------------------- files, fine-tuning, batches


def upload(client: openai.OpenAI, lines: list[dict], purpose: str) -> Any:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return client.files.create(file=("data.jsonl", io.BytesIO(data)), purpose=purpose)


def test_files_and_fine_tuning_lifecycle(server: FakeOpenAI) -> None:
    client = make_client(server)
    example = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "rice"}]}
    training = upload(client, [example] * 20, "fine-tune")
    assert client.files.retrieve(training.id).filename == "data.jsonl"
    assert client.files.content(training.id).content == (json.dumps(example) + "\n").encode() * 20
    assert training.id in [f.id for f in client.files.list()]

    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="gpt-fake", training_file="file-missing")
    job = client.fine_tuning.jobs.create(model="gpt-fake", training_file=training.id, suffix="menu",
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 2}}})
    assert job.status == "validating_files"
    statuses = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(4)]
    assert statuses == ["queued", "running", "succeeded", "succeeded"]
    assert server.stats.by_endpoint["GET /v1/fine_tuning/jobs/{id}"] == 4
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model == f"ft:gpt-fake:fake:menu:{job.id}"
    assert done.trained_tokens and done.trained_tokens > 0 and done.hyperparameters.n_epochs == 2
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id)]
    assert events[0] == "The job has successfully completed"
    assert job.id in [j.id for j in client.fine_tuning.jobs.list()]
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)

    other = client.fine_tuning.jobs.create(model="gpt-fake", training_file=training.id)
    assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"


def test_batch_lifecycle_produces_output_file(server: FakeOpenAI) -> None:
    client = make_client(server)
    lines = [{"custom_id": f"menu-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": menu_request(f"dinner {i}")} for i in range(3)]
    batch = client.batches.create(input_file_id=upload(client, lines, "batch").id,
                                  endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "validating"
    assert client.batches.retrieve(batch.id).status == "in_progress"
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.error_file_id is None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert [o["custom_id"] for o in output] == ["menu-0", "menu-1", "menu-2"]
    for line, result in zip(lines, output, strict=True):
        assert result["error"] is None and result["response"]["status_code"] == 200
        content = result["response"]["body"]["choices"][0]["message"]["content"]
        jsonschema.validate(json.loads(content), MENU_SCHEMA)
        # The same body sent directly gets the same content.
        assert client.chat.completions.create(**line["body"]).choices[0].message.content == content
    assert batch.id in [b.id for b in client.batches.list()]


def test_batch_lines_get_content_faults_and_cancel_works() -> None:
    with FakeOpenAI(faults=only("malformed"), batch_polls_to_finish=1) as fake:
        client = make_client(fake)
        file_id = upload(client, [{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                                   "body": menu_request()}], "batch").id
        batch = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        done = client.batches.retrieve(batch.id)
        line = json.loads(client.files.content(done.output_file_id).text)
        with pytest.raises(json.JSONDecodeError):
            json.loads(line["response"]["body"]["choices"][0]["message"]["content"])
        assert fake.stats.faults == {"batch:malformed": 1}

        other = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        assert client.batches.cancel(other.id).status == "cancelling"
        assert client.batches.retrieve(other.id).status == "cancelled"


# ---------------------------------------------------------------- concurrency and transport


def test_concurrent_requests_overlap() -> None:
    # The openai client spends ~5 ms of CPU per request, so issuing 64 takes ~0.3 s (more on a
    # busy CI machine); a 1 s hold keeps this about the server's concurrency, not client speed.
    with FakeOpenAI(latency=1.0) as fake:
        client = make_client(fake)
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=64) as pool:
            results = list(pool.map(lambda i: ask(client, f"dinner {i}"), range(64)))
        assert len(results) == 64 and time.monotonic() - start < 64 * 1.0 / 4
        assert fake.stats.max_in_flight >= 32 and fake.stats.completions_ok == 64


def test_256_keep_alive_connections() -> None:
    async def exchange(port: int) -> list[bytes]:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(256)]
        body = json.dumps(menu_request()).encode()
        request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        statuses = []
        for _ in range(2):  # the second round reuses every connection
            for _, writer in conns:
                writer.write(request)
            for reader, _ in conns:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                statuses.append(head.split(b"\r\n")[0])
        for _, writer in conns:
            writer.close()
        return statuses

    with FakeOpenAI(latency=0.2) as fake:
        statuses = asyncio.run(exchange(fake.port))
        assert statuses == [b"HTTP/1.1 200 OK"] * 512 and fake.stats.max_in_flight > 128


def test_chunked_request_body(server: FakeOpenAI) -> None:
    body = json.dumps(menu_request()).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=iter([body[:10], body[10:]]), encode_chunked=True,
                 headers={"Authorization": "Bearer k", "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    content = json.loads(response.read())["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content), MENU_SCHEMA)
    conn.close()


def test_command_line_server() -> None:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parents[1] / "fake_openai"), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert json.loads(out)["completions_ok"] == 1
    assert err == ""  # no request logs on stderr
