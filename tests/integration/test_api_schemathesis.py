"""Schemathesis over every operation of ``/openapi.json``, on SQLite and PostgreSQL.

Each operation gets a few generated requests, valid and invalid, with a valid API key, against
the API over a database holding the example master data. Checked: no server error (5xx), every
answer's status code, content type, headers and body as the schema declares them, requests that
violate the schema refused (4xx), auth not ignored, ``Allow`` on a 405. Not checked:
``positive_data_acceptance`` — some rules of valid requests span fields or stored data (``end``
after ``start``, a received date not after tomorrow, a webhook's signature) and no schema can
state them, so a schema-valid request may rightly be refused with a 4xx.

The run is deterministic (``derandomize``, no example database), so it does not flake; raise
``M2C_SCHEMATHESIS_EXAMPLES`` for a longer search by hand.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from datetime import date
from decimal import Decimal

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from test_api import load_examples

from meter2cash.api import create_app
from meter2cash.bootstrap import bootstrap
from meter2cash.config import Settings
from meter2cash.payment_gateway.adapter import GatewayOrderInfo

KEY = "schemathesis-api-key-0123456789"
SECRET = "schemathesis-gateway-secret-0123"
EXAMPLES = int(os.environ.get("M2C_SCHEMATHESIS_EXAMPLES", "5"))


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation the application declares (no database needed)."""
    p = bootstrap(Settings(database_url="sqlite://"), check_migrated=False)
    try:
        paths = create_app(p).openapi()["paths"]
    finally:
        p.dispose()
    return [(method.upper(), path) for path, item in paths.items() for method in item]


OPERATIONS = _operations()


class FakeGateway:
    """A payment gateway that answers at once (the sandbox process is for the e2e tests)."""

    name = "fake"

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def create_order(self, amount: Decimal, currency: str, reference: str) -> GatewayOrderInfo:
        return GatewayOrderInfo(f"order-{next(self._ids)}", "created", amount, currency, "http://pay.test/")

    def order(self, order_id: str) -> GatewayOrderInfo:
        return GatewayOrderInfo(order_id, "created", Decimal("1.00"), "INR", "http://pay.test/")

    def settlement_report(self, day: date) -> str:
        return "order_id,amount,currency,fee,status\n"


@pytest.fixture
def api_schema(platform):
    with platform.sessions() as s:
        load_examples(s)
    configured = platform.with_settings(api_keys=KEY, gateway_secret=SECRET)
    app = create_app(dataclasses.replace(configured, gateway=FakeGateway()))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.update(headers={"X-API-Key": KEY})
    schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none")
    checks = schema.config.checks
    checks.update(excluded_check_names=["positive_data_acceptance"])
    # 413 refuses a request as surely as a 4xx of validation: a body past the route's limit
    checks.negative_data_rejection.expected_statuses = [
        *checks.negative_data_rejection.expected_statuses,
        "413",
    ]
    return schema


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_schema(api_schema, method, path):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        case.call_and_validate()

    run()


def test_every_operation_is_covered():
    assert len(OPERATIONS) >= 30 and ("POST", "/api/v1/payments") in OPERATIONS
