"""JSON reading files: interval blocks, register reads and events (see ``docs/formats.md``).

Problems are located by JSON path (``readings[3].values[17]``) in ``Problem.field`` and by the item
index in ``Problem.line``. Loops run per block or per register/event item; the values inside
blocks are converted in one vectorised pass.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from meter2cash.core.errors import M2CError, Problem
from meter2cash.core.jsonsafe import loads_bounded
from meter2cash.mdm.formats.readings_parsed import (
    SECTION_READINGS,
    SECTION_REGISTERS,
    ParsedEvent,
    ParsedReadings,
    decode_text,
    empty_frame,
    parse_numbers,
    parse_timestamps,
)


def _section(doc: dict[str, Any], key: str, source: str) -> list[Any]:
    items = doc.get(key, [])
    if not isinstance(items, list):
        raise M2CError(f"{source or 'the file'}: {key!r} must be a list", code="ingest.bad_file")
    return items


def _text(item: Any, key: str) -> str | None:
    v = item.get(key) if isinstance(item, dict) else None
    return v.strip() if isinstance(v, str) and v.strip() else None


def parse_json(data: bytes, *, source: str = "") -> ParsedReadings:
    """Parse a JSON reading file; unreadable JSON or a wrong top-level shape raises ``ingest.bad_file``."""
    text = decode_text(data, source)
    try:
        doc = loads_bounded(text)
    except json.JSONDecodeError as exc:
        raise M2CError(
            f"{source or 'the file'} is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}",
            code="ingest.bad_file",
        ) from exc
    if not isinstance(doc, dict):
        raise M2CError(
            f"{source or 'the file'}: a reading JSON file is an object with readings/registers/events",
            code="ingest.bad_file",
        )
    problems: list[Problem] = []

    def bad(code: str, msg: str, line: int, fld: str) -> None:
        problems.append(Problem(code=code, message=msg, line=line, field=fld, source=source or None))

    # --- interval blocks: checked per block, values converted in one pass ------------------------
    blocks = _section(doc, "readings", source)
    rows_total, rejected = 0, 0
    ok_blocks: list[tuple[int, str, str, Any, int, list[Any]]] = []
    for i, b in enumerate(blocks):
        vals = b.get("values") if isinstance(b, dict) else None
        n = len(vals) if isinstance(vals, list) else 1
        rows_total += n
        meter, channel = _text(b, "meter"), _text(b, "channel")
        step = b.get("interval_s", 0) if isinstance(b, dict) else 0
        why = None
        if not isinstance(b, dict):
            why = ("", "a readings item must be an object")
        elif meter is None or channel is None:
            why = ("meter" if meter is None else "channel", "missing or empty")
        elif not isinstance(vals, list):
            why = ("values", "values must be a list (null for a missing interval)")
        elif step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
            why = ("interval_s", "interval_s must be a positive whole number of seconds")
        if why is not None:
            bad("ingest.malformed_row", why[1], i, f"readings[{i}].{why[0]}".rstrip("."))
            rejected += n
            continue
        assert isinstance(vals, list) and meter is not None and channel is not None
        ok_blocks.append((i, meter, channel, b.get("start"), int(step or 0), vals))

    starts = pd.Series([str(b[3]) if b[3] is not None else "" for b in ok_blocks], dtype=object)
    start_us, start_bad, start_naive = parse_timestamps(starts)
    keep_block = ~(start_bad | start_naive)
    for k in np.flatnonzero(~keep_block):
        i, n = ok_blocks[k][0], len(ok_blocks[k][5])
        if start_bad[k]:
            bad(
                "ingest.bad_timestamp",
                f"not an ISO-8601 timestamp: {starts[k][:60]!r}",
                i,
                f"readings[{i}].start",
            )
        else:
            bad(
                "ingest.naive_timestamp",
                f"the timestamp has no offset: {starts[k]!r}",
                i,
                f"readings[{i}].start",
            )
        rejected += n
    kept = [b for b, keep in zip(ok_blocks, keep_block, strict=True) if keep]
    sizes = np.array([len(b[5]) for b in kept], dtype=np.int64)
    flat: list[Any] = []
    for b in kept:
        flat.extend(b[5])
    raw = pd.Series(flat, dtype=object)
    is_null = raw.isna().to_numpy(bool)
    value, v_bad = parse_numbers(raw)
    v_bad &= ~is_null
    block_of = np.repeat(np.arange(len(kept)), sizes)
    step_no = np.arange(len(flat), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    for j in np.flatnonzero(v_bad):
        i = kept[block_of[j]][0]
        bad(
            "ingest.bad_value",
            f"not a finite number: {str(flat[j])[:60]!r}",
            i,
            f"readings[{i}].values[{step_no[j]}]",
        )
    rejected += int(v_bad.sum())
    good = ~v_bad & ~is_null
    line_of_block = np.array([b[0] for b in kept], dtype=np.int64)
    frames = [
        pd.DataFrame(
            {
                "meter": np.array([b[1] for b in kept], dtype=object)[block_of[good]],
                "channel": np.array([b[2] for b in kept], dtype=object)[block_of[good]],
                "ts_us": start_us[keep_block][block_of[good]],
                "step": step_no[good],
                "value": value[good],
                "quality": np.zeros(int(good.sum()), np.int64),
                "section": np.full(int(good.sum()), SECTION_READINGS, np.int8),
                "interval_s": np.array([b[4] for b in kept], np.int64)[block_of[good]],
                "line": line_of_block[block_of[good]],
            }
        )
    ]

    # --- register reads -------------------------------------------------------------------------
    regs = _section(doc, "registers", source)
    rows_total += len(regs)
    reg_rows: list[tuple[int, str, str, str, Any]] = []
    for i, r in enumerate(regs):
        meter, channel = _text(r, "meter"), _text(r, "channel")
        if meter is None or channel is None:
            bad(
                "ingest.malformed_row",
                "missing or empty",
                i,
                f"registers[{i}].{'meter' if meter is None else 'channel'}",
            )
            rejected += 1
            continue
        reg_rows.append((i, meter, channel, str(r.get("read_at") or ""), r.get("value")))
    if reg_rows:
        r_us, r_bad, r_naive = parse_timestamps(pd.Series([r[3] for r in reg_rows], dtype=object))
        r_val, r_vbad = parse_numbers(
            pd.Series(["x" if isinstance(r[4], bool) else r[4] for r in reg_rows], dtype=object)
        )
        for pos, r in enumerate(reg_rows):  # one loop per register item: these are few
            n_item = r[0]
            if r_bad[pos]:
                bad(
                    "ingest.bad_timestamp",
                    f"not an ISO-8601 timestamp: {r[3][:60]!r}",
                    n_item,
                    f"registers[{n_item}].read_at",
                )
            elif r_naive[pos]:
                bad(
                    "ingest.naive_timestamp",
                    f"the timestamp has no offset: {r[3]!r}",
                    n_item,
                    f"registers[{n_item}].read_at",
                )
            if r_vbad[pos]:
                bad(
                    "ingest.bad_value",
                    f"not a finite number: {str(r[4])[:60]!r}",
                    n_item,
                    f"registers[{n_item}].value",
                )
        ok = ~(r_bad | r_naive | r_vbad)
        rejected += int((~ok).sum())
        frames.append(
            pd.DataFrame(
                {
                    "meter": np.array([r[1] for r in reg_rows], dtype=object)[ok],
                    "channel": np.array([r[2] for r in reg_rows], dtype=object)[ok],
                    "ts_us": r_us[ok],
                    "step": np.full(int(ok.sum()), -1, np.int64),
                    "value": r_val[ok],
                    "quality": np.zeros(int(ok.sum()), np.int64),
                    "section": np.full(int(ok.sum()), SECTION_REGISTERS, np.int8),
                    "interval_s": np.zeros(int(ok.sum()), np.int64),
                    "line": np.array([r[0] for r in reg_rows], dtype=np.int64)[ok],
                }
            )
        )

    # --- events ---------------------------------------------------------------------------------
    evs = _section(doc, "events", source)
    rows_total += len(evs)
    events: list[ParsedEvent] = []
    if evs:
        at_us, at_bad, at_naive = parse_timestamps(
            pd.Series(
                [str(e.get("occurred_at") or "") if isinstance(e, dict) else "" for e in evs], dtype=object
            )
        )
        for i, e in enumerate(evs):
            meter = _text(e, "meter")
            code = str(e.get("code") or "").strip() if isinstance(e, dict) else ""
            if not isinstance(e, dict) or meter is None or not code:
                bad(
                    "ingest.malformed_row",
                    "missing or empty",
                    i,
                    f"events[{i}].{'meter' if meter is None else 'code'}",
                )
            elif at_bad[i] or at_naive[i]:
                code_ = "ingest.bad_timestamp" if at_bad[i] else "ingest.naive_timestamp"
                bad(
                    code_,
                    f"occurred_at {str(e.get('occurred_at'))[:60]!r} is not an ISO-8601 time with an offset",
                    i,
                    f"events[{i}].occurred_at",
                )
            else:
                extra: dict[str, Any] = e["data"] if isinstance(e.get("data"), dict) else {}
                events.append(
                    ParsedEvent(
                        i,
                        meter,
                        int(at_us[i]),
                        code[:32],
                        str(e.get("category") or "")[:32],
                        str(e.get("description") or "")[:200],
                        extra,
                    )
                )
                continue
            rejected += 1

    frame = pd.concat([empty_frame(), *frames], ignore_index=True) if frames else empty_frame()
    frame = frame.astype(
        {
            "ts_us": np.int64,
            "step": np.int64,
            "quality": np.int64,
            "interval_s": np.int64,
            "line": np.int64,
            "section": np.int8,
        }
    )
    declared = doc.get("source")
    return ParsedReadings(
        format="json",
        frame=frame,
        rows_total=rows_total,
        rows_rejected=rejected,
        problems=problems,
        events=events,
        source=source,
        declared_source=declared if isinstance(declared, str) else "",
    )
