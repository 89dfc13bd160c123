"""The bounded JSON loader: depth measured without parsing, deep documents refused with a code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meter2cash.core.errors import InvalidInput
from meter2cash.core.jsonsafe import json_depth, loads_bounded


def _depth(value: Any) -> int:
    """Reference: nesting depth of a parsed value, by recursion over the Python objects."""
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


_text = st.text(alphabet=st.sampled_from('ab"\\[]{}\n ü€'), max_size=8)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=40,
)


@given(_values, st.booleans())
def test_depth_matches_the_parsed_structure(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth(text.encode("utf-8")) == _depth(value)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("12", 0),
        ('"[[[["', 0),
        ('["\\"[[", [1]]', 2),  # an escaped quote does not end the string
        ('["\\\\", [[1]]]', 3),  # an escaped backslash does not escape the quote after it
        ('{"a": {"b": [{}]}}', 4),
        ("[] [] []", 1),
    ],
)
def test_depth_of_hand_made_documents(text, depth):
    assert json_depth(text.encode()) == depth


def test_a_document_100000_deep_is_refused_before_parsing():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InvalidInput) as err:
        loads_bounded(deep)
    assert err.value.code == "input.too_deep" and err.value.data["depth"] == 100_000


def test_within_the_bound_it_is_plain_json_loads():
    doc = {"a": [1, {"b": "x"}], "c": "é"}
    assert loads_bounded(json.dumps(doc).encode()) == doc
    assert loads_bounded(json.dumps(doc).encode("utf-16")) == doc
    assert loads_bounded("[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(InvalidInput):
        loads_bounded("[[[1]]]", max_depth=2)
    with pytest.raises(json.JSONDecodeError):
        loads_bounded("[1,")
