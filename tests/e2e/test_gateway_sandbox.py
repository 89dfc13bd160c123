"""``m2c gateway-sandbox`` and ``m2c serve`` as real processes: an online recharge of a prepaid
wallet goes order → payer → signed webhook → receipt, and a replay credits nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from meter2cash.cis.parties.models import Account, Person, Premise, ServiceAgreement, ServicePoint
from meter2cash.db import make_engine, upgrade
from support import free_port, wait_for, wait_until_serving

pytestmark = pytest.mark.e2e
M2C = str(Path(sys.executable).with_name("m2c"))


def test_online_recharge_through_the_sandbox_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 'm2c.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s:
        person = Person(name="Ravi", phone="+919800000009")
        premise = Premise(code="P-1")
        s.add_all([person, premise])
        s.flush()
        acct = Account(number="PP-1", person_id=person.id)
        sp = ServicePoint(code="SP-1", premise_id=premise.id)
        s.add_all([acct, sp])
        s.flush()
        s.add(
            ServiceAgreement(
                number="SA-1",
                account_id=acct.id,
                service_point_id=sp.id,
                tariff_code="RES-PP",
                payment_mode="prepaid",
                start_date=date(2026, 1, 1),
            )
        )
        s.commit()
    engine.dispose()
    api_port, gw_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2C_")}
    env.update(
        M2C_DATABASE_URL=url, M2C_GATEWAY_URL=f"http://127.0.0.1:{gw_port}", M2C_GATEWAY_SECRET="e2e-secret"
    )
    api = f"http://127.0.0.1:{api_port}/api/v1"
    procs = [
        subprocess.Popen(
            [M2C, "serve", "--host", "127.0.0.1", "--port", str(api_port)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [M2C, "gateway-sandbox", "--port", str(gw_port), "--webhook", f"{api}/payments/webhook"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_until_serving(f"{api}/health", "the API", process=procs[0])
        wait_until_serving(f"http://127.0.0.1:{gw_port}/v1/events", "the sandbox", process=procs[1])
        with httpx.Client(base_url=api, timeout=10) as c:
            order = c.post(
                "/payments/orders", json={"account": "PP-1", "amount": "300.00", "purpose": "recharge"}
            )
            assert order.status_code == 201, order.text
            httpx.post(order.json()["pay_url"], json={"outcome": "success"}).raise_for_status()
            events_url = f"http://127.0.0.1:{gw_port}/v1/events"
            wait_for(lambda: httpx.get(events_url).json()[0]["delivered"], "webhook delivery", timeout=60)
            wallet = wait_for(
                lambda: (w := c.get("/wallets/PP-1").json()).get("balance") == "300.00" and w,
                "wallet credit",
                timeout=60,
            )
            assert wallet["last_recharge"] == "300.00"  # INR minor units
            events = httpx.get(f"http://127.0.0.1:{gw_port}/v1/events").json()
            httpx.post(f"http://127.0.0.1:{gw_port}/v1/events/{events[0]['id']}/redeliver")
            wait_for(
                lambda: len(httpx.get(f"http://127.0.0.1:{gw_port}/v1/events").json()[0]["attempts"]) == 2,
                "replay",
                timeout=60,
            )
            receipts = c.get("/payments", params={"account": "PP-1"}).json()
            assert receipts["total"] == 1 and Decimal(receipts["items"][0]["amount"]) == Decimal("300")
            assert c.get("/wallets/PP-1").json()["balance"] == "300.00"
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def run_m2c(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([M2C, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_money_commands(tmp_path):
    """m2c pay (one receipt and an agent batch), ledger reports, collections and the prepaid run."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as s:
        person = Person(name="Meera", email="meera@example.org")
        s.add(person)
        s.flush()
        s.add(Account(number="A-1", person_id=person.id))
        s.commit()
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2C_")}
    env["M2C_DATABASE_URL"] = url
    paid = run_m2c(
        env, "pay", "A-1", "150.00", "--channel", "cheque", "--reference", "CHQ 12", "--on", "2026-10-02"
    )
    assert paid.returncode == 0, paid.stderr
    assert "receipt R-20261002-000001" in paid.stdout and "receivable -150.00 " in paid.stdout
    batch = tmp_path / "agent.csv"
    batch.write_text(
        "agent,transaction_id,account,amount,paid_on\nPOST,1,A-1,50.00,2026-10-03\nPOST,2,A-9,5,2026-10-03\n"
    )
    loaded = run_m2c(env, "pay", "-", "0", "--batch", str(batch))
    assert loaded.returncode == 1 and "recorded 1 payment(s)" in loaded.stdout
    assert "line 3 [account] payment.unknown_account" in loaded.stderr
    report = run_m2c(env, "ledger", "collections", "--from", "2026-10-01", "--to", "2026-10-31")
    assert "cheque" in report.stdout and "agent" in report.stdout
    tb = run_m2c(env, "ledger", "trial-balance")
    assert tb.returncode == 0, tb.stdout
    assert run_m2c(env, "ledger", "ageing", "--as-of", "2026-10-31").returncode == 0
    assert run_m2c(env, "collections", "run", "--date", "2026-10-31").returncode == 0
    daily = run_m2c(env, "prepaid", "run-daily", "--date", "2026-10-31", "--json")
    assert daily.returncode == 0 and '"charged": 0' in daily.stdout
