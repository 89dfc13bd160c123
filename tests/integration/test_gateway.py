"""Online payments end to end on SQLite and PostgreSQL: our API served on a free loopback port,
the sandbox gateway in threads sending signed webhooks with retries; replays, forgeries and
out-of-order events change nothing; the settlement report reconciles."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from test_payments import debit, make_account

from meter2cash.api.app import create_app
from meter2cash.cis.ledger.journal import account_balance, trial_balance
from meter2cash.cis.payments.models import GatewayEvent, Payment
from meter2cash.payment_gateway.sandbox import SandboxGateway
from meter2cash.payment_gateway.signing import HEADER, sign_header
from support import free_port, wait_for

SECRET = "test-secret-1"
D = Decimal


@pytest.fixture
def served(platform):
    """Our API on a free port and the sandbox gateway posting webhooks to it."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    gw = SandboxGateway(SECRET, f"{api}/payments/webhook", backoff_s=0.05).start()
    configured = platform.with_settings(gateway_url=gw.url, gateway_secret=SECRET)
    server = uvicorn.Server(
        uvicorn.Config(create_app(configured), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "API start", timeout=15, every=0.05)
    try:
        yield api, gw
    finally:
        gw.stop()
        server.should_exit = True
        thread.join(timeout=10)


def test_order_paid_once_despite_replays_forgeries_and_reconciles(served, session):
    api, gw = served
    acct = make_account(session, "A-9")
    debit(session, acct, "700.00", date(2026, 10, 31))
    session.commit()
    with httpx.Client(base_url=api, timeout=10) as c:
        order = c.post("/payments/orders", json={"account": "A-9", "amount": "450.00"}).json()
        assert order["status"] == "created" and order["pay_url"]
        assert httpx.post(order["pay_url"], json={"outcome": "success"}).json()["status"] == "paid"
        wait_for(
            lambda: all(e["delivered"] for e in httpx.get(f"{gw.url}/v1/events").json()),
            "webhook delivery",
            timeout=15,
            every=0.05,
        )
        event = httpx.get(f"{gw.url}/v1/events").json()[0]
        # a replay of the same event: acknowledged, credits nothing
        httpx.post(f"{gw.url}/v1/events/{event['id']}/redeliver")
        wait_for(
            lambda: len(httpx.get(f"{gw.url}/v1/events").json()[0]["attempts"]) == 2,
            "redelivery",
            timeout=15,
            every=0.05,
        )
        # a forged event (wrong secret) and a stale one (old timestamp) are refused
        body = json.dumps(
            {
                "id": "evt_forged",
                "type": "order.paid",
                "data": {"order_id": order["order_id"], "amount": "450.00"},
            }
        ).encode()
        forged = c.post("/payments/webhook", content=body, headers={HEADER: sign_header("wrong", body)})
        assert forged.status_code == 400 and forged.json()["error"]["code"] == "gateway.bad_signature"
        stale = c.post(
            "/payments/webhook", content=body, headers={HEADER: sign_header(SECRET, body, 1_000_000)}
        )
        assert stale.json()["error"]["code"] == "gateway.stale_signature"
        # the same order paid again under another event id (out of order): no second credit
        other = json.dumps(
            {
                "id": "evt_other",
                "type": "order.paid",
                "data": {"order_id": order["order_id"], "amount": "450.00", "currency": "INR"},
            }
        ).encode()
        again = c.post("/payments/webhook", content=other, headers={HEADER: sign_header(SECRET, other)})
        assert again.json()["outcome"] == "already_paid"
        today = datetime.now(UTC).date()
        rec = c.post("/payments/reconcile", params={"day": today.isoformat()}).json()
    session.expire_all()
    assert session.scalar(select(func.count(Payment.id))) == 1
    assert account_balance(session, acct) == D("250.00")
    outcomes = dict(session.execute(select(GatewayEvent.event_id, GatewayEvent.outcome)).all())
    assert outcomes == {event["id"]: "credited", "evt_other": "already_paid"}
    assert rec["matched"] == 1 and rec["clean"] and rec["fees"] == "6.75" and rec["fee_entry_posted"]
    assert trial_balance(session).total == 0


def test_webhook_retries_until_the_merchant_answers(platform, session):
    """The sandbox retries with backoff while our endpoint is down, then delivers once."""
    port = free_port()
    gw = SandboxGateway(
        SECRET, f"http://127.0.0.1:{port}/api/v1/payments/webhook", backoff_s=0.1, max_attempts=12
    ).start()
    try:
        order = gw.state.create_order("10.00", "INR", "x")
        gw.state.complete(order["order_id"], "success")
        wait_for(
            lambda: len(next(iter(gw.state.events.values())).attempts) >= 2,
            "two failed deliveries",
            timeout=15,
            every=0.05,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(platform.with_settings(gateway_secret=SECRET)),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        event = next(iter(gw.state.events.values()))
        try:
            wait_for(lambda: event.delivered, "delivery once the API is up", timeout=20, every=0.05)
        except AssertionError:
            raise AssertionError(str(event.attempts)) from None
        server.should_exit = True
        thread.join(timeout=10)
    finally:
        gw.stop()
    assert event.attempts[0]["status"] == "ConnectError"
    assert event.attempts[-1]["status"] == 200
    # not our order: acknowledged, nothing credited
    assert session.scalar(select(GatewayEvent.outcome)) == "unknown_order"
