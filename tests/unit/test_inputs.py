"""The shared rules for what request input may carry (``domain.inputs``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from extsched.domain import inputs
from extsched.domain.inputs import MAX_JSON_DEPTH, InputRefused, Problem


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


class TestJsonProblem:
    def test_it_accepts_documents_up_to_the_limit(self) -> None:
        assert inputs.json_problem(nested(MAX_JSON_DEPTH)) is None
        assert inputs.json_problem({"a": nested(MAX_JSON_DEPTH - 1)}) is None

    def test_it_names_the_top_level_field_past_the_limit(self) -> None:
        assert inputs.json_problem({"ok": 1, "payload": nested(MAX_JSON_DEPTH)}) == Problem(
            "payload", "is nested deeper than the limit of 64 levels"
        )
        assert inputs.json_problem(nested(MAX_JSON_DEPTH + 1)) == Problem(
            "body", "is nested deeper than the limit of 64 levels"
        )

    def test_it_inspects_any_depth_without_recursion(self) -> None:
        assert inputs.json_problem(nested(100_000)) is not None
        assert inputs.exceeds_depth(nested(100_000), 200)

    @pytest.mark.parametrize(
        ("document", "field"),
        [
            ({"name": "\ud800"}, "name"),
            ({"payload": {"deep": ["\udfff"]}}, "payload"),
            ({"payload": {"\ud800": 1}}, "payload"),
            ({"\ud800": 1}, "body"),
            (["a\x00"], "body"),
        ],
    )
    def test_it_refuses_unstorable_text_in_values_and_keys(self, document: Any, field: str) -> None:
        problem = inputs.json_problem(document)
        assert problem is not None and problem.field == field
        assert "surrogate" in problem.message or "NUL" in problem.message

    def test_it_accepts_surrogate_pairs_spelled_as_escapes(self) -> None:
        assert inputs.loads('{"emoji": "\\ud83d\\ude00"}') == {"emoji": "\U0001f600"}


class TestLoads:
    def test_it_refuses_depth_beyond_what_python_can_decode(self) -> None:
        with pytest.raises(InputRefused, match="64 levels"):
            inputs.loads("[" * 100_000)

    def test_it_refuses_bytes_that_are_not_utf8_even_if_json_would_pass_them(self) -> None:
        # json.loads decodes bytes with "surrogatepass": these would become "\ud800".
        with pytest.raises(UnicodeDecodeError):
            inputs.loads(b'["\xed\xa0\x80"]')

    def test_malformed_json_stays_a_decode_error(self) -> None:
        with pytest.raises(json.JSONDecodeError):
            inputs.loads("{nope")

    @given(st.recursive(st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)))
    def test_the_pre_check_never_lets_a_refused_document_through(self, value: Any) -> None:
        text = json.dumps(value)
        try:
            inputs.loads(text)
        except InputRefused:
            assert inputs.may_break_rules(text)


class TestNames:
    @pytest.mark.parametrize("name", ["nightly sync", "Nächtlich · 夜間 🌙", "a-b_c.d", "x"])
    def test_it_accepts_visible_text(self, name: str) -> None:
        assert inputs.name_problem(name) is None

    @pytest.mark.parametrize(
        "ch", ["\u202e", "\u2067", "\u200e", "\u061c", "\u200b", "\u200d", "\u2060", "\ufeff"]
    )
    def test_it_refuses_bidi_and_zero_width_characters_naming_them(self, ch: str) -> None:
        problem = inputs.name_problem(f"a{ch}b")
        assert problem is not None and f"U+{ord(ch):04X}" in problem

    @pytest.mark.parametrize("ch", ["\x00", "\t", "\n", "\x1b", "\x7f", "\x85", "\u2028", "\ud800"])
    def test_it_refuses_control_characters(self, ch: str) -> None:
        assert inputs.name_problem(f"a{ch}b") is not None
