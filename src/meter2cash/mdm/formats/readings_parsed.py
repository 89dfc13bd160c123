"""What a reading file becomes: :class:`ParsedReadings` (one row per value, timestamps as UTC epoch
microseconds) and :class:`ParsedEvent`, with the field parsers and problem helpers the CSV and
JSON readers share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from meter2cash.core.errors import M2CError, Problem

US_PER_S = 1_000_000

#: Where a row came from: a CSV line, a JSON ``readings`` block value, a JSON ``registers`` item.
SECTION_CSV, SECTION_READINGS, SECTION_REGISTERS = 0, 1, 2

#: Columns of :attr:`ParsedReadings.frame` (see there).
FRAME_COLUMNS = ("meter", "channel", "ts_us", "step", "value", "quality", "section", "interval_s", "line")

# An explicit offset (or Z) after a time of day; a date alone or a naive time has none.
_HAS_OFFSET = re.compile(
    r"[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.I
)


@dataclass(slots=True)
class ParsedEvent:
    """One meter event from a JSON file (``line`` is its index in ``events``)."""

    line: int
    meter: str
    occurred_at_us: int
    code: str
    category: str = ""
    description: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ParsedReadings:
    """The readable part of one file.

    ``frame`` has one row per received value (bad rows are already left out and reported):

    - ``meter``, ``channel`` (str): meter serial and reading-type code or OBIS code, as given;
    - ``ts_us`` (int64): UTC epoch microseconds; for a JSON block the block ``start``;
    - ``step`` (int64): index of the value inside its JSON block (``-1`` otherwise); the interval
      start is ``ts_us + step * interval`` once the channel is known;
    - ``value`` (float64): as the meter reports it (no multiplier), NaN = received as missing;
    - ``quality`` (int64): :class:`~meter2cash.core.quality.Quality` bits given in the file (0 if none);
    - ``section`` (int8): ``SECTION_*``; ``interval_s`` (int64): interval length declared in the
      file, 0 if not declared;
    - ``line`` (int64): CSV file line (header = 1) or index of the item in its JSON section.
    """

    format: str
    frame: pd.DataFrame
    rows_total: int
    rows_rejected: int
    problems: list[Problem]
    events: list[ParsedEvent] = field(default_factory=list)
    #: File name, used as ``Problem.source``.
    source: str = ""
    #: The sender named inside the file (JSON ``source``), if any.
    declared_source: str = ""

    def locate(self, rows: npt.NDArray[np.intp], column: str) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Line numbers and field names (CSV column or JSON path) of frame ``rows`` for ``column``."""
        f = self.frame
        lines = f["line"].to_numpy()[rows]
        if self.format == "csv":
            return lines, [_CSV_KEY.get(column, column)] * len(rows)
        sections = f["section"].to_numpy()[rows]
        steps = f["step"].to_numpy()[rows]
        names: list[str] = []
        for sec, line, step in zip(sections.tolist(), lines.tolist(), steps.tolist(), strict=True):
            if sec == SECTION_READINGS:
                key = f"values[{step}]" if column in ("value", "ts_us") else _JSON_KEY.get(column, column)
                names.append(f"readings[{line}].{key}")
            else:
                names.append(f"registers[{line}].{_JSON_REGISTER_KEY.get(column, column)}")
        return lines, names


_CSV_KEY = {"ts_us": "start"}
_JSON_KEY = {"ts_us": "start", "interval_s": "interval_s"}
_JSON_REGISTER_KEY = {"ts_us": "read_at"}


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "meter": pd.Series([], dtype=object),
            "channel": pd.Series([], dtype=object),
            "ts_us": np.empty(0, np.int64),
            "step": np.empty(0, np.int64),
            "value": np.empty(0, np.float64),
            "quality": np.empty(0, np.int64),
            "section": np.empty(0, np.int8),
            "interval_s": np.empty(0, np.int64),
            "line": np.empty(0, np.int64),
        }
    )


def parse_timestamps(
    raw: pd.Series,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """ISO-8601 strings → (UTC epoch µs, unparsable mask, naive mask), vectorised.

    Each distinct string is parsed once (a file repeats the same interval starts for every meter).
    A timestamp without an offset is *naive* and is refused: its meaning depends on a time zone
    the file does not state.
    """
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).str.strip()
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    has_offset = text.str.contains(_HAS_OFFSET, na=False).to_numpy(bool)
    us = parsed.dt.tz_convert(None).to_numpy("datetime64[us]").astype(np.int64)
    bad_u = parsed.isna().to_numpy(bool)
    naive_u = ~bad_u & ~has_offset
    if len(codes) and (codes < 0).any():  # missing → unparsable
        us, bad_u, naive_u = np.append(us, 0), np.append(bad_u, True), np.append(naive_u, False)
        codes = np.where(codes < 0, len(us) - 1, codes)
    return us[codes], bad_u[codes], naive_u[codes]


def parse_numbers(raw: pd.Series) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Decimal strings (or numbers) → (float64, bad mask); empty, unparsable and ±inf/NaN are bad."""
    num = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return num, ~np.isfinite(num)


def problems_at(
    parsed_lines: npt.NDArray[np.int64] | list[int],
    fields: list[str],
    code: str,
    message: str | list[str],
    source: str = "",
    data: list[dict[str, Any]] | None = None,
) -> list[Problem]:
    """One :class:`Problem` per line (a loop over *bad* rows only)."""
    msgs = [message] * len(fields) if isinstance(message, str) else message
    datas = data if data is not None else [{}] * len(fields)
    return [
        Problem(code=code, message=m, line=int(ln), field=f, source=source or None, data=d)
        for ln, f, m, d in zip(parsed_lines, fields, msgs, datas, strict=True)
    ]


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text without a BOM, or ``ingest.bad_file``."""
    if b"\x00" in data[:8192]:
        raise M2CError(
            f"{source or 'the file'} is binary, not a CSV or JSON reading file", code="ingest.bad_file"
        )
    try:
        return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise M2CError(
            f"{source or 'the file'} is not UTF-8 text (byte {exc.start}): not a CSV or JSON reading file",
            code="ingest.bad_file",
        ) from exc
