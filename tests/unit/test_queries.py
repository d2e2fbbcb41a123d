"""The named-query loader: one statement per name, each saying what it is for."""

from __future__ import annotations

from pathlib import Path

import pytest

from extsched.db import queries


def test_it_loads_every_statement_of_the_service() -> None:
    assert "runs_claim" in queries.QUERIES and "token_by_hash" in queries.QUERIES
    assert all(not sql.lstrip().startswith("--") for sql in queries.QUERIES.values())


def test_it_strips_comments_and_the_final_semicolon(tmp_path: Path) -> None:
    f = tmp_path / "q.sql"
    f.write_text("-- name: one\n-- Reads one.\nSELECT 1; -- trailing\n")
    assert queries.load(f) == {"one": "SELECT 1; -- trailing"}
    f.write_text("-- name: one\n-- Reads one.\nSELECT 1\n-- a comment inside\nFROM t;\n")
    assert queries.load(f) == {"one": "SELECT 1\nFROM t"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: a\n-- A.\nSELECT 1;\n-- name: a\n-- A again.\nSELECT 2;\n", "duplicate"),
        ("-- name: a\nSELECT 1;\n", "no description"),
    ],
)
def test_it_refuses_a_file_that_breaks_the_rules(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "q.sql"
    f.write_text(text)
    with pytest.raises(ValueError, match=message):
        queries.load(f)
