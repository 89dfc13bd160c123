"""A bill as a consumer sees it: served by the API, opened in a real headless Chromium.

Chromium comes from the system (`apt-get install chromium`; `.ci/run` installs it when it can);
Playwright drives it. Without a Chromium the tests are skipped locally, but under `CI=true` (or
with M2C_REQUIRE_BROWSER=1) that is a failure. The browser is looked for before the utility is
built, so a skip costs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import IN_CI
from support import free_port, wait_until_serving

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]  # one served utility per run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable; without one a failure under CI, a skip elsewhere."""
    if CHROMIUM:
        return CHROMIUM
    if IN_CI or os.environ.get("M2C_REQUIRE_BROWSER") == "1":
        pytest.fail("the browser tests are mandatory under CI=true but no chromium is on PATH "
                    "(apt-get install chromium)")  # fmt: skip
    pytest.skip("no chromium on PATH (apt-get install chromium)")


def _m2c(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meter2cash.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def billed_utility(chromium, tmp_path_factory):
    """The small example utility, ingested, validated and billed through the CLI (only once a
    browser is there to look at it), served for the tests of this file."""
    tmp_path = tmp_path_factory.mktemp("browser")
    env = {**os.environ, "M2C_DATABASE_URL": f"sqlite:///{tmp_path / 'm2c.db'}", "M2C_VAR_DIR": str(tmp_path)}
    steps = [
        ("db", "upgrade"),
        ("tariff", "load", *map(str, sorted((EXAMPLES / "tariffs").glob("*.toml")))),
        ("masterdata", "load", str(EXAMPLES / "masterdata" / "small.json")),
        ("ingest", str(EXAMPLES / "readings" / "small-2026-09.json")),
        ("vee", "run"),
        ("bill-run", "--period", "2026-09"),
    ]
    for step in steps:
        proc = _m2c(env, *step)
        assert proc.returncode == 0, f"{step}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "meter2cash.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{base}/api/v1/health", "the API", process=server, timeout=30)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_a_commercial_bill_renders_in_chromium(chromium, billed_utility, tmp_path):
    from playwright.sync_api import sync_playwright

    base = billed_utility
    bill = httpx.get(f"{base}/api/v1/bills/B-2026-09-000002").json()
    assert bill["tariff_code"] == "COM-TOU"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        response = page.goto(f"{base}/api/v1/bills/B-2026-09-000002.html")
        assert response is not None and response.status == 200
        text = page.inner_text("body")
        total = f"{float(bill['total']):,.2f}"
        assert total in text, f"total {total} not on the page"
        for words in (
            "Lakshmi Stores",
            "B-2026-09-000002",
            "COM-TOU",
            "peak",
            "Demand charge",
            "Payment reference",
        ):
            assert words in text
        bars = page.locator("svg rect")
        assert bars.count() >= 28  # one bar a day in the consumption chart
        page.screenshot(path=str(tmp_path / "bill.png"), full_page=True)
        browser.close()
    assert (tmp_path / "bill.png").stat().st_size > 10_000


def test_the_api_documentation_works_without_a_network(chromium, billed_utility):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        page = browser.new_page()
        external: list[str] = []
        page.on("request", lambda r: external.append(r.url) if "127.0.0.1" not in r.url else None)
        page.goto(f"{billed_utility}/docs")
        page.get_by_text("/api/v1/bills/{number}", exact=True).first.wait_for(timeout=15_000)
        assert "meter2cash" in page.title()
        browser.close()
    assert external == [], f"the docs page fetched {external}"
