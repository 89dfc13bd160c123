"""Per-interval quality flags (a bit mask stored beside every value).

A value with no flag set is an actual, validated reading. Bits combine: an interval that failed a
spike check and was then estimated carries ``SUSPECT | ESTIMATED``.
"""

from __future__ import annotations

from enum import IntFlag

import numpy as np

FLAG_DTYPE = np.uint16


class Quality(IntFlag):
    MISSING = 1 << 0  #: nothing received for this interval
    ESTIMATED = 1 << 1  #: the value was estimated by VEE (method in the VEE run record)
    SUSPECT = 1 << 2  #: failed a validation rule; kept as received
    REJECTED = 1 << 3  #: failed a validation rule; the received value is not used
    EDITED = 1 << 4  #: changed by a person, with a reason in the audit log
    DUPLICATE = 1 << 5  #: received more than once with differing values
    OUTAGE = 1 << 6  #: inside a recorded power outage
    RAW = 1 << 7  #: received but not yet validated


def describe(flags: int) -> str:
    """``'SUSPECT|ESTIMATED'`` for a flag value, ``'VALID'`` for zero."""
    if not flags:
        return "VALID"
    return "|".join(f.name for f in Quality if f.name and flags & f)
