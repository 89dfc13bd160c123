"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<raw body>"``, with a tolerance window.

The header reads ``t=<unix seconds>,v1=<hex digest>`` (several ``v1`` values are accepted, for
secret rotation). The timestamp is inside the signed payload, so an old delivery cannot be
re-sent with a fresh timestamp; one outside the tolerance window is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from meter2cash.core.errors import M2CError

HEADER = "M2C-Gateway-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(M2CError):
    """A webhook whose signature is missing, malformed, wrong or too old."""

    code = "gateway.bad_signature"
    http_status = 400


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def sign_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for ``body`` (now, unless ``timestamp`` is given)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={signature(secret, ts, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> int:
    """Check a signature header against the raw body; returns its timestamp.

    Raises :class:`SignatureError` with code ``gateway.no_signature``, ``gateway.bad_signature``
    or ``gateway.stale_signature`` (timestamp more than ``tolerance_s`` away from ``now``).
    """
    if not header:
        raise SignatureError("the webhook carries no signature", code="gateway.no_signature")
    ts: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            ts = int(value)
        elif key == "v1":
            sigs.append(value)
    if ts is None or not sigs:
        raise SignatureError("the signature header is malformed", code="gateway.bad_signature")
    expected = signature(secret, ts, body)
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        raise SignatureError("the webhook signature does not match", code="gateway.bad_signature")
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError(
            f"the webhook timestamp is {int(current - ts)} s away from now (tolerance {tolerance_s} s)",
            code="gateway.stale_signature",
        )
    return ts
