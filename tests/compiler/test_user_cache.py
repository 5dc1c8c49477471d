"""The user cache: the expression parser's LALR tables and the regex character classes are kept per user,
and a stale or damaged entry never changes an answer, it is rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from taskc.compiler import expr_parser, functions

EXPRESSION = 'contains(dish, "cauliflower") and not mentions(ingredients, lexicon.grains)'


@pytest.fixture
def fresh_parser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("TASKC_NO_CACHE", raising=False)
    expr_parser.expression_parser.cache_clear()
    functions._categories.cache_clear()
    yield tmp_path / "taskc"
    expr_parser.expression_parser.cache_clear()
    functions._categories.cache_clear()


def test_the_tables_are_written_once_and_read_back(fresh_parser: Path) -> None:
    reference = expr_parser.parse_expression(EXPRESSION)
    [tables] = fresh_parser.iterdir()
    assert fresh_parser.stat().st_mode & 0o077 == 0  # private to the user
    written = tables.stat().st_mtime_ns
    expr_parser.expression_parser.cache_clear()
    assert expr_parser.parse_expression(EXPRESSION) == reference
    assert list(fresh_parser.iterdir()) == [tables]
    assert tables.stat().st_mtime_ns == written  # read back, not built and written again


@pytest.mark.parametrize("damage", [b"", b"not the grammar's hash\n", b"\x80\x04garbage"])
def test_damaged_tables_are_rebuilt(fresh_parser: Path, damage: bytes) -> None:
    reference = expr_parser.parse_expression(EXPRESSION)
    [tables] = fresh_parser.iterdir()
    tables.write_bytes(damage)
    expr_parser.expression_parser.cache_clear()
    assert expr_parser.parse_expression(EXPRESSION) == reference
    assert tables.read_bytes() != damage


def test_no_cache_when_asked_or_when_the_directory_cannot_be_made(fresh_parser: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKC_NO_CACHE", "1")
    expr_parser.parse_expression(EXPRESSION)
    assert not fresh_parser.exists()
    monkeypatch.delenv("TASKC_NO_CACHE")
    fresh_parser.parent.joinpath("taskc").write_text("a file where the directory would go")
    expr_parser.expression_parser.cache_clear()
    assert expr_parser.parse_expression(EXPRESSION) is not None


def test_the_character_classes_come_back_from_the_cache_as_computed(fresh_parser: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    computed = functions._read_categories(False)
    assert functions._categories(False) == computed
    stored = fresh_parser / "regex-categories.json"
    assert json.loads(stored.read_text())["value"] == {k: [list(r) for r in v] for k, v in computed.items()}
    functions._categories.cache_clear()

    def not_again(ascii_only: bool) -> None:
        raise AssertionError("the classes were read off Unicode again instead of the cache")

    monkeypatch.setattr(functions, "_read_categories", not_again)
    assert functions._categories(False) == computed


@pytest.mark.parametrize("tamper", [
    lambda stored: {**stored, "key": "another Python"},  # another interpreter's Unicode database
    lambda stored: {**stored, "value": {**stored["value"], "\\w": [[5, 3]]}},  # not ranges
    lambda stored: {**stored, "value": {"\\d": []}},  # classes missing
    lambda stored: "not an object",
])
def test_a_stale_or_damaged_class_table_is_recomputed(fresh_parser: Path, tamper) -> None:
    computed = functions._categories(False)
    stored = fresh_parser / "regex-categories.json"
    stored.write_text(json.dumps(tamper(json.loads(stored.read_text()))))
    functions._categories.cache_clear()
    assert functions._categories(False) == computed
    assert json.loads(stored.read_text())["value"] == {k: [list(r) for r in v] for k, v in computed.items()}
