"""What request input may carry (no I/O): JSON nesting and text rules shared by the API edge,
the UI forms and the services, so hostile input is refused once with a clear message.

- JSON documents a request carries (an API body, a payload typed into the UI) nest objects and
  arrays at most ``MAX_JSON_DEPTH`` levels, counting the outermost.
- No string, object key included, may hold a lone surrogate (``\\ud800``: not Unicode text, it
  cannot be stored or encoded) or a NUL character (PostgreSQL cannot store it).
- Names people tell apart by eye (schedule names, config keys, secret names) may not hold
  control, format (bidi controls, zero-width characters) or line-separator characters: they make
  two different names look identical, or reorder what is shown.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, NamedTuple

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects/arrays accepted in a JSON document (the outermost counts as 1)."""

MAX_READABLE_JSON_DEPTH = 200
"""Deepest stored JSON a response still shows. Values stored before ``MAX_JSON_DEPTH`` existed
may be deeper; up to this depth they are served as they are (well under the 255 levels
pydantic's encoder accepts), deeper ones are served as ``null``."""

_BAD_TEXT_RE = re.compile("[\x00\ud800-\udfff]")
# Unicode categories refused in names: Cc (controls, NUL, newline, DEL...), Cf (format: bidi
# embeddings/overrides/isolates U+202A-U+202E U+2066-U+2069, marks U+200E/U+200F U+061C,
# zero-width U+200B-U+200D U+2060 U+FEFF, soft hyphen...), Cs (surrogates), Zl/Zp (U+2028/9).
_NAME_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class Problem(NamedTuple):
    """Where a document breaks a rule (a top-level field name, or ``body``) and why."""

    field: str
    message: str


class InputRefused(ValueError):
    """A decoded document breaks a rule of this module."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.message)


def code_point(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a lone surrogate, a NUL), or None."""
    bad = _BAD_TEXT_RE.search(text)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return "must not contain NUL (U+0000) characters"
    return f"must not contain a lone surrogate ({code_point(bad.group())}); it is not Unicode text"


def name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable name shown to people, or None."""
    for ch in name:
        if unicodedata.category(ch) in _NAME_REFUSED_CATEGORIES:
            return (
                f"must not contain control, bidirectional or invisible characters "
                f"({code_point(ch)} found)"
            )
    return None


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> Problem | None:
    """The first rule a decoded JSON document breaks (depth, unstorable text), or None.

    Iterative, so any depth is inspected without recursion; ``field`` names the top-level key
    under which the problem sits when the document is an object with a clean key there."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, top = stack.pop()
        if isinstance(node, str):
            message = text_problem(node)
            if message:
                return Problem(top or "body", message)
        elif isinstance(node, dict | list):
            if depth > max_depth:
                return Problem(
                    top or "body", f"is nested deeper than the limit of {max_depth} levels"
                )
            if isinstance(node, list):
                stack.extend((item, depth + 1, top) for item in node)
                continue
            for key, item in node.items():
                key_text = key if isinstance(key, str) else str(key)
                message = text_problem(key_text)
                here = top or (key_text if depth == 1 and message is None else "")
                if message:
                    return Problem(here or "body", message)
                stack.append((item, depth + 1, here))
    return None


def exceeds_depth(value: Any, limit: int) -> bool:
    """Whether objects/arrays in ``value`` nest deeper than ``limit`` levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in node if isinstance(item, dict | list))
    return False


def loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decode a JSON document and check it against this module's rules.

    Raises ``json.JSONDecodeError`` (malformed), ``UnicodeDecodeError`` (bytes that are not
    UTF-8) or ``InputRefused`` (too deep, unstorable text); all are ``ValueError``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # strict: JSON is UTF-8 (RFC 8259), no surrogates
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputRefused(
            Problem("body", f"is nested deeper than the limit of {max_depth} levels")
        ) from None
    problem = json_problem(value, max_depth=max_depth)
    if problem is not None:
        raise InputRefused(problem)
    return value


def may_break_rules(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Cheap pre-check on a UTF-8-decoded JSON text: False guarantees ``loads`` would not
    refuse it (fewer opening brackets than the limit, and no ``\\u`` escape that could spell
    a surrogate or NUL), so the common small request is not decoded twice."""
    return text.count("[") + text.count("{") > max_depth or "\\u" in text
