"""The measurement store: interval data per channel per UTC day, as NumPy arrays.

Reads return dense ``(channels, intervals)`` arrays for any window, across day borders. Writes
are merges: received values go into ``raw_values`` (never touched by VEE); VEE results go into
``values``/``flags``. Every change bumps the day's version and keeps the old row in history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Date,
    Integer,
    Table,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from meter2cash.core.errors import Conflict
from meter2cash.core.quality import FLAG_DTYPE, Quality
from meter2cash.core.timeutil import (
    day_start,
    ensure_aware,
    epoch_seconds,
    slots_per_day,
    utc_days,
    utcnow,
)
from meter2cash.db import UTCDateTime
from meter2cash.db_query import CHUNK
from meter2cash.mdm.models import ChannelDay, ChannelDayHistory

F64 = np.dtype("<f8")
U16 = np.dtype("<u2")

FloatArray = npt.NDArray[np.float64]
FlagArray = npt.NDArray[np.uint16]


def encode_values(a: FloatArray) -> bytes:
    return np.ascontiguousarray(a, dtype=F64).tobytes()


def encode_flags(a: npt.NDArray[np.integer]) -> bytes:
    return np.ascontiguousarray(a, dtype=U16).tobytes()


def decode_values(b: bytes) -> FloatArray:
    return np.frombuffer(b, dtype=F64).astype(np.float64)


def decode_flags(b: bytes) -> FlagArray:
    return np.frombuffer(b, dtype=U16).astype(FLAG_DTYPE)


@dataclass(slots=True)
class DayArrays:
    """One channel-day in memory. ``version`` 0 means not stored yet."""

    channel_id: int
    day: date
    interval_s: int
    raw: FloatArray
    values: FloatArray
    flags: FlagArray
    version: int = 0
    vee_status: str = "raw"
    vee_run_id: int | None = None
    batch_id: int | None = None

    @classmethod
    def empty(cls, channel_id: int, day: date, interval_s: int) -> DayArrays:
        n = slots_per_day(interval_s)
        return cls(
            channel_id,
            day,
            interval_s,
            raw=np.full(n, np.nan),
            values=np.full(n, np.nan),
            flags=np.full(n, Quality.MISSING, dtype=FLAG_DTYPE),
        )

    @classmethod
    def from_row(cls, row: Any) -> DayArrays:
        """From a ``channel_day`` row (an ORM object or a Core row with the same names)."""
        return cls(
            row.channel_id,
            row.day,
            row.interval_s,
            raw=decode_values(row.raw_values),
            values=decode_values(row.values),
            flags=decode_flags(row.flags),
            version=row.version,
            vee_status=row.vee_status,
            vee_run_id=row.vee_run_id,
            batch_id=row.batch_id,
        )


#: The columns a :class:`DayArrays` is built from, selected as plain rows (no ORM objects).
_DAY_COLUMNS = tuple(c for c in ChannelDay.__table__.c if c.name not in ("received", "updated_at"))


@dataclass(slots=True)
class Window:
    """Dense interval data of several channels over ``[start, start + n*interval_s)``.

    ``values``/``flags``/``raw`` have shape ``(len(channel_ids), n)``; missing intervals are NaN
    with :attr:`Quality.MISSING`. ``versions`` maps ``(channel_id, day)`` to the version read.
    """

    channel_ids: list[int]
    start: datetime
    interval_s: int
    values: FloatArray
    flags: FlagArray
    raw: FloatArray
    versions: Mapping[tuple[int, date], int]

    @property
    def n_intervals(self) -> int:
        return int(self.values.shape[1])

    def days_of(self, channel_ids: Iterable[int]) -> dict[int, list[tuple[date, int]]]:
        """The channel-days read of some channels: channel → [(UTC day, version)]."""
        wanted = set(channel_ids)
        out: dict[int, list[tuple[date, int]]] = {c: [] for c in wanted}
        if isinstance(self.versions, DayVersions):
            return self.versions.days_of(wanted, out)
        for (cid, day), ver in self.versions.items():
            if cid in wanted:
                out[cid].append((day, ver))
        return out

    def version_totals(self) -> dict[int, tuple[int, int]]:
        """Channel → (channel-days read, sum of their versions): a fingerprint of the data read."""
        if isinstance(self.versions, DayVersions):
            return self.versions.totals()
        out: dict[int, tuple[int, int]] = {}
        for (cid, _), ver in self.versions.items():
            days, total = out.get(cid, (0, 0))
            out[cid] = (days + 1, total + ver)
        return out

    def starts(self) -> npt.NDArray[np.int64]:
        """Epoch seconds of every interval start."""
        return epoch_seconds(self.start) + np.arange(self.n_intervals, dtype=np.int64) * self.interval_s

    def row(self, channel_id: int) -> int:
        return self.channel_ids.index(channel_id)


class DayVersions(Mapping[tuple[int, date], int]):
    """``(channel_id, day) → version`` kept as arrays (channel ids, day numbers since ``epoch``,
    versions); the dict is built only when looked into, and :meth:`totals` needs none."""

    __slots__ = ("_channels", "_days", "_dict", "_epoch", "_versions")

    def __init__(self, channels: npt.NDArray[np.int64], days: npt.NDArray[np.int64],
                 versions: npt.NDArray[np.int64], epoch: date) -> None:  # fmt: skip
        self._channels, self._days, self._versions, self._epoch = channels, days, versions, epoch
        self._dict: dict[tuple[int, date], int] | None = None

    def _built(self) -> dict[tuple[int, date], int]:
        if self._dict is None:
            day = (np.datetime64(self._epoch, "D") + self._days).tolist()
            keys = zip(self._channels.tolist(), day, strict=True)
            self._dict = dict(zip(keys, self._versions.tolist(), strict=True))
        return self._dict

    def __getitem__(self, key: tuple[int, date]) -> int:
        return self._built()[key]

    def __iter__(self) -> Any:
        return iter(self._built())

    def __len__(self) -> int:
        return int(self._channels.size)

    def days_of(
        self, wanted: set[int], out: dict[int, list[tuple[date, int]]]
    ) -> dict[int, list[tuple[date, int]]]:
        """Add the (day, version) pairs of the ``wanted`` channels to ``out``."""
        sel = np.flatnonzero(np.isin(self._channels, np.fromiter(wanted, dtype=np.int64, count=len(wanted))))
        day = (np.datetime64(self._epoch, "D") + self._days[sel]).tolist()
        for c, d, v in zip(self._channels[sel].tolist(), day, self._versions[sel].tolist(), strict=True):
            out[c].append((d, v))
        return out

    def totals(self) -> dict[int, tuple[int, int]]:
        """Channel → (days, sum of versions), column-wise."""
        if not self._channels.size:
            return {}
        cids, inverse = np.unique(self._channels, return_inverse=True)
        days = np.bincount(inverse, minlength=cids.size)
        total = np.bincount(inverse, weights=self._versions, minlength=cids.size).astype(np.int64)
        return dict(zip(cids.tolist(), zip(days.tolist(), total.tolist(), strict=True), strict=True))


@dataclass(slots=True)
class MergeCounts:
    """What a merge of received values did, in intervals."""

    new: int = 0
    changed: int = 0
    duplicate: int = 0
    days_written: int = 0

    def __iadd__(self, other: MergeCounts) -> MergeCounts:
        self.new += other.new
        self.changed += other.changed
        self.duplicate += other.duplicate
        self.days_written += other.days_written
        return self


def merge_received(
    day: DayArrays, slots: npt.NDArray[np.intp], values: FloatArray, *, keep_stored: bool = False
) -> tuple[DayArrays | None, MergeCounts]:
    """Merge received ``values`` at ``slots`` into ``day`` (pure).

    A value equal to the one already received is a duplicate and changes nothing; a differing
    value replaces the earlier one (the newer receipt wins; the older stays in history and IMD).
    With ``keep_stored`` every interval received before is kept and counted as a duplicate.
    Returns the new day (``None`` if nothing changed) and the counts.
    """
    old = day.raw[slots]
    had = ~np.isnan(old)
    same = had & (keep_stored | np.isclose(old, values, rtol=0.0, atol=1e-9))
    counts = MergeCounts(new=int((~had).sum()), changed=int((had & ~same).sum()), duplicate=int(same.sum()))
    if keep_stored:
        slots, values = slots[~had], values[~had]
    if counts.new == 0 and counts.changed == 0:
        return None, counts
    raw = day.raw.copy()
    raw[slots] = values
    flags = np.where(np.isnan(raw), FLAG_DTYPE(Quality.MISSING), FLAG_DTYPE(Quality.RAW))
    merged = DayArrays(
        day.channel_id,
        day.day,
        day.interval_s,
        raw=raw,
        values=raw.copy(),
        flags=flags,
        version=day.version,
        vee_status="raw",
    )
    counts.days_written = 1
    return merged, counts


class MeasurementStore:
    """Reads and writes channel-days through a SQLAlchemy session (the caller owns the transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- reading ----------------------------------------------------------------------------

    def load_days(
        self, keys: Iterable[tuple[int, date]], *, for_update: bool = False
    ) -> dict[tuple[int, date], DayArrays]:
        """Stored channel-days for the given ``(channel_id, day)`` keys (absent keys are skipped)."""
        keys = list(keys)
        found: dict[tuple[int, date], DayArrays] = {}
        pg = self.session.get_bind().dialect.name == "postgresql"
        for i in range(0, len(keys), CHUNK):
            stmt = select(*_DAY_COLUMNS).where(_key_filter(keys[i : i + CHUNK], pg))
            if for_update:
                stmt = stmt.with_for_update()
            for row in self.session.execute(stmt).all():
                found[(row.channel_id, row.day)] = DayArrays.from_row(row)
        return found

    def days_between(self, channel_ids: Sequence[int], first: date, last: date) -> list[DayArrays]:
        """Every stored channel-day of ``channel_ids`` from ``first`` to ``last`` inclusive."""
        out: list[DayArrays] = []
        ids = list(channel_ids)
        for i in range(0, len(ids), CHUNK):
            stmt = select(*_DAY_COLUMNS).where(
                ChannelDay.channel_id.in_(ids[i : i + CHUNK]),
                ChannelDay.day >= first,
                ChannelDay.day <= last,
            )
            out.extend(DayArrays.from_row(row) for row in self.session.execute(stmt))
        return out

    def read_window(
        self,
        channel_ids: Sequence[int],
        start: datetime,
        end: datetime,
        interval_s: int,
        *,
        include_raw: bool = True,
    ) -> Window:
        """Dense arrays for ``channel_ids`` over ``[start, end)`` at ``interval_s`` resolution.

        ``start`` and ``end`` must fall on interval boundaries. Channels stored at another
        interval length are refused (convert them explicitly). ``include_raw=False`` skips the
        received values (``Window.raw`` is then a read-only array of NaN): billing and prepaid need only the
        validated ones, and it halves what is read.
        """
        start, end = ensure_aware(start, "start"), ensure_aware(end, "end")
        spd = slots_per_day(interval_s)
        days = utc_days(start, end)
        ids = list(channel_ids)
        n_rows = len(ids)
        if not days:
            empty = np.empty((n_rows, 0))
            return Window(ids, start, interval_s, empty, empty.astype(FLAG_DTYPE), empty.copy(), {})
        first = days[0]
        offset = (epoch_seconds(start) - epoch_seconds(day_start(first))) // interval_s
        n = (epoch_seconds(end) - epoch_seconds(start)) // interval_s
        if (epoch_seconds(start) - epoch_seconds(day_start(first))) % interval_s or (
            epoch_seconds(end) - epoch_seconds(start)
        ) % interval_s:
            raise ValueError(f"window {start}..{end} is not aligned to {interval_s} s intervals")
        total = len(days) * spd
        values = np.full((n_rows, total), np.nan)
        # without received values, one shared read-only NaN array stands for them
        raw = np.full((n_rows, total), np.nan) if include_raw else np.broadcast_to(np.nan, (n_rows, total))
        flags = np.full((n_rows, total), Quality.MISSING, dtype=FLAG_DTYPE)
        row_of = {cid: r for r, cid in enumerate(ids)}
        versions: dict[tuple[int, date], int] = {}
        grouped_versions: list[tuple[list[int], list[int], list[int]]] = []
        t = ChannelDay.__table__.c
        cols = [t.channel_id, t.day, t.version, t.interval_s, t["values"], t.flags]
        if include_raw:
            cols.append(t.raw_values)
        grouped = self._grouped_reader()
        for i in range(0, n_rows, CHUNK):
            part = ids[i : i + CHUNK]
            if grouped is not None:
                rows = grouped(part, first, days[-1], interval_s, include_raw)
                part_versions = _scatter(
                    rows, row_of, first, spd, values, flags, raw if include_raw else None
                )
                grouped_versions.append(part_versions)
                continue
            stmt = select(*cols).where(t.channel_id.in_(part), t.day >= first, t.day <= days[-1])
            # Rows decode straight into the window: no per-day objects, one copy per array.
            for row in self.session.execute(stmt).all():
                if row[3] != interval_s:
                    raise ValueError(f"channel {row[0]} is stored at {row[3]} s, not {interval_s} s")
                r, c = row_of[row[0]], (row[1] - first).days * spd
                values[r, c : c + spd] = np.frombuffer(row[4], dtype=F64)
                flags[r, c : c + spd] = np.frombuffer(row[5], dtype=U16)
                if include_raw:
                    raw[r, c : c + spd] = np.frombuffer(row[6], dtype=F64)
                versions[(row[0], row[1])] = row[2]
        sl = slice(int(offset), int(offset + n))
        if grouped is not None:
            cols3 = [
                np.asarray([x for g in grouped_versions for x in g[k]], dtype=np.int64) for k in range(3)
            ]
            lazy = DayVersions(cols3[0], cols3[1], cols3[2], first)
            return Window(ids, start, interval_s, values[:, sl], flags[:, sl], raw[:, sl], lazy)
        return Window(ids, start, interval_s, values[:, sl], flags[:, sl], raw[:, sl], versions)

    def _grouped_reader(self) -> Any:
        """On PostgreSQL, a reader of one row per channel (see :func:`_grouped_channel_days`);
        ``None`` elsewhere."""
        conn = self.session.connection()
        if conn.dialect.name != "postgresql":
            return None
        raw_conn = conn.connection.driver_connection

        def read(ids: list[int], first: date, last: date, interval_s: int, include_raw: bool) -> Any:
            return _grouped_channel_days(raw_conn, ids, first, last, interval_s, include_raw)

        return read

    # --- writing ----------------------------------------------------------------------------

    def save(self, days: Sequence[DayArrays], *, reason: str) -> None:
        """Store changed channel-days: insert new ones, supersede stored ones (old row → history).

        ``reason`` is recorded in history (``ingest``, ``vee``, ``edit``…). A stored day is only
        superseded if it is still at the version the caller read (``DayArrays.version``): when
        another transaction changed it meanwhile (new data arrived while VEE ran), nothing is
        written and :class:`Conflict` ``store.version_conflict`` is raised, so that accepted data
        is never overwritten by a stale copy. The caller's transaction should be rolled back.
        """
        if not days:
            return
        now = utcnow()
        new = [d for d in days if d.version == 0]
        old = [d for d in days if d.version > 0]
        if old:
            expected = {(d.channel_id, d.day): d.version for d in old}
            keys = list(expected)
            t = ChannelDay.__table__.c
            pg = self.session.get_bind().dialect.name == "postgresql"
            found: dict[tuple[int, date], int] = {}
            for i in range(0, len(keys), CHUNK):  # lock the rows; only their versions travel
                where = _key_filter(keys[i : i + CHUNK], pg)
                rows = self.session.execute(
                    select(t.channel_id, t.day, t.version).where(where).with_for_update()
                )
                found.update(((c, d), v) for c, d, v in rows)
            stale = [k for k, v in found.items() if v != expected[k]]
            if stale or len(found) != len(keys):
                raise Conflict(
                    f"{len(stale) or len(keys) - len(found)} channel-day(s) changed since they were read "
                    f"(first: channel {(stale or keys)[0][0]}, {(stale or keys)[0][1]}); nothing was saved",
                    code="store.version_conflict",
                    days=len(stale),
                )
            # the superseded rows go to history inside the database, without a round trip
            h = cast(Table, ChannelDayHistory.__table__)
            for i in range(0, len(keys), CHUNK):
                where = _key_filter(keys[i : i + CHUNK], pg)
                kept = select(*(t[c] for c in _HISTORY_COLUMNS), literal(now, UTCDateTime()), literal(reason))
                self.session.execute(
                    insert(h).from_select([*_HISTORY_COLUMNS, "superseded_at", "reason"], kept.where(where))
                )
            changed = [
                {"channel_id": d.channel_id, "day": d.day, **self._columns(d, now), "version": d.version + 1}
                for d in old
            ]
            if pg:
                _update_days_pg(self.session.connection().connection.driver_connection, changed)
            else:
                self.session.execute(update(ChannelDay), changed)
        if new:
            self.session.execute(
                insert(ChannelDay),
                [
                    {"channel_id": d.channel_id, "day": d.day, **self._columns(d, now), "version": 1}
                    for d in new
                ],
            )
        for d in days:
            d.version += 1

    @staticmethod
    def _columns(d: DayArrays, now: datetime) -> dict[str, object]:
        return {
            "interval_s": d.interval_s,
            "raw_values": encode_values(d.raw),
            "values": encode_values(d.values),
            "flags": encode_flags(d.flags),
            "received": int((~np.isnan(d.raw)).sum()),
            "vee_status": d.vee_status,
            "vee_run_id": d.vee_run_id,
            "batch_id": d.batch_id,
            "updated_at": now,
        }

    def merge(
        self,
        received: Mapping[tuple[int, date], tuple[npt.NDArray[np.intp], FloatArray]],
        interval_of: Mapping[int, int],
        *,
        batch_id: int | None = None,
        keep_stored: bool = False,
    ) -> MergeCounts:
        """Merge received values ``{(channel_id, day): (slots, values)}`` into the store
        (``keep_stored``: fill only intervals with nothing received yet, see :func:`merge_received`)."""
        stored = self.load_days(received.keys(), for_update=True)
        total = MergeCounts()
        changed: list[DayArrays] = []
        for key, (slots, vals) in received.items():
            day = stored.get(key) or DayArrays.empty(key[0], key[1], interval_of[key[0]])
            merged, counts = merge_received(day, slots, vals, keep_stored=keep_stored)
            total += counts
            if merged is not None:
                merged.batch_id = batch_id
                changed.append(merged)
        self.save(changed, reason="ingest")
        return total

    def history(self, channel_id: int, day: date) -> list[ChannelDayHistory]:
        stmt = (
            select(ChannelDayHistory)
            .where(ChannelDayHistory.channel_id == channel_id, ChannelDayHistory.day == day)
            .order_by(ChannelDayHistory.version)
        )
        return list(self.session.scalars(stmt))

    def pending_days(self, first: date, last: date) -> list[tuple[int, date]]:
        """Channel-days in ``[first, last]`` received since their last validation."""
        stmt = select(ChannelDay.channel_id, ChannelDay.day).where(
            ChannelDay.vee_status == "raw", ChannelDay.day >= first, ChannelDay.day <= last
        )
        return [(r[0], r[1]) for r in self.session.execute(stmt)]

    def delete_channel(self, channel_id: int) -> None:
        self.session.execute(delete(ChannelDay).where(ChannelDay.channel_id == channel_id))


#: Columns a superseded channel-day keeps in ``channel_day_history``.
_HISTORY_COLUMNS = [
    "channel_id", "day", "version", "interval_s", "raw_values", "values", "flags", "vee_status",
    "vee_run_id", "batch_id",
]  # fmt: skip

#: Changed channel-days in one statement: the new rows as arrays, joined on the key.
_UPDATE_DAYS_SQL = """
UPDATE channel_day AS c SET interval_s = v.interval_s, raw_values = v.raw_values, "values" = v."values",
    flags = v.flags, received = v.received, vee_status = v.vee_status, vee_run_id = v.vee_run_id,
    batch_id = v.batch_id, updated_at = v.updated_at, version = v.version
FROM unnest(%b::int[], %b::date[], %b::int[], %b::bytea[], %b::bytea[], %b::bytea[], %b::int[],
            %b::varchar[], %b::int[], %b::int[], %b::timestamptz[], %b::int[])
    AS v(channel_id, day, interval_s, raw_values, "values", flags, received, vee_status, vee_run_id,
         batch_id, updated_at, version)
WHERE c.channel_id = v.channel_id AND c.day = v.day
"""

_UPDATE_FIELDS = [
    "channel_id", "day", "interval_s", "raw_values", "values", "flags", "received", "vee_status",
    "vee_run_id", "batch_id", "updated_at", "version",
]  # fmt: skip


def _key_filter(keys: list[tuple[int, date]], pg: bool) -> Any:
    """``(channel_id, day) IN keys``; on PostgreSQL as two array parameters (``unnest``), not
    thousands of literal pairs for the server to parse and plan. SQLite scans the whole table for
    a row-value ``IN`` list, so there it is one ``day = ? AND channel_id IN (…)`` term per day
    (each a search of the primary key)."""
    t = ChannelDay.__table__.c
    if not pg:
        by_day: dict[date, list[int]] = {}
        for channel_id, day in keys:
            by_day.setdefault(day, []).append(channel_id)
        return or_(false(), *(and_(t.day == d, t.channel_id.in_(ids)) for d, ids in sorted(by_day.items())))
    ids = cast_(bindparam("key_channels", [k[0] for k in keys], type_=ARRAY(Integer)), ARRAY(Integer))
    days = cast_(bindparam("key_days", [k[1] for k in keys], type_=ARRAY(Date)), ARRAY(Date))
    wanted = func.unnest(ids, days).table_valued("channel_id", "day").render_derived(name="wanted")
    return tuple_(t.channel_id, t.day).in_(select(wanted.c.channel_id, wanted.c.day))


def _update_days_pg(raw_conn: Any, rows: list[dict[str, Any]]) -> None:
    """Update stored channel-days on PostgreSQL: one ``UPDATE … FROM unnest(arrays)`` per
    :data:`CHUNK` rows instead of one statement per row (arrays sent in binary)."""
    with raw_conn.cursor() as cur:
        for i in range(0, len(rows), CHUNK):
            part = rows[i : i + CHUNK]
            cur.execute(_UPDATE_DAYS_SQL, [[r[f] for r in part] for f in _UPDATE_FIELDS])
            if cur.rowcount != len(part):
                raise Conflict(
                    f"{len(part) - cur.rowcount} channel-day(s) vanished while being saved",
                    code="store.version_conflict",
                    days=len(part) - cur.rowcount,
                )


# --- PostgreSQL: one row per channel ---------------------------------------------------------

_PG_EPOCH = date(2000, 1, 1)

#: The channel-days of each channel aggregated on the server into one row, read in binary (no
#: hex text for ``bytea``): a thousand Python steps per thousand channels instead of one per day.
#: The aggregates of one group see its rows in the same order, so the i-th day, version and
#: slice of the concatenated arrays belong together (no sort is needed; days place the slices).
_GROUPED_SQL = """
SELECT channel_id, min(interval_s), max(interval_s), array_agg(day - DATE '2000-01-01'),
       array_agg(version), string_agg("values", ''::bytea), string_agg(flags, ''::bytea){raw}
FROM channel_day WHERE channel_id = ANY(%s) AND day >= %s AND day <= %s
GROUP BY channel_id
"""

Grouped = list[tuple[Any, ...]]


def _grouped_channel_days(
    conn: Any, ids: list[int], first: date, last: date, interval_s: int, include_raw: bool
) -> Grouped:
    """Per channel of ``ids`` with data in ``first..last``: ``(channel_id, min interval, max
    interval, days since 2000, versions, values bytes, flags bytes[, raw bytes])``. A channel
    stored at another interval length is refused, by name."""
    raw = ", string_agg(raw_values, ''::bytea)" if include_raw else ""
    with conn.cursor(binary=True) as cur:
        cur.execute(_GROUPED_SQL.format(raw=raw), (list(ids), first, last))
        rows: Grouped = cur.fetchall()
    for row in rows:
        if row[1] != interval_s or row[2] != interval_s:
            other = row[1] if row[1] != interval_s else row[2]
            raise ValueError(f"channel {row[0]} is stored at {other} s, not {interval_s} s")
    return rows


def _scatter(
    rows: Grouped,
    row_of: dict[int, int],
    first: date,
    spd: int,
    values: FloatArray,
    flags: FlagArray,
    raw: FloatArray | None,
) -> tuple[list[int], list[int], list[int]]:
    """Place per-channel rows into the window's ``(rows, days × spd)`` arrays; return the
    channel ids, days since ``first`` and versions of the channel-days placed."""
    if not rows:
        return [], [], []
    n_rows, n_days = values.shape[0], values.shape[1] // spd
    v3 = values.reshape(n_rows, n_days, spd)
    f3 = flags.reshape(n_rows, n_days, spd)
    r3 = None if raw is None else raw.reshape(n_rows, n_days, spd)
    off = (first - _PG_EPOCH).days
    cids: list[int] = []
    days: list[int] = []
    vers: list[int] = []
    for row in rows:
        r, k = row_of[row[0]], len(row[3])
        d = np.asarray(row[3], dtype=np.int64) - off
        v3[r, d] = np.frombuffer(row[5], dtype=F64).reshape(k, spd)
        f3[r, d] = np.frombuffer(row[6], dtype=U16).reshape(k, spd)
        if r3 is not None:
            r3[r, d] = np.frombuffer(row[7], dtype=F64).reshape(k, spd)
        cids += [row[0]] * k
        days += row[3]
        vers += row[4]
    return cids, [d - off for d in days], vers
