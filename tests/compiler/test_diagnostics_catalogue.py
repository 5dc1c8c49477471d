"""The catalogue of broken specs: one file per diagnostic code, each holding what `taskc check` prints for it.

Each file in tests/broken/ starts with `# expect: CODE` and ends with its expected section (see
tests/golden.py): exactly what `taskc check broken/<file>` prints, run from tests/, read back from the file,
so the input and its diagnostics (code, line, column, message, caret and hint) are read side by side. The
JSON rendering of each case (with end positions) stays pinned with syrupy. tests/broken/README.md is the
index (code -> case file -> what it reports), generated from the cases. After an intended change of a
message, rewrite both with `PYTHONPATH=tests python tests/compiler/test_diagnostics_catalogue.py` and read
the diff.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from golden import expected, with_expected
from taskc.compiler.diagnostics import (
    CODES,
    INTERNAL_ERROR,
    DiagnosticBag,
    Span,
    code_table,
    render_json,
    update_reference,
)
from taskc.compiler.driver import compile_task

from taskc.cli.main import main

TESTS = Path(__file__).resolve().parents[1]
BROKEN = TESTS / "broken"
INDEX = BROKEN / "README.md"
CASES = sorted(BROKEN.glob("*.task.yaml"))
CODE_PATTERN = re.compile(r"# expect: ([EW]\d{3})")
CHECK_PRINTS = "taskc check broken/{name} prints (stderr):"
FIRST_LINE = re.compile(r"^broken/[^:]+:\d+:\d+: (?:error|warning)\[(?P<code>[EW]\d{3})\]: (?P<message>.*)$",
                        flags=re.MULTILINE)


def _expected_code(path: Path) -> str:
    match = CODE_PATTERN.match(path.read_text(encoding="utf-8"))
    assert match, f"{path.name} must start with '# expect: CODE'"
    return match.group(1)


def _check_output(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`taskc check broken/<file>` run from tests/: its exit status and what it printed on stderr."""
    capsys.readouterr()
    status = main(["check", f"broken/{path.name}"])
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err


