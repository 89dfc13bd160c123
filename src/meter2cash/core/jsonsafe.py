"""JSON from outside with bounded nesting: a document nested too deep is refused before parsing.

``json.loads`` recurses once per level of nesting, so ``[[[[…]]]]`` 100,000 deep ends in a
``RecursionError`` (a traceback in the CLI, a 500 from the API). :func:`loads_bounded` measures the
depth first with one vectorised pass over the bytes and refuses a document deeper than
``max_depth`` with the stable code ``input.too_deep``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from meter2cash.core.errors import InvalidInput

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = (ord("["), ord("{"))
_CLOSE = (ord("]"), ord("}"))


#: Bytes measured at a time: memory stays bounded by the chunk however large the document.
CHUNK = 1 << 20


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in UTF-8 JSON text ``data`` (0 for a scalar),
    measured :data:`CHUNK` bytes at a time (:class:`DepthMeter`).

    Brackets inside strings do not count. A quote is escaped when an odd run of backslashes
    precedes it; a backslash outside a string is invalid JSON, which the parser refuses at that
    spot, before any nesting behind it is reached, so counting stays exact up to there.
    """
    meter = DepthMeter()
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        meter.feed(bytes(view[start : start + CHUNK]))
    return meter.deepest


def loads_bounded(data: bytes | str, max_depth: int = 64) -> Any:
    """``json.loads(data)`` after checking that no array or object nests deeper than
    ``max_depth`` levels (``InvalidInput`` with code ``input.too_deep`` otherwise).

    ``bytes`` may be UTF-8, UTF-16 or UTF-32 as ``json.loads`` detects them; text that is no
    JSON raises ``json.JSONDecodeError`` and bytes that are not in their encoding raise
    ``UnicodeDecodeError``, as from ``json.loads``.
    """
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    else:
        encoding = json.detect_encoding(data)
        raw = data if encoding == "utf-8" else data.decode(encoding).encode("utf-8", "surrogatepass")
    depth = json_depth(raw)
    if depth > max_depth:
        raise InvalidInput(
            f"JSON nested {depth} levels deep; at most {max_depth} are accepted",
            code="input.too_deep",
            depth=depth,
            max_depth=max_depth,
        )
    return json.loads(data)


class DepthMeter:
    """:func:`json_depth` of a text that arrives in chunks (a streamed upload), in memory bounded
    by the chunk: feed each chunk in order; ``deepest`` is the depth so far."""

    def __init__(self) -> None:
        self.depth = 0
        self.deepest = 0
        self._in_string = False
        self._escape_next = False  # the previous chunk ended in an odd run of backslashes

    def feed(self, chunk: bytes) -> int:
        """Take the next chunk; returns the deepest nesting seen so far."""
        b = np.frombuffer(chunk, dtype=np.uint8)
        if b.size == 0:
            return self.deepest
        pos = np.arange(b.size, dtype=np.int64)
        backslash = b == _BACKSLASH
        last_plain = np.maximum.accumulate(np.where(backslash, -1, pos))
        carried = int(self._escape_next)  # only the parity of the run matters
        run_before = np.empty(b.size, dtype=np.int64)
        run_before[0] = carried
        run_before[1:] = pos[:-1] - last_plain[:-1] + np.where(last_plain[:-1] < 0, carried, 0)
        quote = (b == _QUOTE) & (run_before % 2 == 0)
        in_string = ((np.cumsum(quote) + int(self._in_string)) % 2).astype(bool)
        step = np.isin(b, _OPEN).astype(np.int64) - np.isin(b, _CLOSE).astype(np.int64)
        step[in_string] = 0
        levels = self.depth + np.cumsum(step)
        self.deepest = max(self.deepest, int(levels.max()))
        self.depth = int(levels[-1])
        self._in_string = bool(in_string[-1])
        trailing = b.size - 1 - int(last_plain[-1]) + (carried if last_plain[-1] < 0 else 0)
        self._escape_next = trailing % 2 == 1
        return self.deepest
