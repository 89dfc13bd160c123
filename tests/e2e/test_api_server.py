"""``m2c serve`` as a real process: health, master data, an account, OpenAPI; refusal when unmigrated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from conftest import store_example_tariffs
from meter2cash.db import upgrade
from support import free_port, wait_until_serving

pytestmark = pytest.mark.e2e
M2C = str(Path(sys.executable).with_name("m2c"))
BUNDLE = Path(__file__).resolve().parents[2] / "examples" / "masterdata" / "small.json"


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2C_")}
    return {**env, "M2C_DATABASE_URL": url}


def test_served_api_end_to_end(tmp_path):
    url = f"sqlite:///{tmp_path / 'served.db'}"
    upgrade(url)
    engine = create_engine(url)
    with Session(engine) as s, s.begin():
        store_example_tariffs(s)  # the bundle's agreements name them
    engine.dispose()
    port = free_port()
    proc = subprocess.Popen(
        [M2C, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env_for(url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/api/v1/health", "m2c serve", process=proc, timeout=30)
        with httpx.Client(base_url=base, timeout=10) as c:
            r = c.post("/api/v1/masterdata", json=json.loads(BUNDLE.read_text()))
            assert r.status_code == 200 and r.json()["created"] == 25
            acc = c.get("/api/v1/accounts/ACC-1002").json()
            assert acc["person"]["name"] == "Lakshmi Stores"
            assert acc["service_agreements"][0]["tariff_code"] == "COM-TOU"
            assert "/api/v1/masterdata" in c.get("/openapi.json").json()["paths"]
            assert "swagger" in c.get("/docs").text.lower()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()


def test_serve_refuses_an_unmigrated_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    r = subprocess.run(
        [M2C, "serve", "--port", str(free_port())],
        env=env_for(url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "m2c db upgrade" in " ".join(r.stderr.split())


def test_serve_refuses_production_settings_without_keys_or_with_the_sandbox_secret(tmp_path):
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    upgrade(url)
    for extra, reason in (
        ({}, "M2C_API_KEYS is empty"),
        ({"M2C_API_KEYS": "k-7f3a9c2e4b1d8f60a5"}, "M2C_GATEWAY_SECRET is a default"),
    ):
        r = subprocess.run(
            [M2C, "serve", "--port", str(free_port())],
            env={**env_for(url), "M2C_ENVIRONMENT": "production", **extra},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        err = " ".join(r.stderr.split())
        assert r.returncode == 2 and "config.invalid" in err and reason in err, r.stderr
        assert "Traceback" not in r.stderr


def test_serve_warns_in_development_without_keys(tmp_path):
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    upgrade(url)
    proc = subprocess.Popen(
        [M2C, "serve", "--port", str(free_port())],
        env=env_for(url),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert "M2C_API_KEYS is empty, so the API is open" in first
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stdout:
            proc.stdout.close()
