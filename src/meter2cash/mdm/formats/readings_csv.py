"""CSV reading files: ``meter,channel,start,value[,quality]`` (see ``docs/formats.md``).

Lines are found with a vectorised byte scan (quote-aware), so a line with the wrong number of
fields is reported with its own line number and the others are parsed by ``pandas.read_csv``.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pandas as pd

from meter2cash.core.errors import M2CError, Problem
from meter2cash.core.quality import Quality
from meter2cash.mdm.formats.readings_parsed import (
    SECTION_CSV,
    ParsedReadings,
    decode_text,
    parse_numbers,
    parse_timestamps,
    problems_at,
)

REQUIRED = ("meter", "channel", "start", "value")
OPTIONAL = ("quality",)


def _lines(body: bytes, arr: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.int64], ...]:
    """Per physical line: start offset, length incl. newline, separator count, non-blank flag.

    Works on the positions of newlines, commas and quotes only (a quote toggles "inside a field",
    so separators inside quotes do not count).
    """
    nl = np.flatnonzero(arr == ord("\n"))
    commas = np.flatnonzero(arr == ord(","))
    quotes = np.flatnonzero(arr == ord('"'))
    if len(quotes):
        nl = nl[np.searchsorted(quotes, nl) % 2 == 0]
        commas = commas[np.searchsorted(quotes, commas) % 2 == 0]
    starts = np.concatenate([[0], nl + 1]).astype(np.int64)
    ends = np.concatenate([nl, [len(arr)]]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [len(arr)]]))
    n_commas = np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    solid = np.ones(len(starts), bool)
    for i in np.flatnonzero(n_commas == 0):  # only lines without a separator can be blank
        solid[i] = bool(body[starts[i] : ends[i]].strip())
    return starts, lengths, n_commas, solid


def _quality(raw: pd.Series) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Quality column → (bits, bad mask). Accepts an integer bit mask or names like ``ESTIMATED|RAW``."""
    codes, uniques = pd.factorize(raw)
    bits = np.zeros(len(uniques) + 1, np.int64)
    bad = np.zeros(len(uniques) + 1, bool)
    for i, text in enumerate(str(u).strip() for u in uniques):  # distinct values only: a handful
        if not text or text.upper() in ("A", "ACTUAL", "VALID"):
            continue
        if text.isdigit():
            bits[i] = int(text)
            bad[i] = bits[i] > 0xFFFF
            continue
        try:
            bits[i] = sum(int(Quality[name.strip().upper()]) for name in text.split("|"))
        except KeyError:
            bad[i] = True
    codes = np.where(codes < 0, len(uniques), codes)
    return bits[codes], bad[codes]


def _stripped(col: pd.Series) -> pd.Series:
    """``col.str.strip()``, computed once per distinct value."""
    codes, uniques = pd.factorize(col)
    return pd.Series(pd.Series(uniques, dtype=object).str.strip().to_numpy(object)[codes], dtype=object)


