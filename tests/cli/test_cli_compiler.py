"""`taskc check`, `compile` and `schema` as a user meets them: exit statuses, formats, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from spec_edits import edit

from taskc.cli.main import COMMANDS, chosen_command, main

EXAMPLES = Path(__file__).parents[2] / "examples"


def _misspell_class(spec: Path) -> None:
    text = edit(spec.read_text(encoding="utf-8"), "  - id: sweet_fruit\n    class: not_keto",
                "  - id: sweet_fruit\n    class: not_ketto")
    spec.write_text(text, encoding="utf-8")


def test_check_clean_example_exits_0(capsys) -> None:
    assert main(["check", str(EXAMPLES / "keto.task.yaml")]) == 0
    assert "0 errors" in capsys.readouterr().err


def test_misspelt_class_is_located_with_did_you_mean(keto_project: Path, capsys) -> None:
    _misspell_class(keto_project)
    assert main(["check", str(keto_project)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(keto_project.read_text().splitlines(), 1) if "not_ketto" in text)
    assert f"keto.task.yaml:{line}:12: error[E024]: unknown class 'not_ketto'" in err
    assert "did you mean 'not_keto'?" in err
    assert "^~~~~~~~~" in err


def test_type_error_inside_a_multiline_rule_points_into_the_expression(keto_v1_project: Path, capsys) -> None:
    keto_project = keto_v1_project
    text = edit(keto_project.read_text(encoding="utf-8"),
                "lexicon.low_carb_vegetables)) >= 2",
                "lexicon.low_carb_vegetables)) >= \"two\"")
    keto_project.write_text(text, encoding="utf-8")
    assert main(["check", str(keto_project), "--format", "json"]) == 1
    diagnostics = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in diagnostics] == ["E025"]
    lines = keto_project.read_text().splitlines()
    found = diagnostics[0]
    assert lines[found["line"] - 1][found["column"] - 1:].startswith('"two"')


def test_all_errors_of_a_stage_in_one_run_structure_first(keto_project: Path, capsys) -> None:
    _misspell_class(keto_project)
    text = edit(edit(keto_project.read_text(), "len(dish) <= 80", "len(dsh) <= 80"),
                "temperature: 0.9", "temprature: 0.9")
    keto_project.write_text(text)
    assert main(["check", str(keto_project), "--format", "json"]) == 1
    codes = sorted(d["code"] for d in json.loads(capsys.readouterr().out))
    assert codes == ["E010"]  # structure errors stop before semantics: fix the shape first
    keto_project.write_text(edit(text, "temprature", "temperature"))
    assert main(["check", str(keto_project), "--format", "json"]) == 1
    codes = sorted(d["code"] for d in json.loads(capsys.readouterr().out))
    assert codes == ["E021", "E024"]


def test_json_diagnostics_have_the_documented_fields(keto_project: Path, capsys) -> None:
    _misspell_class(keto_project)
    main(["check", "--format", "json", str(keto_project)])
    [record] = json.loads(capsys.readouterr().out)
    assert {"file", "line", "column", "severity", "code", "message"} <= set(record)


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compile"])
    assert exit_info.value.code == 2
    assert main([]) == 2


def test_missing_file_is_a_diagnostic_not_a_traceback(tmp_path: Path, capsys) -> None:
    assert main(["check", str(tmp_path / "nope.task.yaml")]) == 1
    assert "error[E001]: cannot read task file" in capsys.readouterr().err


def test_schema_command_prints_the_schema(capsys) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "taskc task file"
    assert set(schema["properties"]) >= {"task", "input", "classes", "lexicons", "rationales", "constraints",
                                         "generate", "finetune", "eval"}


def test_examples_name_no_schema_path_that_breaks_when_copied() -> None:
    """A `$schema=../spec/...` modeline fails in a user's repository (and wins over its settings): the examples
    have none, and this repository maps task files to its schema in .vscode/settings.json instead."""
    for spec in EXAMPLES.rglob("*.task.yaml"):
        assert "$schema=" not in spec.read_text(encoding="utf-8"), spec
    settings = json.loads((EXAMPLES.parent / ".vscode" / "settings.json").read_text(encoding="utf-8"))
    (schema, globs), = settings["yaml.schemas"].items()
    assert (EXAMPLES.parent / schema).resolve() == (EXAMPLES.parent / "spec" / "task.schema.json").resolve()
    assert "*.task.yaml" in globs


def test_dump_ir_shows_compiled_expressions(capsys) -> None:
    assert main(["compile", str(EXAMPLES / "keto.task.yaml"), "--dump-ir"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert dumped["rationales"][0]["rule"]["compiled"].startswith("(any ingredients (lambda i")


def test_an_interrupt_while_loading_a_command_exits_130_without_a_traceback(monkeypatch, capsys) -> None:
    import taskc.cli.main as cli_main

    def interrupted(name: str) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "command_module", interrupted)
    assert main(["check", str(EXAMPLES / "keto.task.yaml")]) == 130
    assert capsys.readouterr().err == "taskc: interrupted\n"


def test_console_script_runs_as_a_module() -> None:
    completed = subprocess.run([sys.executable, "-m", "taskc", "--help"], capture_output=True, text=True,
                               check=False)
    assert completed.returncode == 0
    assert "check" in completed.stdout and "compile" in completed.stdout


@pytest.mark.parametrize("argv, chosen", [
    (["run", "x.task.yaml"], "run"),
    (["-v", "check", "x.task.yaml"], "check"),   # the top level's options take no value
    (["check", "--help"], "check"),
    (["--help"], None), (["-h", "run"], None), ([], None), (["--version"], None),
    (["chek", "x.task.yaml"], None),              # a typo: the whole parser says "did you mean"
    (["completion", "bash"], None),               # it reads every command's options
])
def test_the_command_to_load_is_the_first_argument_that_is_not_an_option(argv: list[str], chosen: str | None) -> None:
    assert chosen_command(argv) == chosen


def test_a_command_imports_no_other_command() -> None:
    program = ("import sys; from taskc.cli.main import main; main(sys.argv[1:]); "
               "print(sorted(m for m in sys.modules if m.startswith('taskc.cli.cmd_')))")
    done = subprocess.run([sys.executable, "-c", program, "check", str(EXAMPLES / "keto.task.yaml")],
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.stdout.splitlines()[-1] == "['taskc.cli.cmd_check']", done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_teaches_with_examples_and_exit_statuses(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "taskc " + command in out and "exit status" in out


def test_a_compiler_bug_is_a_diagnostic_and_exit_1_not_a_traceback(monkeypatch, capsys) -> None:
    import taskc.compiler.driver as driver

    def broken_pass(*_args: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(driver, "run_passes", broken_pass)
    assert main(["check", str(EXAMPLES / "keto.task.yaml")]) == 1
    err = capsys.readouterr().err
    assert "error[E000]: internal compiler error: ValueError: boom" in err
    assert "Traceback" not in err


def test_schema_output_to_a_directory_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["schema", "-o", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["schema", "-o", str(tmp_path / "schema.json")]) == 0
    assert json.loads((tmp_path / "schema.json").read_text())["title"] == "taskc task file"


def test_compile_output_that_is_a_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    target = tmp_path / "afile"
    target.write_text("keep me")
    assert main(["compile", str(EXAMPLES / "keto.task.yaml"), "-o", str(target)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("table,reason", [
    ("{not json", "not JSON"),
    ('{"gpt-4o-mini": {"input": -1, "output": 1}}', "negative or infinite"),
    ('{"gpt-4o-mini": {"input": "cheap"}}', "needs numeric"),
])
@pytest.mark.parametrize("command", ["compile", "diff"])
def test_bad_price_tables_are_usage_errors(tmp_path: Path, capsys, table: str, reason: str, command: str) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(table)
    spec = str(EXAMPLES / "keto.task.yaml")
    arguments = [spec, "-o", str(tmp_path / "out")] if command == "compile" else [spec, spec]
    assert main([command, *arguments, "--prices", str(prices)]) == 2
    err = capsys.readouterr().err
    assert f"taskc: error: cannot read price table {prices}" in err and reason in err
