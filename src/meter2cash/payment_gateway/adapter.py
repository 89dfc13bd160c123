"""The payment gateway interface, its settings, and the client of the sandbox gateway.

A real gateway (Razorpay, Stripe, PayU…) plugs in by implementing :class:`PaymentGateway`: create
an order, read an order's status, fetch the settlement report of a day as CSV. Webhooks come in
through ``POST /api/v1/payments/webhook`` and are checked with :mod:`.signing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

import httpx

from meter2cash.config import SANDBOX_GATEWAY_SECRET, Settings
from meter2cash.core.errors import M2CError


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Where the gateway is and how its webhooks are checked: from ``M2C_GATEWAY_URL``,
    ``M2C_GATEWAY_SECRET`` and ``M2C_GATEWAY_TOLERANCE_S`` of the one :class:`Settings`."""

    url: str = "http://127.0.0.1:8765"
    #: Signing secret of the webhooks; empty: the webhook is switched off.
    secret: str = SANDBOX_GATEWAY_SECRET
    tolerance_s: int = 300
    name: str = "sandbox"

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewaySettings:
        return cls(
            url=settings.gateway_url, secret=settings.gateway_secret, tolerance_s=settings.gateway_tolerance_s
        )


class GatewayError(M2CError):
    code = "gateway.unavailable"
    http_status = 502


@dataclass(frozen=True, slots=True)
class GatewayOrderInfo:
    order_id: str
    status: str
    amount: Decimal
    currency: str
    pay_url: str = ""


class PaymentGateway(Protocol):
    name: str

    def create_order(self, amount: Decimal, currency: str, reference: str) -> GatewayOrderInfo: ...

    def order(self, order_id: str) -> GatewayOrderInfo: ...

    def settlement_report(self, day: date) -> str: ...


class SandboxClient:
    """:class:`PaymentGateway` over the sandbox's HTTP API."""

    name = "sandbox"

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, **kw: object) -> httpx.Response:
        try:
            resp = httpx.request(method, self.base_url + path, timeout=self.timeout, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise GatewayError(f"payment gateway at {self.base_url} unreachable: {exc}") from exc
        if resp.status_code >= 400:
            raise GatewayError(
                f"payment gateway answered {resp.status_code}: {resp.text[:200]}", code="gateway.refused"
            )
        return resp

    @staticmethod
    def _info(d: dict[str, object]) -> GatewayOrderInfo:
        return GatewayOrderInfo(
            str(d["order_id"]),
            str(d["status"]),
            Decimal(str(d["amount"])),
            str(d["currency"]),
            str(d.get("pay_url", "")),
        )

    def create_order(self, amount: Decimal, currency: str, reference: str) -> GatewayOrderInfo:
        body = {"amount": str(amount), "currency": currency, "reference": reference}
        return self._info(self._call("POST", "/v1/orders", json=body).json())

    def order(self, order_id: str) -> GatewayOrderInfo:
        return self._info(self._call("GET", f"/v1/orders/{order_id}").json())

    def settlement_report(self, day: date) -> str:
        return self._call("GET", "/v1/settlements", params={"date": day.isoformat()}).text


def gateway_from_settings(settings: GatewaySettings) -> PaymentGateway:
    """The client of the configured gateway (built once, in ``bootstrap``)."""
    return SandboxClient(settings.url)
