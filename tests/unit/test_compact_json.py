"""The Runner request's JSON (runner/envelope.py compact_json): the same values as the standard
library's compact JSON, for any JSON a payload can hold."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from extsched.runner.envelope import compact_json

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_it_encodes_any_payload_to_the_same_json_value(value: Any) -> None:
    body = compact_json(value)
    assert json.loads(body) == value
    standard = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    # byte for byte the same, but for how a few floats spell their exponent
    assert body == standard or any(isinstance(v, float) for v in _leaves(value))


def test_it_is_compact_utf8_and_takes_integers_beyond_64_bits() -> None:
    assert compact_json({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'.encode()
    assert compact_json({"n": 2**70}) == b'{"n":1180591620717411303424}'


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
