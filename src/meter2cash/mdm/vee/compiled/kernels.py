"""Fused VEE kernels: the whole rule set, estimation and quality flags, one pass per channel row.

The rule functions of :mod:`meter2cash.mdm.vee.rules` and the estimation methods of
:mod:`meter2cash.mdm.vee.estimation` are whole-array NumPy kernels: clear, and each one checked on
its own, but a rule set of some twenty rules then costs some fifty passes over every array. The
kernels here, compiled with Numba (single-threaded, ``cache=True``), walk each channel row once and
compute every enabled rule in that walk: the runs of each rule with their data (run length, extreme value,
thresholds...) and the REJECTED / SUSPECT masks of the rule set's actions. The wrappers in
:mod:`.fused` and :mod:`meter2cash.mdm.vee.estimation` build the findings from the run arrays
they return.

Results equal the separate functions exactly (property tests compare them on random arrays):
the same comparisons in the same floating-point order, including NumPy's pairwise summation
(:func:`pairwise_sum`) wherever NumPy sums along the last axis.

Rule numbers (``R_*``) are the order in which :func:`meter2cash.mdm.vee.evaluate.evaluate` lists
findings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

# rule numbers, in the order evaluate() lists findings
R_MISSING = 0
R_NEGATIVE = 1
R_SPIKE = 2
R_STUCK = 3
R_ZERO = 4
R_SUM = 5
R_HIGH = 6
R_LOW = 7
R_DYNAMIC = 8
R_SIZE = 9
R_UNIT = 10
R_MULTIPLIER = 11
R_INACTIVE = 12
R_DUPLICATE = 13
R_REPLACED = 14
R_KEPT = 15
N_RULES = 16

# what a rule's action does to the intervals it finds
ACT_INFO = 0
ACT_SUSPECT = 1
ACT_REJECT = 2

# float parameters of evaluate_rows
F_SPIKE_FLOOR = 0
F_SPIKE_FACTOR = 1
F_SPIKE_QUANTILE = 2
F_SPIKE_NEIGHBOUR = 3
F_SUM_TOL = 4
F_SUM_TOL_REL = 5
F_HIGH = 6
F_LOW = 7
F_COVERAGE = 8
F_DYN_Z = 9
F_DYN_FLOOR = 10
N_FLOAT_PARAMS = 11

# integer parameters of evaluate_rows
I_SPD = 0
I_STUCK_MIN = 1
I_ZERO_MIN = 2
I_HL_MIN_DAYS = 3
I_DYN_MIN_DAYS = 4
I_ESTIMATED_BIT = 5
I_EDITED_BIT = 6
I_REJECTED_BIT = 7
I_ROOM = 8  # room_per_row(n)
N_INT_PARAMS = 9

# estimation methods (the codes of :mod:`meter2cash.mdm.vee.estimation`)
M_LINEAR = 1
M_LIKE_DAY = 2
M_LEARNED = 3
M_SCALAR = 4
M_AVERAGE = 5
M_OUTAGE = 6


def contiguous(a: Any, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> np.ndarray | None:
    """``a`` as a writeable C-contiguous array of ``dtype`` (one kernel signature for every caller),
    or None if it has another shape."""
    out = np.asarray(a, dtype=dtype)
    if out.shape != shape:
        return None
    if not out.flags.c_contiguous or not out.flags.writeable:
        out = np.array(out, dtype=dtype, order="C")
    return out


def room_per_row(n: int) -> int:
    """Room in the run buffers for one row of ``n`` intervals: each of the ten interval-level
    rules has at most ``n // 2 + 1`` runs, the three day-level rules at most one a day (at most
    ``n`` days), plus three set-up findings."""
    return 8 * n + 32


def scratch_sizes(n: int, n_hist: int, spd: int) -> tuple[int, int, int]:
    """Sizes of the float64, int64 and uint16 scratch arrays of :func:`evaluate_rows`."""
    wide = max(spd, n)
    return 2 * n + n_hist + 6 * wide + n_hist // max(spd, 1) + 2, wide + 273 + 2 * n, n + 18


# Compile time matters (every fresh installation and test worker compiles once, then loads from
# Numba's cache): the kernels allocate nothing but a small stack in ``pairwise_sum``, and use
# conditional expressions instead of ``min`` / ``max`` and slice assignments, each of which
# compiles a library implementation of its own.
def _jit(signature: str) -> Callable[[Callable[..., Any]], Any]:
    """Compile eagerly for one signature (no specialisations at call sites), cached on disk."""
    return numba.njit(signature, cache=True, nogil=True, error_model="numpy")


@_jit("f8(f8[::1], i8, i8)")
def _block_sum(a, start, n):
    """NumPy's sum of at most 128 values: eight accumulators, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    m = n - n % 8
    while i < m:
        b = start + i
        r0 += a[b]
        r1 += a[b + 1]
        r2 += a[b + 2]
        r3 += a[b + 3]
        r4 += a[b + 4]
        r5 += a[b + 5]
        r6 += a[b + 6]
        r7 += a[b + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@_jit("f8(f8[::1], i8, i8)")
def pairwise_sum(a, start, n):
    """``a[start:start+n].sum()`` in NumPy's order: blocks of at most 128 values summed by
    :func:`_block_sum`, longer spans halved (at a multiple of 8) and the halves added. The halving
    runs on an explicit stack (recursive functions do not load from Numba's cache)."""
    if n <= 128:
        return _block_sum(a, start, n)
    stack = np.empty(192, dtype=np.int64)  # (start, length, 1 = add the last two sums) triples
    sums = np.empty(64)
    n_sums = 0
    stack[0], stack[1], stack[2] = start, n, 0
    top = 1
    while top > 0:
        top -= 1
        s0, m, join = stack[3 * top], stack[3 * top + 1], stack[3 * top + 2]
        if join:
            n_sums -= 1
            sums[n_sums - 1] = sums[n_sums - 1] + sums[n_sums]
        elif m <= 128:
            sums[n_sums] = _block_sum(a, s0, m)
            n_sums += 1
        else:
            half = m // 2
            half -= half % 8
            # first half, then second half, then their sum
            stack[3 * top], stack[3 * top + 1], stack[3 * top + 2] = s0, m, 1
            stack[3 * top + 3], stack[3 * top + 4], stack[3 * top + 5] = s0 + half, m - half, 0
            stack[3 * top + 6], stack[3 * top + 7], stack[3 * top + 8] = s0, half, 0
            top += 3
    return sums[0]


@_jit("f8(f8[::1], i8, i8)")
def _extreme(v, a, b):
    """The value of largest magnitude in ``v[a:b]`` (the larger one on a tie; NaN if none)."""
    hi = np.nan
    lo = np.nan
    for j in range(a, b):
        x = v[j]
        if x == x:
            if not (hi >= x):
                hi = x
            if not (lo <= x):
                lo = x
    if lo != lo or abs(hi) >= abs(lo):
        return hi
    return lo


@_jit("f8(f8[::1], i8, i8)")
def _kth_smallest(buf, n, k):
    """The ``k``-th smallest of ``buf[:n]`` (0-based; quickselect, reorders ``buf``; no NaN)."""
    lo = 0
    hi = n - 1
    while hi > lo:
        mid = (lo + hi) // 2
        a, b, c = buf[lo], buf[mid], buf[hi]  # median of three as the pivot
        if a > b:
            a, b = b, a
        if b > c:
            b = c
            if a > b:
                b = a
        pivot = b
        i = lo
        j = hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return buf[k]
    return buf[k]


@_jit("i8(b1[::1], b1[::1], f8[::1], i1, i8, i8, b1)")
def _mark(rej, sus, v, act, a, b, received_only):
    """Apply an action to intervals ``a:b`` of a row (only to received ones if
    ``received_only``); returns 1 if it marked REJECTED, 2 if SUSPECT, 0 otherwise."""
    if act == ACT_INFO:
        return 0
    mask = rej if act == ACT_REJECT else sus
    for j in range(a, b):
        if not received_only or v[j] == v[j]:
            mask[j] = True
    return 1 if act == ACT_REJECT else 2


@_jit("i8(f8[::1], i8, i8, f8[::1], f8[::1], i8[::1], f8[::1], f8[::1], f8)")
def _history_statistics(h, spd, days, slot_sum, slot_sq, slot_cnt, hday, buf, cover):
    """Per slot of day: sum, sum of squares and count of the valid history values (the days
    added one after the other, as NumPy reduces a middle axis); per day: the use scaled up for
    missing intervals (``rules.history._daily``; 0 for a day with less than ``cover`` valid
    intervals, as ``nansum`` counts it). Returns the number of days with a use."""
    for s in range(spd):
        slot_sum[s] = 0.0
        slot_sq[s] = 0.0
        slot_cnt[s] = 0
    n_ok = 0
    for d in range(days):
        got = 0
        day = h[d * spd : d * spd + spd]
        for s in range(spd):
            x = day[s]
            ok = x == x
            x = x if ok else 0.0
            slot_sum[s] += x
            slot_sq[s] += x * x
            slot_cnt[s] += ok
            got += ok
            buf[s] = x
        hday[d] = 0.0
        if got >= cover:
            use = pairwise_sum(buf, 0, spd) * spd / (got if got > 1 else 1)
            if use == use:
                hday[d] = use
                n_ok += 1
    return n_ok


@_jit("i8(f8, f8)")
def _bucket(x, scale):
    b = x * scale
    return int(b) if b < 256.0 else 256


@_jit("f8(f8[::1], f8[::1], f8, f8[::1], f8[::1], i8[::1])")
def _spike_threshold(v, h, biggest, fp, pool, counts):
    """The spike threshold ``max(floor, factor x level)`` of a row whose largest candidate is
    ``biggest``, or NaN when no candidate can exceed ``factor`` x the level.

    ``level`` is the quantile (lower nearest rank) of the positive values of ``h`` and ``v``.
    Counting the values below ``biggest / factor`` decides first whether it can matter; if so, a
    histogram of 256 buckets over ``(0, biggest / factor)`` (monotone in the value) finds the
    bucket holding the rank, and only that bucket's values are selected from. ``pool`` and
    ``counts`` (257) are scratch space.
    """
    factor = fp[F_SPIKE_FACTOR]
    limit_q = biggest / factor * (1 + 1e-9)  # on the safe side of rounding
    usable = 0
    below = 0
    for i in range(h.shape[0]):
        usable += h[i] > 0
        below += (h[i] > 0) & (h[i] < limit_q)
    for i in range(v.shape[0]):
        usable += v[i] > 0
        below += (v[i] > 0) & (v[i] < limit_q)
    rank = math.floor(fp[F_SPIKE_QUANTILE] * (usable - 1))
    if not (below > rank or usable == 0):
        return np.nan
    level = np.nan
    if usable > 0:
        scale = 256.0 / limit_q
        for i in range(257):
            counts[i] = 0
        for x in h:
            if x > 0:
                counts[_bucket(x, scale)] += 1
        for x in v:
            if x > 0:
                counts[_bucket(x, scale)] += 1
        bucket = 0
        seen = 0
        while seen + counts[bucket] <= rank:
            seen += counts[bucket]
            bucket += 1
        m = 0
        for x in h:
            if x > 0 and _bucket(x, scale) == bucket:
                pool[m] = x
                m += 1
        for x in v:
            if x > 0 and _bucket(x, scale) == bucket:
                pool[m] = x
                m += 1
        level = _kth_smallest(pool, m, rank - seen)
    threshold = factor * level
    return threshold if threshold >= fp[F_SPIKE_FLOOR] else fp[F_SPIKE_FLOOR]


@_jit(
    "UniTuple(i8, 2)(f8[:, ::1], f8[:, ::1], b1[::1], b1[:, ::1], b1[:, ::1], f8[:, ::1], u2[:, ::1],"
    " f8[:, ::1], b1[:, ::1], b1[::1], i1[::1], f8[::1], i8[::1], b1[:, ::1], b1[:, ::1], i8[:, ::1],"
    " f8[:, ::1], i8, f8[::1], i8[::1], u2[::1])"
)
def evaluate_rows(
    values,
    history,
    import_rows,
    outage,
    active,
    earlier,
    prev_flags,
    day_advance,
    metadata_bad,
    on,
    act,
    fp,
    ip,
    rejected,
    suspect,
    ib,
    fb,
    r0,
    fscratch,
    iscratch,
    bits,
):
    """Every enabled rule over the rows of ``values`` ``(rows, n)`` from row ``r0``, one walk
    per row.

    ``on`` / ``act`` give, per rule number, whether it runs and what its action does (``ACT_*``);
    ``fp`` / ``ip`` the thresholds (``F_*`` / ``I_*``). ``outage``, ``active``, ``earlier`` and
    ``prev_flags`` have the shape of ``values`` (neutral where the context is absent: no outage,
    active, ``values`` itself, no flags); ``history`` and ``day_advance`` may be ``(0, 0)``.
    ``metadata_bad`` ``(rows, 3)`` says which rows fail interval size, unit and multiplier.

    Per row, a branch-free loop (which the compiler vectorises) first sets one bit per interval
    for each interval-level rule (rule number = bit; for the spike rule the candidates above the
    floor and their neighbours, for the stuck register "equal to the previous value"), and the
    day-level rules run at the end of each day; then the changes of those bits give the runs.

    Writes the masks of the actions into ``rejected`` and ``suspect`` (zeros on entry; REJECTED
    wins over SUSPECT; no rule marks a missing interval) and the runs into ``ib[i] = (rule, row,
    first, count)``, ``fb[i] = (value, a, b, c)`` (``value`` the extreme value of the run;
    ``a, b, c`` the rule's data: threshold, earlier value, slot mean and std, day sums), by row
    and, within a rule, by column. Stops before a row when the buffers have less than
    ``ip[I_ROOM]`` (:func:`room_per_row`) left. Returns ``(runs written, next row)``.

    ``fscratch`` (float64, :func:`scratch_sizes`), ``iscratch`` (int64) and ``bits`` (uint16)
    are scratch space; ``history`` is at least ``(1, 0)``.
    """
    n_rows, n = values.shape
    spd = ip[I_SPD]
    block = spd if spd > 0 and n % spd == 0 else n  # slot statistics need whole days
    n_blocks = n // block
    n_hist = history.shape[1]
    use_hist = history.shape[0] == n_rows and n_hist > 0
    hist_days = n_hist // spd if spd > 0 else 0
    room = ip[I_ROOM]
    wide = spd if spd > n else n
    # scratch: the row with a NaN either side | slot sums, squares, means, deviations, limits |
    # a day's values | the use of each history day | the pool for the spike level
    padded = fscratch[: n + 2]
    current = fscratch[1 : n + 2]
    following = fscratch[2 : n + 2]
    slot_sum = fscratch[n + 2 : n + 2 + wide]
    slot_sq = fscratch[n + 2 + wide : n + 2 + 2 * wide]
    slot_mean = fscratch[n + 2 + 2 * wide : n + 2 + 3 * wide]
    slot_std = fscratch[n + 2 + 3 * wide : n + 2 + 4 * wide]
    slot_limit = fscratch[n + 2 + 4 * wide : n + 2 + 5 * wide]
    buf = fscratch[n + 2 + 5 * wide : n + 2 + 6 * wide]
    hday = fscratch[n + 2 + 6 * wide : n + 2 + 6 * wide + hist_days]
    pool = fscratch[n + 2 + 6 * wide + hist_days :]
    # slot counts | histogram of the spike level | open runs' starts | spike candidate runs
    slot_cnt = iscratch[:wide]
    counts = iscratch[wide : wide + 257]
    starts = iscratch[wide + 257 : wide + 273]
    cand_first = iscratch[wide + 273 : wide + 273 + n]
    cand_count = iscratch[wide + 273 + n :]

    on_dyn, on_sum, on_high, on_low = on[R_DYNAMIC], on[R_SUM], on[R_HIGH], on[R_LOW]
    need_days = on_high or on_low
    floor = fp[F_SPIKE_FLOOR]
    nbf = fp[F_SPIKE_NEIGHBOUR]
    cover = fp[F_COVERAGE] * spd
    est_bit = ip[I_ESTIMATED_BIT]
    edit_bit = ip[I_EDITED_BIT]
    keep_bits = ip[I_EDITED_BIT] | ip[I_REJECTED_BIT]
    stuck_min, zero_min = ip[I_STUCK_MIN], ip[I_ZERO_MIN]
    base_mask = 0
    for rule in range(16):
        if on[rule] and rule != R_NEGATIVE:
            base_mask |= 1 << rule
    for s in range(wide):
        slot_mean[s] = 0.0
        slot_limit[s] = np.inf
    for j in range(n + 18):
        bits[j] = 0  # bits[j + 1] is interval j's; 0 before and after the row: every run ends
    row_bits = bits[1:]
    padded[0] = np.nan
    padded[n + 1] = np.nan

    k = 0
    r = r0
    while r < n_rows and k + room <= ib.shape[0]:
        v = values[r]
        h = history[r] if use_hist else history[0]
        o, a, e, pf = outage[r], active[r], earlier[r], prev_flags[r]
        rej, sus = rejected[r], suspect[r]
        row_first = k
        # --- the row's history: slot statistics and the reference daily use
        ref = np.nan
        if on_dyn or need_days:
            n_ok = _history_statistics(
                h, spd, hist_days if use_hist else 0, slot_sum, slot_sq, slot_cnt, hday, buf, cover
            )
            if need_days and use_hist and n_ok >= ip[I_HL_MIN_DAYS]:
                ref = pairwise_sum(hday, 0, hist_days) / (n_ok if n_ok > 1 else 1)
        if on_dyn:
            for s in range(spd):
                c = slot_cnt[s] if slot_cnt[s] > 1 else 1
                mean = slot_sum[s] / c
                var = slot_sq[s] / c - mean * mean
                slot_mean[s] = mean
                slot_std[s] = math.sqrt(var if var > 0.0 else 0.0)
                if slot_cnt[s] >= ip[I_DYN_MIN_DAYS]:
                    slot_limit[s] = fp[F_DYN_Z] * slot_std[s] + fp[F_DYN_FLOOR]
                else:
                    slot_limit[s] = np.inf

        # --- one bit per interval and interval-level rule; day-level rules at each day's end
        mask = base_mask | ((1 << R_NEGATIVE) if on[R_NEGATIVE] and import_rows[r] else 0)
        for j in range(n):
            padded[j + 1] = v[j]
        for d in range(n_blocks):
            d0 = d * block
            got_day = 0
            got_outage = 0  # received inside an outage: not the day's use for high/low usage
            for s in range(block):
                j = d0 + s
                # offset views, not j + 1: an index the compiler cannot prove non-negative gets
                # a wrap-around check and the loop turns into gathers
                x = current[j]
                before = padded[j]
                after = following[j]
                f = pf[j]
                got = x == x
                # spike candidate: above the floor and neighbour_factor x the larger neighbour
                # (a missing neighbour counts as 0)
                left = before if before > 0.0 else 0.0
                right = after if after > 0.0 else 0.0
                lim = (left if left > right else right) * nbf
                lim = lim if lim > floor else floor
                b = (
                    int(not got)
                    | (int(x < 0.0) << R_NEGATIVE)
                    | (int(x > lim) << R_SPIKE)
                    | (int((x == before) & (x != 0.0)) << R_STUCK)
                    | (int((x == 0.0) & (not o[j])) << R_ZERO)
                    | (int((abs(x - slot_mean[s]) > slot_limit[s]) & (not o[j])) << R_DYNAMIC)
                    | (int(got & (not a[j])) << R_INACTIVE)
                    | (int(abs(x - e[j]) > 1e-9) << R_DUPLICATE)
                    | (int(got & ((f & est_bit) != 0) & ((f & keep_bits) == 0)) << R_REPLACED)
                    | (int((f & edit_bit) != 0) << R_KEPT)
                )
                row_bits[j] = b & mask
                buf[s] = x if got else 0.0  # the day's received values, for its sums
                got_day += got
                got_outage += got & o[j]
            if block == spd and (on_sum or need_days):
                # the sum of the received values; with every interval received it is the day's
                # interval sum (NaN otherwise, and NaN never fails the sum check)
                day_sum = pairwise_sum(buf, 0, spd)
                if on_sum and got_day == spd:
                    adv = day_advance[r, d]
                    diff = day_sum - adv
                    if abs(diff) > fp[F_SUM_TOL] + fp[F_SUM_TOL_REL] * abs(adv):
                        ib[k, 0], ib[k, 1], ib[k, 2], ib[k, 3] = R_SUM, r, d0, spd
                        fb[k, 1], fb[k, 2], fb[k, 3] = day_sum, adv, diff
                        k += 1
                if need_days:
                    day = np.nan  # the day's use scaled up for missing intervals (rules.history._daily)
                    use, got_use = day_sum, got_day
                    if got_outage > 0:  # outage intervals count as not received
                        for s in range(spd):
                            buf[s] = 0.0 if o[d0 + s] else buf[s]
                        use, got_use = pairwise_sum(buf, 0, spd), got_day - got_outage
                    if got_use >= cover:
                        day = use * spd / (got_use if got_use > 1 else 1)
                    if on_high and day > fp[F_HIGH] * ref:
                        ib[k, 0], ib[k, 1], ib[k, 2], ib[k, 3] = R_HIGH, r, d0, spd
                        fb[k, 1], fb[k, 2] = day, ref
                        k += 1
                    if on_low and day < fp[F_LOW] * ref and ref > 0:
                        ib[k, 0], ib[k, 1], ib[k, 2], ib[k, 3] = R_LOW, r, d0, spd
                        fb[k, 1], fb[k, 2] = day, ref
                        k += 1

        # --- runs: where the bits change (sixteen intervals at a time where nothing does)
        n_cand = 0
        biggest = -np.inf
        for q in range(0, n + 1, 16):
            change = 0
            for j in range(q, q + 16):
                change |= row_bits[j] ^ bits[j]
            if change == 0:
                continue
            for j in range(q, q + 16 if q + 16 < n + 1 else n + 1):
                t = int(row_bits[j] ^ bits[j])  # rules that start or end at interval j
                if t == 0:
                    continue
                now = int(row_bits[j])
                for rule in range(16):
                    if not (t >> rule) & 1:
                        continue
                    if (now >> rule) & 1:
                        starts[rule] = j
                        continue
                    first = starts[rule]
                    count = j - first
                    if rule == R_SPIKE:
                        cand_first[n_cand] = first
                        cand_count[n_cand] = count
                        n_cand += 1
                        for c in range(first, j):
                            biggest = v[c] if v[c] > biggest else biggest
                        continue
                    if rule == R_STUCK:
                        if count < stuck_min:
                            continue
                        first -= 1  # k values equal to the previous one: a flat line of k + 1
                        count += 1
                    elif rule == R_ZERO and count < zero_min:
                        continue
                    ib[k, 0], ib[k, 1], ib[k, 2], ib[k, 3] = rule, r, first, count
                    k += 1

        # --- spikes: the candidates above the row's threshold
        if n_cand > 0:
            threshold = _spike_threshold(v, h, biggest, fp, pool, counts)
            for c in range(n_cand):
                start = -1
                end = cand_first[c] + cand_count[c]
                for j in range(cand_first[c], end + 1):
                    hit = j < end and v[j] > threshold
                    if hit and start < 0:
                        start = j
                    elif not hit and start >= 0:
                        ib[k, 0], ib[k, 1], ib[k, 2], ib[k, 3] = R_SPIKE, r, start, j - start
                        fb[k, 1] = threshold
                        k += 1
                        start = -1

        # --- channel set-up: the whole row
        for t in range(3):
            if metadata_bad[r, t]:
                ib[k, 0], ib[k, 1], ib[k, 2], ib[k, 3] = R_SIZE + t, r, 0, n
                k += 1

        # --- the row's runs: extreme values, data, and the actions on the intervals
        marks = 0
        for i in range(row_first, k):
            rule = ib[i, 0]
            first = ib[i, 2]
            end = first + ib[i, 3]
            whole = R_SUM <= rule <= R_LOW or R_SIZE <= rule <= R_MULTIPLIER
            fb[i, 0] = np.nan if whole or rule == R_MISSING else _extreme(v, first, end)
            if rule == R_DYNAMIC:
                fb[i, 1] = slot_mean[first % block]
                fb[i, 2] = slot_std[first % block]
            elif rule == R_DUPLICATE:
                fb[i, 1] = e[first]
            if rule != R_MISSING:  # a missing interval is estimated whatever the action
                marks |= _mark(rej, sus, v, act[rule], first, end, whole or rule == R_KEPT)
        if marks == 3:
            for j in range(n):
                if rej[j]:
                    sus[j] = False
        r += 1
    return k, r


@_jit("f8(f8[::1], i8, i8, i8, i8[::1], i8)")
def _like_day(v, j, spd, n_days, day_types, min_days):
    """The like-day profile value of interval ``j``: the mean of its slot over the valid days of
    its day type (added in day order, as NumPy does), NaN with fewer than ``min_days`` of them."""
    t = day_types[j // spd]
    s = j % spd
    total = 0.0
    cnt = 0
    for d in range(n_days):
        if day_types[d] == t:
            x = v[d * spd + s]
            ok = x == x
            total += x if ok else 0.0
            cnt += ok
    if cnt >= min_days:
        return total / cnt
    return np.nan


@_jit("f8(f8[::1], i8, i8, f8[::1])")
def _average_use(v, spd, n_days, day_sums):
    """Mean use per interval over the complete days of ``v`` (NaN if there is none)."""
    n_ok = 0
    for d in range(n_days):
        x = pairwise_sum(v, d * spd, spd)
        ok = x == x
        n_ok += ok
        day_sums[d] = x if ok else 0.0
    if n_ok >= 1:
        return pairwise_sum(day_sums, 0, n_days) / n_ok / spd
    return np.nan


@_jit("none(f8[::1], i1[::1], i8, i8, f8, f8[::1])")
def _scale_to_advance(o, m, d0, spd, advance, buf):
    """Scale the estimates of the day starting at ``d0`` so the day adds up to ``advance`` (the
    zeros of an outage stay as they are)."""
    any_est = False
    for s in range(spd):
        est = m[d0 + s] != 0 and m[d0 + s] != M_OUTAGE  # an outage's zeros are not scaled
        any_est |= est
        buf[s] = o[d0 + s] if est else 0.0
    if not any_est:
        return
    est_sum = pairwise_sum(buf, 0, spd)
    for s in range(spd):
        buf[s] = 0.0 if m[d0 + s] != 0 and m[d0 + s] != M_OUTAGE else o[d0 + s]
    residual = advance - pairwise_sum(buf, 0, spd)
    if est_sum > 0 and residual == residual and residual >= 0:
        factor = residual / est_sum
        for s in range(spd):
            if m[d0 + s] != 0 and m[d0 + s] != M_OUTAGE:
                o[d0 + s] = o[d0 + s] * factor
                m[d0 + s] = M_SCALAR


@_jit(
    "none(f8[:, ::1], b1[:, ::1], b1[:, ::1], f8[:, ::1], f8[:, ::1], i8[::1], i8, i8, i8, f8[:, ::1],"
    " i1[:, ::1], b1[::1], f8[::1])"
)
def estimate_rows(
    values,
    target,
    outage,
    learned,
    day_advance,
    day_types,
    spd,
    max_interp,
    min_like_days,
    out,
    method,
    remaining,
    fscratch,
):
    """Outage zeros, linear interpolation, learned, like-day, average daily use and the
    adjustment to the register advance, per row (see :func:`meter2cash.mdm.vee.estimation.estimate`).

    ``target``, ``outage``, ``learned``, ``day_advance`` may be ``(0, 0)`` (absent);
    ``day_types`` is the type of each day. ``out`` receives the values, filled; ``method`` holds
    zeros on entry and is written only in rows with a gap. ``remaining`` (bool, ``n``) and
    ``fscratch`` (float64, ``days + spd``) are scratch space.
    """
    n_rows, n = values.shape
    has_target = target.shape[0] == n_rows
    has_outage = outage.shape[0] == n_rows
    has_learned = learned.shape[0] == n_rows
    has_advance = day_advance.shape[0] == n_rows
    n_days = n // spd
    day_sums = fscratch[:n_days]
    buf = fscratch[n_days:]
    for r in range(n_rows):
        v = values[r]
        o = out[r]
        gaps = 0
        for j in range(n):
            o[j] = v[j]
            gaps += v[j] != v[j]
        if gaps == 0:
            continue
        m = method[r]
        # branch-free loops (vectorised): the gaps to fill, then the outage zeros
        for j in range(n):
            remaining[j] = v[j] != v[j]
        if has_target:
            t_row = target[r]
            for j in range(n):
                remaining[j] = remaining[j] & t_row[j]
        if has_outage:
            o_row = outage[r]
            for j in range(n):
                zero = remaining[j] & o_row[j]
                o[j] = 0.0 if zero else o[j]
                m[j] = M_OUTAGE if zero else m[j]
                remaining[j] = remaining[j] & (not zero)
        left = 0
        for j in range(n):
            left += remaining[j]
        if left == 0:
            continue
        # linear interpolation over the gaps of the received values
        j = 0
        while j < n:
            if v[j] == v[j]:
                j += 1
                continue
            first = j
            while j < n and v[j] != v[j]:
                j += 1
            length = j - first
            if first > 0 and j < n and length <= max_interp:
                before = v[first - 1]
                after = v[j]
                for t in range(length):
                    c = first + t
                    if remaining[c]:
                        o[c] = before + (after - before) * ((t + 1) / (length + 1))
                        m[c] = M_LINEAR
                        remaining[c] = False
                        left -= 1
        if has_learned and left > 0:
            lr = learned[r]
            for j in range(n):
                if remaining[j] and lr[j] == lr[j]:
                    x = lr[j]
                    o[j] = x if x >= 0.0 else 0.0
                    m[j] = M_LEARNED
                    remaining[j] = False
                    left -= 1
        if left > 0:
            avg = np.nan
            avg_done = False
            for j in range(n):
                if not remaining[j]:
                    continue
                p = _like_day(v, j, spd, n_days, day_types, min_like_days)
                if p == p:
                    o[j] = p
                    m[j] = M_LIKE_DAY
                    continue
                if not avg_done:
                    avg = _average_use(v, spd, n_days, day_sums)
                    avg_done = True
                if avg == avg:
                    o[j] = avg
                    m[j] = M_AVERAGE
        if has_advance:
            for d in range(n_days):
                _scale_to_advance(o, m, d * spd, spd, day_advance[r, d], buf)


@_jit("none(f8[::1], b1[::1], b1[::1], i1[::1], u2[::1], u2[::1])")
def flag_values(values, rejected, suspect, method, out, bits):
    """Quality bits of flat arrays into ``out`` (see :func:`meter2cash.mdm.vee.estimation.quality_flags`);
    ``bits`` = (MISSING, REJECTED, SUSPECT, ESTIMATED)."""
    missing, rej_bit, sus_bit, est_bit = bits[0], bits[1], bits[2], bits[3]
    for i in range(values.shape[0]):
        x = values[i]
        out[i] = (
            (missing if x != x else 0)
            | (rej_bit if rejected[i] else 0)
            | (sus_bit if suspect[i] else 0)
            | (est_bit if method[i] != 0 else 0)
        )
