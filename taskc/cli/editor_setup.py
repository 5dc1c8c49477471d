"""`taskc schema --install`: completion and validation of task files in a user's repository, for any editor
that uses yaml-language-server (VS Code's YAML extension, Neovim's yamlls, Helix, Zed, ...).

It writes the schema into the repository (`.vscode/task.schema.json`, so it versions with the taskc that
wrote it and works offline) and maps every `*.task.yaml` / `*.task.yml` to it in `.vscode/settings.json`
(`yaml.schemas`), recommending the YAML extension in `.vscode/extensions.json`. Existing settings are kept:
only those two keys are added to. A settings file that is not plain JSON (VS Code allows comments) is left
alone, and the lines to add are printed instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskc.compiler.paths import write_atomic

SCHEMA_FILE = Path(".vscode") / "task.schema.json"
SETTINGS_FILE = Path(".vscode") / "settings.json"
EXTENSIONS_FILE = Path(".vscode") / "extensions.json"
SCHEMA_KEY = "./" + SCHEMA_FILE.as_posix()  # relative to the workspace folder, as VS Code reads it
TASK_FILE_GLOBS = ["*.task.yaml", "*.task.yml"]
YAML_EXTENSION = "redhat.vscode-yaml"


@dataclass
class InstallResult:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    left_alone: list[tuple[Path, str]] = field(default_factory=list)  # (file, what to add by hand)


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """The file's JSON object; {} when it does not exist; None when it is not plain JSON (comments, ...)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_if_changed(path: Path, text: str, result: InstallResult) -> None:
    if path.exists() and path.read_text(encoding="utf-8", errors="replace") == text:
        result.unchanged.append(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))
    result.written.append(path)


def _merge(path: Path, update: dict[str, Any], snippet: str, result: InstallResult) -> None:
    data = _read_json_object(path)
    if data is None:
        result.left_alone.append((path, snippet))
        return
    changed = dict(data)
    for key, value in update.items():
        if isinstance(value, dict):
            mapping = changed.get(key)
            changed[key] = {**(mapping if isinstance(mapping, dict) else {}), **value}
        else:  # a list of recommendations: add what is missing, keep the order
            existing = changed.get(key)
            items: list[Any] = existing if isinstance(existing, list) else []
            changed[key] = [*items, *(v for v in value if v not in items)]
    if changed == data and path.exists():
        result.unchanged.append(path)
        return
    _write_if_changed(path, json.dumps(changed, indent=2, ensure_ascii=False) + "\n", result)


def install(root: Path, schema_text: str) -> InstallResult:
    """Write the schema and the editor settings under `root` (a repository's top folder)."""
    result = InstallResult()
    _write_if_changed(root / SCHEMA_FILE, schema_text, result)
    schemas = {"yaml.schemas": {SCHEMA_KEY: TASK_FILE_GLOBS}}
    _merge(root / SETTINGS_FILE, schemas, json.dumps(schemas, indent=2), result)
    extensions = {"recommendations": [YAML_EXTENSION]}
    _merge(root / EXTENSIONS_FILE, extensions, json.dumps(extensions, indent=2), result)
    return result
