"""`taskc lsp` driven as an editor drives it: a subprocess spoken to in JSON-RPC over stdio.

The client below is ours (Content-Length framing, a reader thread), so these tests see exactly the bytes an
editor sees. They need the optional dependency: without `taskc-compiler[lsp]` the module is skipped, and the pure
helpers are still tested by tests/compiler/test_lsp_support.py.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from spec_edits import edit

pytest.importorskip("pygls")

TIMEOUT = 30.0

TASK = """\
taskc: 1
task:
  name: tiny-keto
  description: Is this dish keto?
input:
  dish: {type: string, description: The dish name, max_length: 80}
  ingredients: {type: "list[string]", description: Ingredients in lowercase}
classes:
  keto: {description: Very low in net carbs}
  not_keto: {description: Too much sugar or starch}
lexicons:
  high_carb: [rice, pasta, bread, potato]
  sweet: [sugar, honey, crème brûlée]
rationales:
  - id: starch
    class: not_keto
    text: Rice, pasta, bread and potatoes are starch.
    rule: any(ingredients, i -> mentions(i, lexicon.high_carb) or mentions(i, lexicon.sweet))
  - id: no_starch
    class: keto
    text: Meat, fish, eggs and vegetables without starch are keto.
    rule: not any(ingredients, i -> mentions(i, ["🍚 riz", "crème"]) or mentions(i, lexicon.high_carb))
generate:
  model: gpt-4o-mini
  per_rationale: 20
  per_call: 10
finetune:
  provider: local
