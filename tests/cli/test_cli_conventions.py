"""Command-line conventions: defaults from taskc.toml / [tool.taskc], `run --format json`, -v, colour
(NO_COLOR, FORCE_COLOR), documented exit statuses, and shell completion scripts driven by the real shells."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_cli import _project

from taskc.cli.config import KEYS, apply_defaults, find_config, load_defaults
from taskc.cli.main import build_parser, main
from taskc.cli.output import UsageError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _offline(no_provider: None) -> None:
    """Every run here is offline."""


# -- defaults from the project ------------------------------------------------------------------------------

def test_taskc_toml_defaults_fill_what_the_command_line_leaves_unset(tmp_path: Path) -> None:
    (tmp_path / "taskc.toml").write_text('concurrency = 16\nmax-cost = 2\nprices = "p/prices.json"\n'
                                         'output = "out/runs"\nrequest-timeout = 300\n', encoding="utf-8")
    (tmp_path / "sub").mkdir()
    defaults = load_defaults(tmp_path / "sub")
    assert defaults.source == tmp_path / "taskc.toml"
    parser = build_parser()
    run = apply_defaults(parser.parse_args(["run", "x.task.yaml", "--concurrency", "4"]), defaults)
    assert (run.concurrency, run.max_cost, run.runs_root) == (4, 2.0, str(tmp_path / "out/runs"))
    assert run.request_timeout == 300
    compile_ = apply_defaults(parser.parse_args(["compile", "x.task.yaml"]), defaults)
    assert compile_.prices == str(tmp_path / "p/prices.json")
    assert not hasattr(compile_, "runs_root") and not hasattr(compile_, "concurrency")


def test_pyproject_tool_taskc_is_read_and_a_git_root_ends_the_search(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.taskc]\nrpm = 60\n', encoding="utf-8")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert find_config(repo) is None
    assert load_defaults(tmp_path).values == {"rpm": 60}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "pyproject.toml").write_text('[project]\nname = "y"\n', encoding="utf-8")
    assert find_config(tmp_path / "other") == (tmp_path / "pyproject.toml", "[tool.taskc]")


@pytest.mark.parametrize("text, message", [
    ('concurency = 3\n', "taskc.toml:1:1: unknown key 'concurency' in the taskc defaults; did you mean "
                         "'concurrency'?"),
    ('# defaults\nmax_cost = 1.5\n', "taskc.toml:2:1: unknown key 'max_cost' in the taskc defaults; did you mean "
                                     "'max-cost'?"),
    ('concurrency = "8"\n', "taskc.toml:1:1: concurrency: expected a whole number of at least 1, got '8'"),
    ('rpm = 0\n', "taskc.toml:1:1: rpm: expected a whole number of at least 1, got 0"),
    ('rpm = 5\ntpm = [\n', "taskc.toml:3:1: not valid TOML: Invalid value"),
    ('rpm = 5\ntpm 7\n', "taskc.toml:2:5: not valid TOML: Expected '=' after a key in a key/value pair"),
])
def test_a_bad_defaults_file_is_a_located_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], text: str,
                                                      message: str) -> None:
    (tmp_path / "taskc.toml").write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match="^" + str(tmp_path).replace("\\", "\\\\")):
        load_defaults(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["compile", str(EXAMPLES / "keto.task.yaml"), "--dump-ir"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"taskc: error: {tmp_path / message.split(':', 1)[0]}:{message.split(':', 1)[1]}")


def test_every_key_sets_an_option_some_command_has() -> None:
    parser = build_parser()
    dests = {action.dest for sub in parser._subparsers._group_actions[0].choices.values()  # type: ignore[union-attr]
             for action in sub._actions}
    assert {key.dest for key in KEYS.values()} - dests == {"runs_root"}  # run's output: see cmd_run


def test_run_writes_under_the_configured_output_and_prints_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = _project(tmp_path / "project")
    (tmp_path / "taskc.toml").write_text('output = "elsewhere"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(spec), "--format", "json", "-v"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["passed"] is True
    assert Path(summary["files"]["report_html"]) == tmp_path / "elsewhere" / "reviews" / "report.html"
    assert (tmp_path / "elsewhere" / "reviews" / "report.html").is_file()
    assert f"taskc: defaults from {tmp_path / 'taskc.toml'}: runs_root={tmp_path / 'elsewhere'}" in captured.err


# -- help, exit statuses, -v ----------------------------------------------------------------------------------

def test_help_documents_every_exit_status_and_taskc_debug() -> None:
    text = build_parser().format_help()
    for needed in ("70 an internal error", "130 interrupted", "TASKC_DEBUG", "NO_COLOR", "FORCE_COLOR",
                   "[tool.taskc]"):
        assert needed in text


def test_every_command_takes_verbose() -> None:
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        assert "--verbose" in sub._option_string_actions, name


def test_verbose_says_when_no_defaults_file_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["-v", "compile", str(EXAMPLES / "keto.task.yaml"), "--dump-ir"]) == 0
    assert "no taskc.toml or [tool.taskc] found" in capsys.readouterr().err


def test_commands_without_such_options_do_not_read_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taskc.toml").write_text("not toml at all [\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(EXAMPLES / "keto.task.yaml")]) == 0  # an editor's lint is not broken by it
    assert main(["compile", str(EXAMPLES / "keto.task.yaml"), "--dump-ir"]) == 2


# -- colour -----------------------------------------------------------------------------------------------------

def _check_broken(tmp_path: Path, env: dict[str, str]) -> str:
    spec = tmp_path / "b.task.yaml"
    spec.write_text("taskc: 1\nnme: x\n", encoding="utf-8")
    base = {k: v for k, v in __import__("os").environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    done = subprocess.run([sys.executable, "-m", "taskc", "check", str(spec)], capture_output=True, text=True,
                          env=base | env, timeout=60)
    assert done.returncode == 1
    return done.stderr


@pytest.mark.parametrize("env, coloured", [
    ({}, False),                                    # not a terminal
    ({"FORCE_COLOR": "1"}, True),
    ({"FORCE_COLOR": "0"}, False),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),  # NO_COLOR wins
    ({"NO_COLOR": ""}, False),                      # empty NO_COLOR: as if unset (no-color.org)
])
def test_colour_follows_force_color_and_no_color(tmp_path: Path, env: dict[str, str], coloured: bool) -> None:
    assert ("\033[" in _check_broken(tmp_path, env)) is coloured


# -- shell completion -------------------------------------------------------------------------------------------

def _bash_complete(script: Path, words: list[str], cwd: Path) -> list[str]:
    line = " ".join(f"'{w}'" for w in words)
    program = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _taskc; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completion_completes_commands_options_values_and_files(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "taskc.bash"
    script.write_text(capsys.readouterr().out, encoding="utf-8")
    (tmp_path / "keto.task.yaml").write_text("", encoding="utf-8")
    assert _bash_complete(script, ["taskc", "ch"], tmp_path) == ["check"]
    assert _bash_complete(script, ["taskc", "c"], tmp_path) == ["check", "compile", "completion"]
    assert _bash_complete(script, ["taskc", "check", "--format", ""], tmp_path) == ["text", "json", "github",
                                                                                  "sarif"]
    assert _bash_complete(script, ["taskc", "run", "--fo"], tmp_path) == ["--format"]
    assert _bash_complete(script, ["taskc", "check", "ke"], tmp_path) == ["keto.task.yaml"]
    assert _bash_complete(script, ["taskc", "completion", "f"], tmp_path) == ["fish"]
    assert "--stdin-filename" in _bash_complete(script, ["taskc", "check", "--"], tmp_path)


@pytest.mark.parametrize("shell, check", [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])])
def test_zsh_and_fish_scripts_parse_in_their_shell(tmp_path: Path, capsys: pytest.CaptureFixture[str], shell: str,
                                                   check: list[str]) -> None:
    assert main(["completion", shell]) == 0
    text = capsys.readouterr().out
    for command in ("check", "compile", "run", "predict", "completion"):
        assert command in text
    assert "text json github sarif" in text
    if shutil.which(check[0]) is None:
        pytest.skip(f"{shell} is not installed: only the script's content is checked")
    script = tmp_path / f"taskc.{shell}"
    script.write_text(text, encoding="utf-8")
    done = subprocess.run([*check, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_check_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "fish"]) == 0
    script = tmp_path / "taskc.fish"
    script.write_text(capsys.readouterr().out, encoding="utf-8")
    done = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C 'taskc check --format '"],
                          capture_output=True, text=True, timeout=60)
    assert sorted(line.split("\t")[0] for line in done.stdout.splitlines()) == ["github", "json", "sarif", "text"]


def test_completion_needs_a_known_shell(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["completion", "powershell"])
    assert stopped.value.code == 2
