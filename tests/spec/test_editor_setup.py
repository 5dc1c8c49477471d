"""`taskc schema --install`: what it writes into a user's repository makes an editor validate task files.

The written settings are followed as yaml-language-server follows them (the `yaml.schemas` map from a schema
path, relative to the workspace folder, to file globs), and the schema they lead to validates task files
with jsonschema. With TASKC_YAML_LANGUAGE_SERVER naming a yaml-language-server executable, the real server
is driven over stdio too (bench/yaml_language_server.py; it needs node, so it is opt-in).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from taskc.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _schema_for(repo: Path, task_file: Path) -> dict[str, object]:
    """The schema an editor applies to `task_file`, found through `.vscode/settings.json` as the editor does."""
    settings = json.loads((repo / ".vscode" / "settings.json").read_text(encoding="utf-8"))
    for schema_path, globs in settings["yaml.schemas"].items():
        if any(fnmatch.fnmatch(task_file.name, pattern) for pattern in globs):
            return dict(json.loads((repo / schema_path).read_text(encoding="utf-8")))
    raise AssertionError(f"no schema maps {task_file.name}")


def test_install_maps_task_files_to_a_schema_that_validates_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo / "tasks")
    monkeypatch.chdir(repo)
    assert main(["schema", "--install"]) == 0
    err = capsys.readouterr().err
    assert "taskc: wrote .vscode/task.schema.json" in err and "taskc: wrote .vscode/settings.json" in err
    assert main(["schema"]) == 0
    assert (repo / ".vscode" / "task.schema.json").read_text(encoding="utf-8") == capsys.readouterr().out
    task_files = sorted((repo / "tasks").rglob("*.task.yaml"))
    assert len(task_files) == 3
    for task_file in task_files:
        schema = _schema_for(repo, task_file)
        jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(task_file.read_text(encoding="utf-8")))
    broken = yaml.safe_load((repo / "tasks" / "keto.task.yaml").read_text(encoding="utf-8"))
    broken["classes"] = broken.pop("classes") | {"Bad Name!": {"description": 3}}
    errors = list(jsonschema.Draft202012Validator(_schema_for(repo, task_files[0])).iter_errors(broken))
    assert errors and any(list(e.absolute_path)[:1] == ["classes"] for e in errors)
    extensions = json.loads((repo / ".vscode" / "extensions.json").read_text(encoding="utf-8"))
    assert extensions == {"recommendations": ["redhat.vscode-yaml"]}


def test_install_keeps_other_settings_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / ".vscode" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"editor.tabSize": 2, "yaml.schemas": {"other.json": ["*.other.yaml"]}}),
                        encoding="utf-8")
    assert main(["schema", "--install", str(tmp_path)]) == 0
    data = json.loads(settings.read_text(encoding="utf-8"))
    assert data == {"editor.tabSize": 2, "yaml.schemas": {"other.json": ["*.other.yaml"],
                                                          "./.vscode/task.schema.json": ["*.task.yaml",
                                                                                         "*.task.yml"]}}
    capsys.readouterr()
    assert main(["schema", "--install", str(tmp_path)]) == 0
    assert capsys.readouterr().err.count("is up to date") == 3


def test_settings_with_comments_are_left_alone_with_the_lines_to_add(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / ".vscode" / "settings.json"
    settings.parent.mkdir()
    text = '{\n  // my settings\n  "editor.tabSize": 2\n}\n'
    settings.write_text(text, encoding="utf-8")
    assert main(["schema", "--install", str(tmp_path)]) == 0
    assert settings.read_text(encoding="utf-8") == text
    err = capsys.readouterr().err
    assert f"taskc: warning: {settings} is not plain JSON (comments?), so it was left as it is" in err
    assert '"./.vscode/task.schema.json"' in err
    assert (tmp_path / ".vscode" / "task.schema.json").is_file()


def test_install_into_a_missing_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--install", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_the_schema_claims_no_address_that_serves_nothing() -> None:
    schema = json.loads((ROOT / "spec" / "task.schema.json").read_text(encoding="utf-8"))
    assert "$id" not in schema  # an editor would try to fetch it; the installed file is the address


@pytest.mark.skipif(not os.environ.get("TASKC_YAML_LANGUAGE_SERVER"),
                    reason="set TASKC_YAML_LANGUAGE_SERVER to a yaml-language-server executable to drive it")
def test_yaml_language_server_validates_and_completes_in_a_scratch_repository() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from yaml_language_server import check  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    server = os.environ["TASKC_YAML_LANGUAGE_SERVER"]
    assert check([server, "--stdio"], [sys.executable, "-m", "taskc"]) == []
