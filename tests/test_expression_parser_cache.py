"""The expression parser's LALR tables are cached per user, and a bad cache never changes a parse."""

from __future__ import annotations

from pathlib import Path

import pytest
from taskc.compiler import expr_parser

EXPRESSION = 'contains(dish, "cauliflower") and not mentions(ingredients, lexicon.grains)'


@pytest.fixture
def fresh_parser(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("TASKC_NO_CACHE", raising=False)
    expr_parser.expression_parser.cache_clear()
    yield tmp_path / "taskc"
    expr_parser.expression_parser.cache_clear()


def test_the_tables_are_written_once_and_read_back(fresh_parser: Path) -> None:
    reference = expr_parser.parse_expression(EXPRESSION)
    [tables] = fresh_parser.iterdir()
    assert fresh_parser.stat().st_mode & 0o077 == 0  # private to the user
    expr_parser.expression_parser.cache_clear()
    assert expr_parser.parse_expression(EXPRESSION) == reference
    assert list(fresh_parser.iterdir()) == [tables]


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
