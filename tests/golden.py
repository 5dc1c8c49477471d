"""Golden case files: the expected output written into the case file itself, after its input.

A case file (a broken task file in tests/broken/, an edit script in tests/diff_cases/) ends with an
expected section: a marker comment naming what prints the output, then the output itself, one line per
comment line (`# ` + the line, or a bare `#` for an empty line), so a reader sees the input and what
taskc says about it together and the tests read the expectation from the same file. YAML ignores the
comments and a task file's lines keep their numbers; only a node that ends the file runs on over them to
the end (so a span's end may be there: see the JSON of W105 and E036, and `taskc fmt`, which drops every
comment after a `...` document end, is why the section does not sit behind one).

    # ---- taskc check broken/E021_unknown_field.task.yaml prints (stderr): ----
    # broken/E021_unknown_field.task.yaml:25:16: error[E021]: unknown input field 'dsh'
    # ...

`expected(text)` reads the section back (the marker's title and the output); `with_expected(text, title,
output)` writes it, replacing the one there. After an intended change of the output, rewrite the cases
with the update function of the test that reads them (`update_case_files()` in
tests/compiler/test_diagnostics_catalogue.py and test_diff.py) and read the diff before committing it.
"""

from __future__ import annotations

import re

MARKER = re.compile(r"^# ---- (?P<title>.+) ----$", flags=re.MULTILINE)


def expected(text: str) -> tuple[str, str]:
    """The expected section of a case file's ``text``: (the marker's title, the output it holds)."""
    markers = list(MARKER.finditer(text))
    assert len(markers) == 1, (f"a case file ends with one expected section ('# ---- ... ----'), found {len(markers)}: "
                               "a new case gets its section from the update function of the test that reads it "
                               "(PYTHONPATH=tests python tests/compiler/test_<name>.py)")
    marker = markers[0]
    lines = text[marker.end() + 1:].split("\n")
    assert lines[-1] == "", "a case file ends with a newline"
    output = []
    for line in lines[:-1]:
        assert line == "#" or line.startswith("# "), f"the expected section holds only comment lines: {line!r}"
        output.append(line[2:])
    return marker.group("title"), "".join(f"{line}\n" for line in output)


def with_expected(text: str, title: str, output: str) -> str:
    """``text`` ending with the expected section ``title`` holding ``output`` (which ends with a newline)."""
    assert output.endswith("\n") and "\r" not in output, "the expected output ends with a newline, no CR"
    marker = MARKER.search(text)
    head = text[:marker.start()] if marker else text
    body = "".join(f"# {line}\n" if line else "#\n" for line in output[:-1].split("\n"))
    return f"{head.rstrip()}\n\n# ---- {title} ----\n{body}"
