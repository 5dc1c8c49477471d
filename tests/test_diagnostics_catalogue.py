"""The catalogue of broken specs: one file per diagnostic code, each with its pinned output.

Each file in tests/broken/ starts with `# expect: CODE`. The test checks that the
compiler reports that code (and exits 1 for errors, 0 for warnings) and pins
the whole rendered output, text and JSON, with syrupy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from taskc.compiler.diagnostics import (
    CODES,
    DiagnosticBag,
    Span,
    code_table,
    render_json,
    render_text,
    update_reference,
)
from taskc.compiler.driver import compile_task

from taskc.cli.main import main

BROKEN = Path(__file__).parent / "broken"
CASES = sorted(BROKEN.glob("*.task.yaml"))
CODE_PATTERN = re.compile(r"# expect: ([EW]\d{3})")


def _expected_code(path: Path) -> str:
    match = CODE_PATTERN.match(path.read_text(encoding="utf-8"))
    assert match, f"{path.name} must start with '# expect: CODE'"
    return match.group(1)


@pytest.mark.parametrize("path", CASES, ids=[p.name.removesuffix(".task.yaml") for p in CASES])
def test_broken_spec_reports_its_code(path: Path, snapshot) -> None:
    code = _expected_code(path)
    result = compile_task(path, display_name=f"broken/{path.name}")
    codes = {d.code for d in result.diagnostics}
    assert code in codes
    assert result.ok is code.startswith("W")
    text = render_text(result.diagnostics, result.sources)
    assert text == snapshot(name="text")
    assert json.loads(render_json(result.diagnostics)) == snapshot(name="json")


def test_every_documented_code_has_a_broken_spec() -> None:
    reference = (Path(__file__).parents[1] / "spec" / "reference.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([EW]\d{3})`", reference, flags=re.MULTILINE))
    covered = {_expected_code(path) for path in CASES}
    assert documented, "spec/reference.md lists the diagnostic codes in a table"
    assert documented == covered


@pytest.mark.parametrize("path", CASES, ids=[p.name.removesuffix(".task.yaml") for p in CASES])
def test_cli_exit_status_follows_severity(path: Path, capsys) -> None:
    status = main(["check", str(path)])
    assert status == (0 if _expected_code(path).startswith("W") else 1)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r":\d+:\d+: (error|warning)\[", err)


def test_the_reference_table_of_codes_is_generated_from_the_catalogue() -> None:
    reference = (Path(__file__).parents[1] / "spec" / "reference.md").read_text(encoding="utf-8")
    assert update_reference(reference) == reference, (
        "spec/reference.md's table of codes differs from CODES in compiler/diagnostics.py: regenerate it with "
        "python -c 'import taskc.compiler.diagnostics as d; d.update_reference_file(\"spec/reference.md\")'")
    assert code_table() in reference


def test_every_code_the_source_names_is_catalogued_and_every_catalogued_code_is_named() -> None:
    """A code is reported as bag.error(span, "E025", ...) or through a stage's helper; the bag refuses one
    outside the catalogue or of the wrong severity when it is reported (the broken specs report each)."""
    root = Path(__file__).parents[1]
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
