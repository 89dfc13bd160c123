"""Security defaults and request limits at the API edge, on SQLite and PostgreSQL.

Outside development the settings refuse an open API and default secrets; the webhook checks the
configured secret only; ``/health`` tells anonymous callers only that the server is up; bodies
are bounded per route (413) and JSON depth is bounded (422 ``input.too_deep``), never a 500.
"""

from __future__ import annotations

import json
import warnings

import pytest
from pydantic import ValidationError
from test_payments import make_account

from meter2cash import config
from meter2cash.api.app import create_app
from meter2cash.config import ConfigError, Settings, get_settings
from meter2cash.payment_gateway.signing import HEADER, sign_header

with warnings.catch_warnings():  # the test client warns about its httpx transport on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

V1 = "/api/v1"
KEY = "k-7f3a9c2e4b1d8f60a5"
SECRET = "gw-secret-5d2e8a1f9c7b3e40"


def error(r, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


# --- settings that fail fast -----------------------------------------------------------------


def test_production_refuses_an_open_api():
    with pytest.raises(ValidationError, match="M2C_API_KEYS is empty"):
        Settings(environment="production", gateway_secret=SECRET)


def test_production_refuses_the_default_gateway_secret():
    with pytest.raises(ValidationError, match="M2C_GATEWAY_SECRET is a default"):
        Settings(environment="production", api_keys=KEY)
    assert Settings(environment="production", api_keys=KEY, gateway_secret=SECRET).environment == "production"
    # an empty secret switches the webhook off, which is safe
    assert Settings(environment="staging", api_keys=KEY, gateway_secret="").gateway_secret == ""


@pytest.mark.parametrize("key", ["changethis", "sandbox-secret", "short-key"])
def test_production_refuses_placeholder_and_short_keys(key):
    with pytest.raises(ValidationError, match="placeholder or short"):
        Settings(environment="production", api_keys=f"{KEY},{key}", gateway_secret=SECRET)


def test_development_only_warns():
    s = Settings(environment="development")
    assert [p.split(",")[0] for p in s.security_problems()] == [
        "M2C_API_KEYS is empty",
        "M2C_GATEWAY_SECRET is a default or placeholder secret",
    ]


def test_the_environment_is_read_once_and_refused_as_a_config_error(monkeypatch):
    monkeypatch.setenv("M2C_ENVIRONMENT", "production")
    monkeypatch.delenv("M2C_API_KEYS", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as caught:
            get_settings()
        assert caught.value.code == "config.invalid" and "M2C_API_KEYS" in caught.value.message
    finally:
        get_settings.cache_clear()


def test_create_app_refuses_unsafe_settings_even_when_copied(platform):
    unsafe = platform.settings.model_copy(update={"environment": "production"})  # skips validation
    platform.settings = unsafe
    with pytest.raises(ConfigError, match="M2C_API_KEYS is empty"):
        create_app(platform)


def test_api_keys_are_compared_with_every_key_in_constant_time(monkeypatch):
    calls = []
    real = config.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(config.hmac, "compare_digest", spy)
    s = Settings(api_keys="aaaaaaaaaaaaaaaa1, bbbbbbbbbbbbbbbb2, cccccccccccccccc3")
    assert s.key_is_valid("aaaaaaaaaaaaaaaa1") and not s.key_is_valid("nope")
    assert len(calls) == 6  # every key, also after a match


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture
def guarded(platform):
    """The API with a key and a configured gateway secret."""
    with TestClient(create_app(platform.with_settings(api_keys=KEY, gateway_secret=SECRET))) as c:
        yield c


def test_health_tells_anonymous_callers_only_that_it_is_up(guarded):
    assert guarded.get(f"{V1}/health").json() == {"status": "ok"}
    assert guarded.get(f"{V1}/health", headers={"X-API-Key": "wrong"}).json() == {"status": "ok"}
    detail = guarded.get(f"{V1}/health", headers={"X-API-Key": KEY}).json()
    assert detail["status"] == "ok" and detail["version"] and detail["code_revision"]
    assert set(detail) == {"status", "version", "database", "database_revision", "code_revision"}


def test_webhook_signed_with_the_sandbox_secret_is_refused_when_another_is_configured(guarded):
    body = json.dumps({"id": "evt-1", "type": "order.paid", "data": {"order_id": "o-1"}}).encode()
    r = guarded.post(
        f"{V1}/payments/webhook",
        content=body,
        headers={HEADER: sign_header("sandbox-secret", body), "content-type": "application/json"},
    )
    assert error(r, 400)["code"] == "gateway.bad_signature"
    r = guarded.post(
        f"{V1}/payments/webhook",
        content=body,
        headers={HEADER: sign_header(SECRET, body), "content-type": "application/json"},
    )
    assert r.status_code == 200 and r.json() == {"event": "evt-1", "outcome": "unknown_order"}


def test_webhook_is_off_without_a_secret(platform):
    with TestClient(create_app(platform.with_settings(gateway_secret=""))) as c:
        body = b'{"id": "evt-1"}'
        r = c.post(f"{V1}/payments/webhook", content=body, headers={HEADER: sign_header("", body)})
        assert error(r, 503)["code"] == "gateway.webhook_off"


def test_405_lists_every_method_of_the_resource(guarded):
    r = guarded.request("DELETE", f"{V1}/payments", headers={"X-API-Key": KEY})
    assert error(r, 405)["code"] == "api.method_not_allowed"
    assert r.headers["allow"] == "GET, POST"


# --- request limits --------------------------------------------------------------------------

JSON = {"content-type": "application/json", "X-API-Key": KEY}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_a_command_body_past_64_kib_is_413(guarded, session):
    make_account(session, "A-1")
    session.commit()
    big = json.dumps({"account": "A-1", "amount": "1.00", "reference": "x" * 70_000}).encode()
    err = error(guarded.post(f"{V1}/payments", content=big, headers=JSON), 413)
    assert err["code"] == "api.payload_too_large" and err["data"]["max_bytes"] == 64 * 1024

    def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b" " * 8192

    err = error(guarded.post(f"{V1}/masterdata", content=b"{}" + b"".join(chunks()) * 20, headers=JSON), 413)
    assert err["code"] == "api.payload_too_large"
    err = error(guarded.post(f"{V1}/payments", content=chunks(), headers=JSON), 413)
    assert err["code"] == "api.payload_too_large"


@pytest.mark.parametrize(("route", "depth"), [("/payments", 10_000), ("/masterdata", 100_000)])
def test_deep_json_is_422_not_a_traceback(guarded, route, depth):
    err = error(guarded.post(f"{V1}{route}", content=nested(depth), headers=JSON), 422)
    assert err["code"] == "input.too_deep" and err["data"] == {"depth": depth, "max_depth": 64}
    assert (
        guarded.post(f"{V1}{route}", content=nested(64), headers=JSON).status_code == 422
    )  # shape, not depth
    assert (
        error(guarded.post(f"{V1}{route}", content=nested(64), headers=JSON), 422)["code"] != "input.too_deep"
    )


def test_deep_reading_json_is_refused_while_streaming(guarded):
    doc = b'{"readings": ' + nested(100_000) + b"}"
    err = error(guarded.post(f"{V1}/readings", content=doc, headers=JSON), 422)
    assert err["code"] == "input.too_deep" and err["data"]["depth"] > 64


def test_reading_uploads_have_their_own_limit(platform):
    small = platform.with_settings(max_upload_bytes=4096, api_keys=KEY)
    with TestClient(create_app(small)) as c:
        body = b"meter,channel,start,value\n" + b"M1,kwh_import_15m,2026-02-01T00:00:00Z,1\n" * 200
        err = error(c.post(f"{V1}/readings", content=body, headers={**JSON, "content-type": "text/csv"}), 413)
        assert err["data"]["max_bytes"] == 4096
        ok = c.post(f"{V1}/readings", content=body[:2000], headers={**JSON, "content-type": "text/csv"})
        assert ok.status_code in (200, 422) and ok.json().get("rows_total", 1)  # read, not refused


def test_non_utf8_json_and_nul_characters_are_422(guarded):
    err = error(guarded.post(f"{V1}/payments", content=b'{"account": "\xff"}', headers=JSON), 422)
    assert err["code"] == "input.not_utf8"
    err = error(guarded.post(f"{V1}/payments", content=b'{"account": "A\\u0000"}', headers=JSON), 422)
    assert err["code"] == "input.nul_character"
    err = error(guarded.get(f"{V1}/accounts", params={"status": "a\x00"}, headers=JSON), 422)
    assert err["code"] == "input.nul_character"
