"""The light install: the compiler's commands work without the runtime's dependencies (the `run` extra).

Each command runs in a subprocess whose `sys.meta_path` starts with a finder that refuses the runtime-only
modules (numpy, scikit-learn, openai, rich, ...), as a base install (`pip install taskc-compiler`, what the
pre-commit hooks get) would. `check`, `compile`, `fmt`, `diff`, `schema` and `runs` must do their work there,
and for the compiler's commands `taskc.runtime` itself is refused too (the compiler never imports the runtime);
`run`, `predict` and `export` end with the install command and exit status 2.
"""

from __future__ import annotations

import json
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from pathlib import Path

import pytest

from taskc.cli.extras import RUN_EXTRA_MODULES, install_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

_RUNNER = """\
import importlib.abc, json, sys

BLOCKED = set(json.loads(sys.argv[1]))


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.split(".")[0] in BLOCKED or any(name.startswith(b + ".") for b in BLOCKED):
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the light-install test)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
from taskc.cli.main import main

status = main(sys.argv[2:])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith("taskc.runtime"))
print("LEAKED=" + json.dumps(leaked), file=sys.stderr)
sys.exit(status)
"""

RUNTIME_ONLY = sorted(RUN_EXTRA_MODULES)


def _light(tmp_path: Path, *argv: str, runtime_package: bool = True,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    runner = tmp_path / "light_runner.py"
    runner.write_text(_RUNNER, encoding="utf-8")
    blocked = RUNTIME_ONLY + (["taskc.runtime"] if runtime_package else [])
    return subprocess.run([sys.executable, str(runner), json.dumps(blocked), *argv], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, input=stdin if stdin is not None else "")


def _leaked(done: subprocess.CompletedProcess[str]) -> list[str]:
    line = next(line for line in done.stderr.splitlines() if line.startswith("LEAKED="))
    return list(json.loads(line.removeprefix("LEAKED=")))


def test_the_runner_really_refuses_the_runtime(tmp_path: Path) -> None:
    """The blocking finder works: `run` (which needs numpy) cannot get past it."""
    done = _light(tmp_path, "run", str(EXAMPLES / "keto.task.yaml"), "-o", str(tmp_path / "run"),
                  runtime_package=False)
    assert done.returncode == 2, done.stderr
    assert "`taskc run` needs the runtime's dependencies" in done.stderr
    assert install_command("run") in done.stderr
    assert "numpy" in done.stderr and "scikit-learn" in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [
    ["check", "{keto}"],
    ["check", "{examples}"],
    ["check", "--format", "sarif", "{keto}"],
    ["compile", "{keto}", "-o", "{tmp}/out"],
    ["schema", "-o", "{tmp}/task.schema.json"],
    ["diff", "{keto}", "{keto}"],
], ids=lambda argv: "-".join(a for a in argv if not a.startswith("{")))
def test_compiler_commands_run_without_the_runtime(tmp_path: Path, argv: list[str]) -> None:
    args = [a.format(keto=EXAMPLES / "keto.task.yaml", examples=EXAMPLES, tmp=tmp_path) for a in argv]
    done = _light(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert _leaked(done) == []
    assert "Error" not in done.stderr and "internal error" not in done.stderr


def test_compile_writes_its_files_without_the_runtime(tmp_path: Path) -> None:
    done = _light(tmp_path, "compile", str(EXAMPLES / "keto.task.yaml"), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "plan.json").read_text(encoding="utf-8"))


def test_check_reads_stdin_without_the_runtime(tmp_path: Path) -> None:
    text = (EXAMPLES / "support" / "support.task.yaml").read_text(encoding="utf-8")
    done = _light(tmp_path, "check", "-", "--stdin-filename", str(EXAMPLES / "support" / "support.task.yaml"),
                  stdin=text.replace("classes:", "clases:", 1))
    assert done.returncode == 1
    assert "support.task.yaml:" in done.stderr and _leaked(done) == []


def test_fmt_answers_without_the_runtime(tmp_path: Path) -> None:
    spec = tmp_path / "keto.task.yaml"
    spec.write_text((EXAMPLES / "keto.task.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert _light(tmp_path, "fmt", str(spec)).returncode == 0
    done = _light(tmp_path, "fmt", "--check", str(spec))
    assert done.returncode == 0, done.stderr
    assert _leaked(done) == []


def test_runs_reads_history_without_the_runtime_dependencies(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    done = _light(tmp_path, "runs", str(tmp_path / "run"), runtime_package=False)
    assert "internal error" not in done.stderr and "ModuleNotFoundError" not in done.stderr
    assert done.returncode in (0, 2)
    assert [m for m in _leaked(done) if not m.startswith("taskc.runtime")] == []


@pytest.mark.parametrize("argv", [
    ["predict", "{tmp}", "-"],
    ["export", "{tmp}", "-o", "{tmp}/export", "--format", "messages"],
], ids=lambda argv: argv[0])
def test_runtime_commands_ask_for_the_run_extra(tmp_path: Path, argv: list[str]) -> None:
    done = _light(tmp_path, *[a.format(tmp=tmp_path) for a in argv], runtime_package=False)
    assert done.returncode == 2, done.stderr
    assert f"`taskc {argv[0]}` needs the runtime's dependencies" in done.stderr
    assert install_command("run") in done.stderr


def test_the_base_dependencies_leave_the_runtime_to_the_run_extra() -> None:
    """pyproject's base dependencies hold none of the runtime's, `run` holds them all, and `dev` pulls `run`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {r.split(";")[0].split("[")[0].split(">")[0].split("=")[0].strip().lower() for r in requirements}

    base, extras = names(project["dependencies"]), project["optional-dependencies"]
    runtime = set(RUN_EXTRA_MODULES.values()) - {"aiohttp"}  # aiohttp comes as openai[aiohttp]
    assert not base & runtime
    assert runtime <= names(extras["run"])
    assert f"{project['name']}[run]" in extras["dev"]
