"""`taskc check` as CI and editors call it: `-` (stdin), directories, globs, `--format github` and `sarif`."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from spec_edits import edit

from taskc.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TASKS = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.task.yaml"))


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/ as the working directory, with one broken task file in a subfolder and task files
    in places a directory walk skips (a hidden folder, a virtual environment)."""
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLES, root)
    broken = root / "support" / "broken.task.yaml"
    text = (root / "support" / "support.task.yaml").read_text(encoding="utf-8")
    broken.write_text(edit(text, "classes:", "clases:", count=1), encoding="utf-8")
    for hidden in (root / ".git" / "x.task.yaml", root / "venv" / "lib" / "y.task.yaml"):
        hidden.parent.mkdir(parents=True)
        hidden.write_text("not: [a task", encoding="utf-8")
    (root / "venv" / "pyvenv.cfg").write_text("home = /usr\n", encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


def test_a_directory_is_searched_recursively(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", ".", "-v"]) == 1
    err = capsys.readouterr().err
    checked = sorted(re.findall(r"^\./(\S+\.task\.yaml): \d+ errors?", err, flags=re.M))
    assert checked == sorted([*EXAMPLE_TASKS, "support/broken.task.yaml"])
    assert f"checked {len(EXAMPLE_TASKS) + 1} task files: 2 errors, 0 warnings (failed)" in err


def test_a_quoted_glob_is_expanded(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "**/support*.task.yaml"]) == 0
    assert "checked 1 task file: 0 errors, 0 warnings (ok)" in capsys.readouterr().err


@pytest.mark.parametrize("argument, message", [
    ("empty", "no task files (*.task.yaml, *.task.yml) under empty"),
    ("nothing/*.task.yaml", "no file matches nothing/*.task.yaml"),
])
def test_an_empty_match_is_a_usage_error(tree: Path, capsys: pytest.CaptureFixture[str], argument: str,
                                         message: str) -> None:
    (tree / "empty").mkdir()
    assert main(["check", argument]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"taskc: error: {message}\n"
    assert "checked" not in captured.err


def test_a_missing_file_is_still_the_compiler_s_diagnostic(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "gone.task.yaml"]) == 1
    assert "gone.task.yaml:1:1: error[E001]" in capsys.readouterr().err


def test_stdin_is_checked_as_the_file_it_stands_for(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    source = tree / "support" / "support.task.yaml"
    unsaved = edit(source.read_text(encoding="utf-8"), "classes:", "clases:", count=1)
    monkeypatch.setattr("sys.stdin", io.StringIO(unsaved))
    assert main(["check", "-", "--stdin-filename", "support/support.task.yaml"]) == 1
    err = capsys.readouterr().err
    assert f"support/support.task.yaml:{_line_of(source, 'classes:')}:1: error[E010]: unknown key 'clases'" in err
    assert "checked 1 task file: 2 errors" in err
    # the file on disk was not read: it is still fine
    assert main(["check", "support/support.task.yaml"]) == 0


def test_stdin_finds_the_files_it_names_next_to_the_named_path(tree: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((tree / "keto.task.yaml").read_text(encoding="utf-8")))
    assert main(["check", "-", "--stdin-filename", "keto.task.yaml"]) == 0
    monkeypatch.chdir(tree / "support")
    monkeypatch.setattr("sys.stdin", io.StringIO((tree / "keto.task.yaml").read_text(encoding="utf-8")))
    assert main(["check", "-"]) == 1  # <stdin> in support/: the pool and gold files are not there
    assert "<stdin>:" in capsys.readouterr().err


def test_github_format_is_one_workflow_command_per_diagnostic(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "github", "support"]) == 1
    captured = capsys.readouterr()
    commands = captured.out.splitlines()
    assert len(commands) == 2
    line = _line_of(tree / "support" / "broken.task.yaml", "clases:")
    assert (f"::error file=support/broken.task.yaml,line={line},col=1,endLine={line},endColumn=7,"
            "title=taskc E010::unknown key 'clases' in the task file%0Ahint: did you mean 'classes'?") in commands
    # as GitHub parses it: ::command key=value,...::message, with %-escapes undone
    for command in commands:
        match = re.fullmatch(r"::(error|warning) ([^:]*)::(.*)", command)
        assert match, command
        properties = dict(item.split("=", 1) for item in match.group(2).split(","))
        assert set(properties) >= {"file", "line", "col", "title"}
        assert (tree / properties["file"]).is_file()
        assert properties["title"].startswith("taskc E")
    assert "checked 2 task files: 2 errors, 0 warnings (failed)" in captured.err


def test_github_format_escapes_what_would_end_the_command(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tree / "odd, name: 100%.task.yaml"
    spec.write_text("taskc: 1\nname: [unclosed\n", encoding="utf-8")
    assert main(["check", "--format", "github", str(spec.name)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("::error file=odd%2C name%3A 100%25.task.yaml,line=")
    assert "\n" not in out.rstrip("\n")


# The part of the SARIF 2.1.0 schema (OASIS, sarif-schema-2.1.0.json) that a log like taskc's must satisfy:
# the required properties and the types and values of those taskc writes.
SARIF_SHAPE = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {"type": "array", "items": {
            "type": "object",
            "required": ["tool"],
            "properties": {
                "tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                   "rules": {"type": "array", "items": {
                                       "type": "object", "required": ["id"],
                                       "properties": {"id": {"type": "string"},
                                                      "shortDescription": {"$ref": "#/$defs/message"}}}}}}}},
                "artifacts": {"type": "array", "items": {"type": "object", "properties": {
                    "location": {"$ref": "#/$defs/artifactLocation"}}}},
                "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                "results": {"type": "array", "items": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "ruleId": {"type": "string"},
                        "ruleIndex": {"type": "integer", "minimum": -1},
                        "level": {"enum": ["none", "note", "warning", "error"]},
                        "message": {"$ref": "#/$defs/message"},
                        "locations": {"type": "array", "items": {"type": "object", "properties": {
                            "physicalLocation": {
                                "type": "object",
                                "properties": {
                                    "artifactLocation": {"$ref": "#/$defs/artifactLocation"},
                                    "region": {"type": "object", "properties": {
                                        "startLine": {"type": "integer", "minimum": 1},
                                        "startColumn": {"type": "integer", "minimum": 1},
                                        "endLine": {"type": "integer", "minimum": 1},
                                        "endColumn": {"type": "integer", "minimum": 1}},
                                        "additionalProperties": False}},
                                "additionalProperties": False}}}},
                    }}},
            }}},
    },
    "$defs": {
        "message": {"type": "object", "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
                    "properties": {"text": {"type": "string"}}},
        "artifactLocation": {"type": "object", "properties": {"uri": {"type": "string", "format": "uri-reference"}}},
    },
}


def test_sarif_is_a_sarif_2_1_0_log(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "sarif", "."]) == 1
    log = json.loads(capsys.readouterr().out)
    jsonschema.validate(log, SARIF_SHAPE, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    run = log["runs"][0]
    rules = [rule["id"] for rule in run["tool"]["driver"]["rules"]]
    assert rules == ["E010", "E011"]
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("E011", "error"), ("E010", "error")]
    for result in results:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "support/broken.task.yaml"
    e010 = next(r for r in results if r["ruleId"] == "E010")
    assert e010["locations"][0]["physicalLocation"]["region"]["startLine"] == _line_of(
        tree / "support" / "broken.task.yaml", "clases:")
    assert sorted(a["location"]["uri"] for a in run["artifacts"]) == sorted([*EXAMPLE_TASKS,
                                                                             "support/broken.task.yaml"])


def test_sarif_of_a_clean_file_has_no_results(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "sarif", "keto.task.yaml"]) == 0
    captured = capsys.readouterr()
    log = json.loads(captured.out)
    jsonschema.validate(log, SARIF_SHAPE)
    assert log["runs"][0]["results"] == [] and captured.err == ""