def parse_csv(data: bytes, *, source: str = "") -> ParsedReadings:
    """Parse a CSV reading file; bad lines become problems, a bad header raises ``ingest.bad_file``."""
    decode_text(data, source)
    body = data.removeprefix(b"\xef\xbb\xbf")
    arr = np.frombuffer(body, dtype=np.uint8)
    starts, lengths, commas, solid = _lines(body, arr)
    filled = np.flatnonzero(solid)
    if not len(filled):
        raise M2CError(
            f"{source or 'the file'} is empty: expected a header {','.join(REQUIRED)}", code="ingest.bad_file"
        )
    head = int(filled[0])
    header_text = body[starts[head] : starts[head] + lengths[head]].decode("utf-8").strip()
    names = [c.strip().strip('"').lower() for c in header_text.split(",")]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise M2CError(
            f"{source or 'the file'}: the header {header_text[:200]!r} lacks {', '.join(missing)}; "
            f"a reading CSV starts with {','.join(REQUIRED)}[,quality]",
            code="ingest.bad_file",
            missing=missing,
        )
    data_lines = filled[1:]
    ok = commas[data_lines] == commas[head]
    bad_lines = data_lines[~ok]
    problems: list[Problem] = problems_at(
        bad_lines + 1,
        [""] * len(bad_lines),
        "ingest.malformed_row",
        [f"expected {commas[head] + 1} fields, found {c + 1}" for c in commas[bad_lines]],
        source,
    )
    keep_lines = np.concatenate([[head], data_lines[ok]])
    keep = np.zeros(len(starts), bool)
    keep[keep_lines] = True
    clean = arr[np.repeat(keep, lengths)].tobytes()
    if not clean.endswith(b"\n"):
        clean += b"\n"
    try:
        df = pd.read_csv(
            io.BytesIO(clean),
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8",
            skipinitialspace=True,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise M2CError(
            f"{source or 'the file'} is not a readable CSV file: {exc}", code="ingest.bad_file"
        ) from exc
    if len(df) != int(ok.sum()):
        raise M2CError(f"{source or 'the file'} has inconsistent quoting", code="ingest.bad_file")
    df.columns = names
    line_no = data_lines[ok].astype(np.int64) + 1

    meter, channel = _stripped(df["meter"]), _stripped(df["channel"])
    ts_us, ts_bad, ts_naive = parse_timestamps(df["start"])
    quality, q_bad = _quality(df["quality"]) if "quality" in names else (np.zeros(len(df), np.int64),) * 2
    q_bad = q_bad.astype(bool)
    value, v_bad = parse_numbers(df["value"])
    missing = (quality & int(Quality.MISSING)) != 0
    if missing.any():  # a MISSING row may leave the value empty
        v_bad &= ~(missing & (df["value"].str.strip() == "").to_numpy(bool))
    value = np.where(missing, np.nan, value)
    no_meter = (meter == "").to_numpy(bool)
    no_channel = (channel == "").to_numpy(bool)

    checks = [
        (no_meter, "meter", "ingest.malformed_row", "the meter serial is empty"),
        (no_channel, "channel", "ingest.malformed_row", "the channel is empty"),
        (ts_bad, "start", "ingest.bad_timestamp", "not an ISO-8601 timestamp"),
        (ts_naive, "start", "ingest.naive_timestamp", "the timestamp has no offset; add Z or +05:30"),
        (v_bad, "value", "ingest.bad_value", "not a finite decimal number"),
        (q_bad, "quality", "ingest.bad_value", "not a quality bit mask or flag name"),
    ]
    reject = np.zeros(len(df), bool)
    raw_cols = {"meter": meter, "channel": channel, "start": df["start"], "value": df["value"]}
    for mask, col, code, msg in checks:
        idx = np.flatnonzero(mask)
        if not len(idx):
            continue
        reject |= mask
        shown = df[col].to_numpy(object)[idx] if col in df.columns else raw_cols[col].to_numpy(object)[idx]
        problems += problems_at(
            line_no[idx], [col] * len(idx), code, [f"{msg}: {str(s)[:60]!r}" for s in shown], source
        )
    good = ~reject
    frame = pd.DataFrame(
        {
            "meter": meter.to_numpy(object)[good],
            "channel": channel.to_numpy(object)[good],
            "ts_us": ts_us[good],
            "step": np.full(int(good.sum()), -1, np.int64),
            "value": value[good],
            "quality": quality[good].astype(np.int64),
            "section": np.full(int(good.sum()), SECTION_CSV, np.int8),
            "interval_s": np.zeros(int(good.sum()), np.int64),
            "line": line_no[good],
        }
    )
    problems.sort(key=lambda p: p.line or 0)
    return ParsedReadings(
        format="csv",
        frame=frame,
        rows_total=len(data_lines),
        rows_rejected=len(bad_lines) + int(reject.sum()),
        problems=problems,
        source=source,
    )