"""
BROKEN_LINE = '    rule: not any(ingredients, i -> mentions(i, ["🍚 riz", "crème"]) or mentions(i, lexicon.high_crab))'
FIXED_LINE = '    rule: not any(ingredients, i -> mentions(i, ["🍚 riz", "crème"]) or mentions(i, lexicon.high_carb))'


class LspClient:
    """A minimal LSP client: requests wait for their response, notifications are queued for the tests."""

    def __init__(self, cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, "-m", "taskc", "lsp"], cwd=cwd, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.responses: dict[int, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            headers: dict[str, str] = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            if not line:
                return
            self.messages.put(json.loads(stream.read(int(headers["content-length"])).decode("utf-8")))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        request_id = self.next_id
        self.send({"id": request_id, "method": method, "params": params})
        message = self._wait(lambda m: m.get("id") == request_id and "method" not in m)
        assert "error" not in message, message
        return message["result"]

    def diagnostics(self, uri: str, version: int) -> list[dict[str, Any]]:
        """The diagnostics published for ``uri`` at ``version`` (earlier publications are skipped)."""
        message = self._wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                             and m["params"]["uri"] == uri and m["params"].get("version") == version)
        return list(message["params"]["diagnostics"])

    def _wait(self, wanted: Any) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        for message in self.notifications:
            if wanted(message):
                self.notifications.remove(message)
                return message
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if wanted(message):
                return message
            if "id" in message and "method" in message:  # a request from the server: answer it
                self.send({"id": message["id"], "result": None})
            else:
                self.notifications.append(message)
        raise AssertionError(f"no such message within {TIMEOUT} s; stderr: {self._stderr()}")

    def _stderr(self) -> str:
        if self.process.poll() is None:
            return "(server still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read().decode("utf-8", "replace")

    def close(self) -> int:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            return self.process.wait(timeout=TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


@pytest.fixture()
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.task.yaml"
    path.write_text(TASK, encoding="utf-8")
    return path


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[LspClient]:
    lsp = LspClient(tmp_path)
    result = lsp.request("initialize", {"processId": os.getpid(), "rootUri": tmp_path.as_uri(), "capabilities": {}})
    assert result["serverInfo"]["name"] == "taskc"
    assert result["capabilities"]["completionProvider"]["triggerCharacters"]
    lsp.notify("initialized", {})
    yield lsp
    assert lsp.close() == 0


def _open(client: LspClient, path: Path, text: str, version: int = 1) -> str:
    uri = path.as_uri()
    client.notify("textDocument/didOpen",
                  {"textDocument": {"uri": uri, "languageId": "yaml", "version": version, "text": text}})
    return uri


def _position(text: str, needle: str, offset: int = 0) -> dict[str, int]:
    """The LSP position (UTF-16 columns) of ``needle`` in ``text`` plus ``offset`` characters."""
    for number, line in enumerate(text.split("\n")):
        if needle in line:
            before = line[: line.index(needle) + offset]
            return {"line": number, "character": len(before.encode("utf-16-le")) // 2}
    raise AssertionError(needle)


def test_diagnostics_follow_the_unsaved_buffer(client: LspClient, task_file: Path) -> None:
    broken = edit(TASK, FIXED_LINE, BROKEN_LINE)
    uri = _open(client, task_file, broken)  # the file on disk is fine: what counts is the buffer
    [diagnostic] = client.diagnostics(uri, 1)
    line = broken.split("\n").index(BROKEN_LINE)
    prefix = BROKEN_LINE[: BROKEN_LINE.index("lexicon.high_crab")]
    assert diagnostic["code"] == "E022" and diagnostic["source"] == "taskc" and diagnostic["severity"] == 1
    assert diagnostic["message"].startswith("unknown lexicon 'high_crab'")
    assert "hint: did you mean 'high_carb'?" in diagnostic["message"]
    # 🍚 is one code point but two UTF-16 units: the column an editor gets counts it twice
    assert diagnostic["range"]["start"] == {"line": line, "character": len(prefix) + 1}
    assert diagnostic["range"]["end"]["character"] == len(prefix) + 1 + len("lexicon.high_crab")

    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{
        "range": {"start": {"line": line, "character": 0}, "end": {"line": line + 1, "character": 0}},
        "text": FIXED_LINE + "\n"}]})
    assert client.diagnostics(uri, 2) == []


def test_changes_are_debounced_to_the_last_one(client: LspClient, task_file: Path) -> None:
    uri = _open(client, task_file, TASK)
    assert client.diagnostics(uri, 1) == []
    broken = edit(TASK, FIXED_LINE, BROKEN_LINE)
    for version in (2, 3, 4):  # typed quickly: only the last text is compiled and published
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [{"text": broken if version == 4 else TASK}]})
    assert [d["code"] for d in client.diagnostics(uri, 4)] == ["E022"]
    assert not [m for m in client.notifications if m.get("params", {}).get("version") in (2, 3)]


def test_completion_after_lexicon_lists_the_lexicons(client: LspClient, task_file: Path) -> None:
    uri = _open(client, task_file, TASK)
    client.diagnostics(uri, 1)
    result = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                        "position": _position(TASK, "lexicon.sweet", 8)})
    items = {item["label"]: item for item in result["items"]}
    assert set(items) == {"high_carb", "sweet"}
    assert items["sweet"]["detail"] == "lexicon, 3 entries"


def test_completion_of_keys_and_classes(client: LspClient, task_file: Path) -> None:
    uri = _open(client, task_file, TASK)
    client.diagnostics(uri, 1)
    keys = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                      "position": _position(TASK, "per_call", 3)})
    labels = [item["label"] for item in keys["items"]]
    assert labels[:3] == ["model", "temperature", "top_p"] and "per_call" in labels
    classes = client.request("textDocument/completion", {"textDocument": {"uri": uri},
                                                         "position": _position(TASK, "class: keto", 7)})
    assert [item["label"] for item in classes["items"]] == ["keto", "not_keto"]


def test_hover_on_a_function_shows_its_reference(client: LspClient, task_file: Path) -> None:
    uri = _open(client, task_file, TASK)
    client.diagnostics(uri, 1)
    result = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                   "position": _position(TASK, "mentions(i, lexicon.high_carb)", 2)})
    assert result["contents"]["kind"] == "markdown"
    assert "mentions(a string, a list of strings) → boolean" in result["contents"]["value"]
    assert "whole word or phrase" in result["contents"]["value"]


def test_definition_of_a_lexicon_reference(client: LspClient, task_file: Path) -> None:
    uri = _open(client, task_file, TASK)
    client.diagnostics(uri, 1)
    # on the line with 🍚 and crème: the request's column is in UTF-16 units, and so is the answer's
    result = client.request("textDocument/definition", {"textDocument": {"uri": uri},
                                                        "position": _position(TASK, "lexicon.high_carb))", 11)})
    assert result == {"uri": uri, "range": {"start": _position(TASK, "high_carb: ["),
                                            "end": _position(TASK, "high_carb: [", len("high_carb"))}}


def test_hover_on_a_lexicon_after_non_ascii_text(client: LspClient, task_file: Path) -> None:
    uri = _open(client, task_file, TASK)
    client.diagnostics(uri, 1)
    position = _position(TASK, "lexicon.high_carb))", 9)
    result = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": position})
    assert result["contents"]["value"].startswith("**lexicon `high_carb`**: 4 entries")
    start = FIXED_LINE.index("lexicon.high_carb") + len("lexicon.") + 1  # 🍚 is two UTF-16 units
    assert result["range"] == {"start": {"line": position["line"], "character": start},
                               "end": {"line": position["line"], "character": start + len("high_carb")}}


def test_other_yaml_files_are_left_alone(client: LspClient, task_file: Path) -> None:
    other = _open(client, task_file.with_name("docker-compose.yml"), "services: {web: {image: nginx}}\n")
    uri = _open(client, task_file, TASK)
    assert client.diagnostics(uri, 1) == []  # compiled in order: the other file would have come first
    assert not [m for m in client.notifications if m.get("params", {}).get("uri") == other]
    assert client.request("textDocument/completion", {"textDocument": {"uri": other},
                                                      "position": {"line": 0, "character": 0}}) is None