@pytest.fixture
def in_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from tests/, without colour, the way the case files' expected sections were written."""
    monkeypatch.chdir(TESTS)
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.mark.parametrize("path", CASES, ids=[p.name.removesuffix(".task.yaml") for p in CASES])
def test_broken_spec_prints_what_its_case_file_says(path: Path, in_tests: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    title, output = expected(path.read_text(encoding="utf-8"))
    assert title == CHECK_PRINTS.format(name=path.name)
    _, printed = _check_output(path, capsys)
    assert printed == output


@pytest.mark.parametrize("path", CASES, ids=[p.name.removesuffix(".task.yaml") for p in CASES])
def test_broken_spec_reports_its_code(path: Path, snapshot) -> None:
    code = _expected_code(path)
    result = compile_task(path, display_name=f"broken/{path.name}")
    codes = {d.code for d in result.diagnostics}
    assert code in codes
    assert result.ok is code.startswith("W")
    assert json.loads(render_json(result.diagnostics)) == snapshot(name="json")
    assert code in {m.group("code") for m in FIRST_LINE.finditer(expected(path.read_text(encoding="utf-8"))[1])}


def test_every_documented_code_has_a_broken_spec() -> None:
    reference = (Path(__file__).parents[2] / "spec" / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([EW]\d{3})`", reference, flags=re.MULTILINE))
    covered = {_expected_code(path) for path in CASES}
    assert documented, "spec/reference.md lists the diagnostic codes in a table"
    assert documented == covered
    # E000 is taskc's own bug, never the file's: every other code in the catalogue has its case
    assert covered == set(CODES) - {INTERNAL_ERROR}


@pytest.mark.parametrize("path", CASES, ids=[p.name.removesuffix(".task.yaml") for p in CASES])
def test_cli_exit_status_follows_severity(path: Path, in_tests: None, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = _check_output(path, capsys)
    assert status == (0 if _expected_code(path).startswith("W") else 1)
    assert "Traceback" not in err
    assert re.search(r":\d+:\d+: (error|warning)\[", err)


def test_the_reference_table_of_codes_is_generated_from_the_catalogue() -> None:
    reference = (Path(__file__).parents[2] / "spec" / "reference.md").read_text(encoding="utf-8")
    assert update_reference(reference) == reference, (
        "spec/reference.md's table of codes differs from CODES in compiler/diagnostics.py: regenerate it with "
        "python -c 'import taskc.compiler.diagnostics as d; d.update_reference_file(\"spec/reference.md\")'")
    assert code_table() in reference


def test_every_code_the_source_names_is_catalogued_and_every_catalogued_code_is_named() -> None:
    """A code is reported as bag.error(span, "E025", ...) or through a stage's helper; the bag refuses one
    outside the catalogue or of the wrong severity when it is reported (the broken specs report each)."""
    root = Path(__file__).parents[2]
    named: set[str] = set()
    for source in sorted((root / "compiler").glob("*.py")) + sorted((root / "runtime").rglob("*.py")):
        if source.name == "diagnostics.py":
            continue
        for code in re.findall(r"[\"']([EW]\d{3})[\"']", source.read_text(encoding="utf-8")):
            assert code in CODES, f"{source.name} names {code}, which the catalogue (CODES) does not list"
            named.add(code)
    assert set(CODES) == named, f"catalogued but never reported: {sorted(set(CODES) - named)}"


def test_a_code_outside_the_catalogue_is_refused_where_it_is_reported() -> None:
    bag = DiagnosticBag()
    with pytest.raises(ValueError, match="E999"):
        bag.error(Span("t.task.yaml", 1, 1), "E999", "not a code")
    with pytest.raises(ValueError, match="W101"):
        bag.error(Span("t.task.yaml", 1, 1), "W101", "a warning reported as an error")


# -- the index of cases, and rewriting the expected sections -------------------------------------------

def index_text() -> str:
    """tests/broken/README.md: for each code, its case files and the message each makes taskc report."""
    rows = []
    for path in CASES:
        code = _expected_code(path)
        messages = [m.group("message") for m in FIRST_LINE.finditer(expected(path.read_text(encoding="utf-8"))[1])
                    if m.group("code") == code]
        rows.append(f"| `{code}` | [{path.name}]({path.name}) | {messages[0].replace('|', chr(92) + '|')} |\n")
    return ("# Broken task files, one per diagnostic code\n\n"
            "Each case file starts with `# expect: CODE` and ends with exactly what `taskc check broken/<file>` "
            "prints, run from tests/; tests/compiler/test_diagnostics_catalogue.py compares it with the real output. "
            "What each code means is in the table of codes in spec/reference.md.\n\n"
            "Generated from the case files by `PYTHONPATH=tests python tests/compiler/test_diagnostics_catalogue.py` "
            "(which also rewrites their expected sections), and checked to be up to date.\n\n"
            "| code | case file | what taskc reports |\n|---|---|---|\n" + "".join(rows))


def test_the_index_of_cases_is_up_to_date() -> None:
    assert INDEX.read_text(encoding="utf-8") == index_text(), (
        "tests/broken/README.md differs from the cases: regenerate it with "
        "PYTHONPATH=tests python tests/compiler/test_diagnostics_catalogue.py")


def update_case_files() -> None:
    """Rewrite each case's expected section with what `taskc check` prints now, then the index (run from
    anywhere; only after an intended change of the output, and read the diff)."""
    import contextlib
    import io
    import os

    previous, colour = Path.cwd(), os.environ.get("NO_COLOR")
    os.chdir(TESTS)
    os.environ["NO_COLOR"] = "1"
    try:
        for path in CASES:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                main(["check", f"broken/{path.name}"])
            text = path.read_text(encoding="utf-8")
            path.write_text(with_expected(text, CHECK_PRINTS.format(name=path.name), err.getvalue()),
                            encoding="utf-8")
    finally:
        os.chdir(previous)
        if colour is None:
            del os.environ["NO_COLOR"]
        else:
            os.environ["NO_COLOR"] = colour
    INDEX.write_text(index_text(), encoding="utf-8")


if __name__ == "__main__":
    update_case_files()
