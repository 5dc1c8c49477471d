"""Does `taskc schema --install` give completion and validation in a user's repository? Ask yaml-language-server.

Makes a scratch repository outside this one, runs `taskc schema --install` there, copies in a good task file
and a broken one, then starts the real yaml-language-server (what VS Code's YAML extension, Neovim's yamlls,
Helix and Zed run) over stdio with the `yaml.*` settings that the install wrote to `.vscode/settings.json`,
exactly as VS Code would send them. It checks that the broken file gets a diagnostic on the right line, the
good one none, and that completion at the top level offers the task file's keys.

    python bench/yaml_language_server.py --server ./node_modules/.bin/yaml-language-server
    python bench/yaml_language_server.py          # runs `npx --yes yaml-language-server` (fetches it once)

Not a timing; an extra check that needs node. The test suite runs the same check when the environment
variable TASKC_YAML_LANGUAGE_SERVER names a server (tests/spec/test_editor_setup.py).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "examples" / "support" / "support.task.yaml"
TIMEOUT = 60.0


class LanguageClient:
    """The smallest LSP client that yaml-language-server needs: framing, requests, notifications, and answers
    to the server's own requests (workspace/configuration gets the settings)."""

    def __init__(self, command: list[str], settings: dict[str, Any], cwd: Path) -> None:
        self.settings = settings
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=cwd)
        self.next_id = 0
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            message = json.loads(stream.read(length))
            if "method" in message and "id" in message:
                self._answer(message)
            else:
                self.messages.put(message)

    def _answer(self, request: dict[str, Any]) -> None:
        result: Any = None
        if request["method"] == "workspace/configuration":
            result = [self._section(item.get("section", "")) for item in request["params"]["items"]]
        self._send({"jsonrpc": "2.0", "id": request["id"], "result": result})

    def _section(self, name: str) -> Any:
        value: Any = self.settings
        for part in filter(None, name.split(".")):
            value = value.get(part, {}) if isinstance(value, dict) else {}
        return value

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == self.next_id).get("result")

    def wait(self, wanted: Any) -> dict[str, Any]:
        while True:
            message = self.messages.get(timeout=TIMEOUT)
            if wanted(message):
                return message

    def close(self) -> None:
        try:
            self.request("shutdown", {})
            self.notify("exit", {})
            self.process.wait(timeout=10)
        except Exception:  # the check is over either way
            self.process.kill()


def yaml_settings(settings_file: Path) -> dict[str, Any]:
    """The `yaml.*` keys of a VS Code settings file, nested as the extension sends them to the server."""
    flat = json.loads(settings_file.read_text(encoding="utf-8"))
    nested: dict[str, Any] = {"yaml": {"validate": True, "completion": True, "hover": True}}
    for key, value in flat.items():
        if key.startswith("yaml."):
            nested["yaml"][key.removeprefix("yaml.")] = value
    return nested


def check(server: list[str], taskc: list[str]) -> list[str]:
    """Problems found (empty: the editor setup works)."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="taskc-yls-") as scratch:
        repo = Path(scratch) / "repo"
        (repo / "tasks").mkdir(parents=True)
        subprocess.run([*taskc, "schema", "--install"], cwd=repo, check=True, capture_output=True)
        good_text = GOOD.read_text(encoding="utf-8")
        broken_text = good_text.replace("\nclasses:", "\nclasess:", 1)
        broken_line = broken_text.splitlines().index("clasess:")  # 0-based, as LSP counts
        good, broken = repo / "tasks" / "support.task.yaml", repo / "tasks" / "broken.task.yaml"
        good.write_text(good_text, encoding="utf-8")
        broken.write_text(broken_text, encoding="utf-8")
        client = LanguageClient(server, yaml_settings(repo / ".vscode" / "settings.json"), repo)
        try:
            client.request("initialize", {
                "processId": os.getpid(), "rootUri": repo.as_uri(),
                "workspaceFolders": [{"uri": repo.as_uri(), "name": "repo"}],
                "capabilities": {"workspace": {"configuration": True},
                                 "textDocument": {"completion": {"completionItem": {"snippetSupport": False}}}},
                "initializationOptions": {}})
            client.notify("initialized", {})
            client.notify("workspace/didChangeConfiguration", {"settings": client.settings})
            found: dict[str, list[dict[str, Any]]] = {}
            for path, text in ((good, good_text), (broken, broken_text)):
                client.notify("textDocument/didOpen", {"textDocument": {
                    "uri": path.as_uri(), "languageId": "yaml", "version": 1, "text": text}})
            while len(found) < 2:
                message = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")
                found[message["params"]["uri"]] = message["params"]["diagnostics"]
            if found[good.as_uri()]:
                problems.append(f"the good file got diagnostics: {found[good.as_uri()]}")
            lines = {d["range"]["start"]["line"] for d in found[broken.as_uri()]}
            if broken_line not in lines:
                problems.append(f"no diagnostic on line {broken_line + 1} of the broken file: "
                                f"{found[broken.as_uri()]}")
            fresh = repo / "tasks" / "new.task.yaml"  # a file being started: the top-level keys are offered
            client.notify("textDocument/didOpen", {"textDocument": {
                "uri": fresh.as_uri(), "languageId": "yaml", "version": 1, "text": "taskc: 1\n"}})
            items = client.request("textDocument/completion", {
                "textDocument": {"uri": fresh.as_uri()}, "position": {"line": 1, "character": 0}})
            labels = {item["label"] for item in (items["items"] if isinstance(items, dict) else items or [])}
            if not {"task", "classes", "rationales", "lexicons"} <= labels:
                problems.append(f"completion at the top level offers no task-file key: {sorted(labels)[:20]}")
        finally:
            client.close()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server",
                        help="the yaml-language-server executable (default: npx --yes yaml-language-server)")
    parser.add_argument("--taskc", default=shutil.which("taskc") or f"{sys.executable} -m taskc",
                        help="how to run taskc (default: taskc on PATH)")
    args = parser.parse_args()
    server = [args.server, "--stdio"] if args.server else ["npx", "--yes", "yaml-language-server", "--stdio"]
    problems = check(server, args.taskc.split())
    for problem in problems:
        print(f"FAIL: {problem}")
    print("yaml-language-server: the installed schema validates and completes task files" if not problems else "")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
