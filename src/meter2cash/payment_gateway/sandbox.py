"""A local sandbox payment gateway (loopback only) that behaves like real ones.

Flow: the merchant creates an order → the payer completes (or fails) it → the gateway sends a
signed webhook (:mod:`.signing`) to the merchant's URL, retrying with exponential backoff until it
gets a 2xx → the merchant reconciles with the daily settlement report (CSV).

HTTP API (JSON; amounts are decimal strings):

- ``POST /v1/orders`` ``{amount, currency, reference}`` → 201 ``{order_id, status, pay_url}``
- ``GET /v1/orders/<id>`` → the order
- ``POST /v1/orders/<id>/pay`` ``{outcome: "success" | "failure"}`` → the payer completes it
- ``GET /v1/settlements?date=YYYY-MM-DD`` → CSV ``order_id,reference,amount,fee,net,currency,paid_at``
- ``GET /v1/events`` → every event with its delivery attempts
- ``POST /v1/events/<id>/redeliver`` → send an event again (a replay, as real gateways do)

The fee is ``fee_percent`` of the amount, rounded to the minor unit. The server runs in threads
(:class:`SandboxGateway`); ``m2c gateway-sandbox`` runs it in the foreground.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from meter2cash.payment_gateway.signing import HEADER, sign_header

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(slots=True)
class Event:
    event_id: str
    type: str
    order_id: str
    body: bytes
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: bool = False


class SandboxState:
    """Orders and events of the sandbox, and the webhook sender with retries and backoff."""

    def __init__(
        self,
        secret: str,
        webhook_url: str,
        *,
        fee_percent: Decimal = Decimal("1.5"),
        max_attempts: int = 8,
        backoff_s: float = 0.2,
    ) -> None:
        self.secret, self.webhook_url = secret, webhook_url
        self.fee_percent, self.max_attempts, self.backoff_s = fee_percent, max_attempts, backoff_s
        self.orders: dict[str, dict[str, Any]] = {}
        self.events: dict[str, Event] = {}
        self.lock = threading.Lock()
        self._queue: list[tuple[float, str, int]] = []
        self._wake = threading.Condition(self.lock)
        self._stop = False
        self._sender = threading.Thread(target=self._send_loop, name="sandbox-webhooks", daemon=True)
        self._sender.start()

    # --- orders ---------------------------------------------------------------------------------

    def create_order(self, amount: str, currency: str, reference: str) -> dict[str, Any]:
        value = Decimal(amount)
        if not value.is_finite() or value <= 0:
            raise ValueError("amount must be positive")
        order_id = f"order_{uuid.uuid4().hex[:16]}"
        order = {
            "order_id": order_id,
            "amount": str(value),
            "currency": currency,
            "reference": reference,
            "status": "created",
            "created_at": _now_iso(),
            "paid_at": None,
        }
        with self.lock:
            self.orders[order_id] = order
        return order

    def complete(self, order_id: str, outcome: str) -> dict[str, Any]:
        with self.lock:
            order = self.orders[order_id]
            if order["status"] != "created":
                return order
            order["status"] = "paid" if outcome == "success" else "failed"
            if order["status"] == "paid":
                order["paid_at"] = _now_iso()
            event_type = "order.paid" if order["status"] == "paid" else "order.failed"
            event = self._event(event_type, order)
            self._schedule(event.event_id, 0.0, 0)
            return order

    def _event(self, event_type: str, order: dict[str, Any]) -> Event:
        event_id = f"evt_{uuid.uuid4().hex[:20]}"
        payload = {
            "id": event_id,
            "type": event_type,
            "created": int(time.time()),
            "data": {
                k: order[k] for k in ("order_id", "amount", "currency", "reference", "status", "paid_at")
            },
        }
        event = Event(
            event_id, event_type, order["order_id"], json.dumps(payload, separators=(",", ":")).encode()
        )
        self.events[event_id] = event
        return event

    def redeliver(self, event_id: str) -> None:
        with self.lock:
            if event_id not in self.events:
                raise KeyError(event_id)
            self._schedule(event_id, 0.0, 0)

    def settlement_csv(self, day: str) -> str:
        """Paid orders of the UTC day ``day`` (YYYY-MM-DD) with the gateway fee and the net."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["order_id", "reference", "amount", "fee", "net", "currency", "paid_at"])
        with self.lock:
            for o in self.orders.values():
                if o["status"] == "paid" and str(o["paid_at"]).startswith(day):
                    amount = Decimal(o["amount"])
                    fee = (amount * self.fee_percent / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
                    w.writerow(
                        [
                            o["order_id"],
                            o["reference"],
                            o["amount"],
                            fee,
                            amount - fee,
                            o["currency"],
                            o["paid_at"],
                        ]
                    )
        return out.getvalue()

    # --- webhooks -------------------------------------------------------------------------------

    def _schedule(self, event_id: str, delay: float, attempt: int) -> None:
        self._queue.append((time.monotonic() + delay, event_id, attempt))
        self._wake.notify()

    def _send_loop(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                with self.lock:
                    while not self._stop and not self._due():
                        wait = (
                            min((t for t, _, _ in self._queue), default=time.monotonic() + 1)
                            - time.monotonic()
                        )
                        self._wake.wait(timeout=max(0.01, min(wait, 1.0)))
                    if self._stop:
                        return
                    self._queue.sort()
                    _, event_id, attempt = self._queue.pop(0)
                    event = self.events[event_id]
                self._deliver(client, event, attempt)

    def _due(self) -> bool:
        return any(t <= time.monotonic() for t, _, _ in self._queue)

    def _deliver(self, client: httpx.Client, event: Event, attempt: int) -> None:
        headers = {"Content-Type": "application/json", HEADER: sign_header(self.secret, event.body)}
        try:
            status: int | str = client.post(self.webhook_url, content=event.body, headers=headers).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        with self.lock:
            event.attempts.append({"at": _now_iso(), "status": status})
            if isinstance(status, int) and 200 <= status < 300:
                event.delivered = True
            elif attempt + 1 < self.max_attempts:
                self._schedule(event.event_id, min(self.backoff_s * 2**attempt, 30.0), attempt + 1)

    def stop(self) -> None:
        with self.lock:
            self._stop = True
            self._wake.notify()
        self._sender.join(timeout=5)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        data = json.loads(raw or b"{}")
        return data if isinstance(data, dict) else {}

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        st = self.server.state
        if parts[:2] == ["v1", "orders"] and len(parts) == 3:
            order = st.orders.get(parts[2])
            self._reply(200, order) if order else self._reply(404, {"error": "no such order"})
        elif url.path == "/v1/settlements":
            day = parse_qs(url.query).get("date", [""])[0]
            self._reply(200, st.settlement_csv(day), "text/csv")
        elif url.path == "/v1/events":
            with st.lock:
                events = [
                    {
                        "id": e.event_id,
                        "type": e.type,
                        "order_id": e.order_id,
                        "delivered": e.delivered,
                        "attempts": e.attempts,
                    }
                    for e in st.events.values()
                ]
            self._reply(200, events)
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        parts = urlparse(self.path).path.strip("/").split("/")
        st = self.server.state
        try:
            body = self._json()
            if parts == ["v1", "orders"]:
                order = st.create_order(
                    str(body["amount"]), str(body.get("currency", "INR")), str(body.get("reference", ""))
                )
                host, port = str(self.server.server_address[0]), self.server.server_address[1]
                order["pay_url"] = f"http://{host}:{port}/v1/orders/{order['order_id']}/pay"
                self._reply(201, order)
            elif parts[:2] == ["v1", "orders"] and len(parts) == 4 and parts[3] == "pay":
                if parts[2] not in st.orders:
                    self._reply(404, {"error": "no such order"})
                    return
                self._reply(200, st.complete(parts[2], str(body.get("outcome", "success"))))
            elif parts[:2] == ["v1", "events"] and len(parts) == 4 and parts[3] == "redeliver":
                st.redeliver(parts[2])
                self._reply(202, {"redelivering": parts[2]})
            else:
                self._reply(404, {"error": "not found"})
        except (KeyError, ValueError, InvalidOperation, json.JSONDecodeError) as exc:
            self._reply(400, {"error": f"bad request: {exc}"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SandboxState, verbose: bool) -> None:
        super().__init__(address, _Handler)
        self.state, self.verbose = state, verbose


class SandboxGateway:
    """The sandbox server on ``host:port`` (loopback only; port 0 picks a free one)."""

    def __init__(
        self,
        secret: str,
        webhook_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        **options: Any,
    ) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"the sandbox gateway listens on loopback only, not {host!r}")
        self.state = SandboxState(secret, webhook_url, **options)
        self.server = _Server((host, port), self.state, verbose)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        return f"http://{host}:{port}"

    def start(self) -> SandboxGateway:
        self._thread = threading.Thread(target=self.server.serve_forever, name="sandbox-gateway", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.state.stop()
