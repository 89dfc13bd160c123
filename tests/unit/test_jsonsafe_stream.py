"""DepthMeter: the depth of a JSON text fed in chunks equals json_depth of the whole text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meter2cash.core.jsonsafe import DepthMeter, json_depth

_texts = st.text(alphabet=st.sampled_from('[]{}"\\ab,: ü'), max_size=60).map(str.encode)


@given(_texts, st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_chunked_depth_equals_whole_depth(raw, cuts):
    meter = DepthMeter()
    start = 0
    for cut in [*sorted(c for c in cuts if c <= len(raw)), len(raw)]:
        meter.feed(raw[start:cut])
        start = cut
    assert meter.deepest == json_depth(raw)


def test_escaped_quote_split_across_chunks_keeps_brackets_inside_the_string():
    meter = DepthMeter()
    for chunk in (b'["a\\', b'"[[[', b'", [1]]'):
        meter.feed(chunk)
    assert meter.deepest == 2  # by hand: the outer list and [1]; "a\\"[[[" is one string
