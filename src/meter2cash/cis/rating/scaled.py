"""Exact scaled-integer arithmetic of the rating kernels.

Energy in Wh (VAh for kVAh), demand in W, rates in 10⁻⁶ (``RATE_PLACES``), quantities in 10⁻³
(``QTY_PLACES``), percentages in 10⁻⁴ % (``PCT_PLACES``), amounts in 10^-scale currency; a
division rounds once, half up or half to even.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
RATE_PLACES, QTY_PLACES, PCT_PLACES = 6, 3, 4
BIG = np.iinfo(np.int64).max // 4


def div_round(numer: npt.ArrayLike, denom: npt.ArrayLike, mode: str = "half_up") -> I64:
    """``numer / denom`` rounded to an integer (half away from zero, or half to even), exactly."""
    n = np.asarray(numer, dtype=np.int64)
    d = np.asarray(denom, dtype=np.int64)
    q, r = np.divmod(np.abs(n), d)
    twice = 2 * r
    up = (twice > d) | ((twice == d) & ((q % 2 == 1) if mode == "half_even" else True))
    q = q + up
    return np.where(n < 0, -q, q).astype(np.int64)


def div_round_obj(numer: npt.NDArray[np.object_], denom: npt.NDArray[np.object_], mode: str) -> I64:
    """:func:`div_round` on Python-int object arrays (products beyond int64), back to int64."""
    out = []
    for a, b in zip(numer.tolist(), denom.tolist(), strict=True):
        q, r = divmod(abs(a), b)
        if 2 * r > b or (2 * r == b and (mode != "half_even" or q % 2 == 1)):
            q += 1
        out.append(-q if a < 0 else q)
    return np.asarray(out, dtype=np.int64)


def scaled(value: Decimal, places: int) -> int:
    """An exact decimal as an integer count of 10^-places (the models guarantee no remainder)."""
    out = value.scaleb(places)
    if out != out.to_integral_value():
        raise ValueError(f"{value} has more than {places} decimal places")
    return int(out)
