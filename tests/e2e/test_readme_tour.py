"""The README's tour, run as written after `make demo`, gives what its comments promise.

The commands are taken from the fenced block under "## A tour" in README.md and run one by one
through bash in a fresh directory (with `examples/` beside it), with the virtual environment's
`m2c` first on PATH and no `M2C_*` variable but those the tour sets; `m2c serve` runs in the
background on a free port and the `curl` line asks it. A small demo runs first in the same
directory, as `make demo` would have.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from meter2cash.bootstrap import bootstrap
from meter2cash.cis.billing.models import Bill, BillSegment
from meter2cash.cis.ledger.journal import trial_balance
from meter2cash.config import Settings
from support import free_port, wait_until_serving

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("readme_tour")]  # one tour per run

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


@dataclass(frozen=True)
class Step:
    command: str
    comment: str


@dataclass(frozen=True)
class Ran:
    step: Step
    returncode: int
    output: str  # stdout and stderr


def tour_steps(readme: str) -> list[Step]:
    """The tour's commands with their comments (a comment on its own indented line continues the
    previous command's)."""
    section = readme[readme.index("## A tour") :]
    start = section.index("```bash\n") + len("```bash\n")
    block = section[start : section.index("\n```", start)]
    steps: list[Step] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            assert steps and line.strip().startswith("#"), f"not a command or a comment: {line!r}"
            steps[-1] = Step(steps[-1].command, f"{steps[-1].comment} {line.strip()[1:].strip()}")
            continue
        command, comment = _split_comment(line)
        steps.append(Step(command, comment))
    return steps


def _split_comment(line: str) -> tuple[str, str]:
    """``command  # comment`` → (command, comment); a ``#`` inside quotes is the command's."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def _tokens(line: str) -> list[str]:
    """The cells of a table row, whatever its borders."""
    return [t for t in re.split(r"[\s│┃|]+", line.strip()) if t]


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Run the demo, then every step of the tour; what each step did, by its command."""
    home = tmp_path_factory.mktemp("tour")
    (home / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("M2C_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", COLUMNS="200")

    def bash(command: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], cwd=home, env=env, capture_output=True, text=True, timeout=timeout
        )

    demo = bash("m2c demo --reset --meters 5 --days 1", timeout=600)  # `make demo` came first
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    steps = tour_steps(README.read_text())
    ran: dict[str, Ran] = {}
    server: subprocess.Popen[bytes] | None = None
    port = free_port()
    try:
        for step in steps:
            argv = shlex.split(step.command)
            if step.command == "source .venv/bin/activate":
                continue  # the venv's m2c is first on PATH already
            if argv[0] == "export":
                env.update(dict(a.split("=", 1) for a in argv[1:]))
                continue
            if argv[:2] == ["m2c", "serve"]:
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {step.command} --port {port}"],
                    cwd=home,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                wait_until_serving(
                    f"http://127.0.0.1:{port}/api/v1/health", "the tour's server", process=server
                )
                continue
            if argv[0] == "curl":
                url = argv[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
                if shutil.which("curl"):
                    proc = bash(f"curl -sS --fail {shlex.quote(url)}")
                    ran[step.command] = Ran(step, proc.returncode, proc.stdout + proc.stderr)
                else:
                    r = httpx.get(url, timeout=30)
                    ran[step.command] = Ran(step, 0 if r.status_code == 200 else 22, r.text)
                continue
            proc = bash(step.command)
            ran[step.command] = Ran(step, proc.returncode, proc.stdout + proc.stderr)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
    return {"home": home, "steps": steps, "ran": ran, "env": env}


def _step(tour: dict[str, object], prefix: str) -> Ran:
    ran = tour["ran"]
    assert isinstance(ran, dict)
    found = [r for c, r in ran.items() if c.startswith(prefix)]
    assert len(found) == 1, f"the tour has {len(found)} steps starting with {prefix!r}"
    return found[0]


def _database(tour: dict[str, object]) -> str:
    env = tour["env"]
    assert isinstance(env, dict)
    url = env["M2C_DATABASE_URL"]
    return url.replace("sqlite:///./", f"sqlite:///{tour['home']}/")


def test_the_tour_s_commands_are_read_from_the_readme():
    steps = tour_steps(README.read_text())
    commands = [s.command for s in steps]
    assert commands[:2] == ["source .venv/bin/activate", "export M2C_DATABASE_URL=sqlite:///./var/tour.db"]
    tariffs = next(i for i, c in enumerate(commands) if c.startswith("m2c tariff load"))
    masterdata = next(i for i, c in enumerate(commands) if c.startswith("m2c masterdata load"))
    assert tariffs < masterdata  # master data refuses agreements on tariffs it does not know
    ingest = next(s for s in steps if s.command.startswith("m2c ingest"))
    assert "exit 1" in ingest.comment and "4 bad lines" in ingest.comment
    assert _split_comment("curl 'http://x/#a' # b") == ("curl 'http://x/#a'", "b")


def test_every_step_succeeds_but_the_file_with_bad_lines(tour):
    ran = tour["ran"]
    for command, r in ran.items():
        expected = 1 if "exit 1" in r.step.comment else 0
        assert r.returncode == expected, f"{command}: exit {r.returncode}\n{r.output[-3000:]}"
    home = tour["home"]
    assert (home / "var" / "tour.db").exists()  # its own database, beside the demo's
    assert (home / "var" / "demo" / "meter2cash-demo.db").exists()


def test_the_bad_lines_are_reported_by_line(tour):
    r = _step(tour, "m2c ingest")
    promised = int(re.search(r"(\d+) bad lines", r.step.comment).group(1))
    lines = set(re.findall(r"small-2026-09-14-resend\.csv:(\d+)", r.output))
    assert len(lines) == promised == 4
    for code in ("unknown_meter", "misaligned_timestamp", "naive_timestamp", "bad_value"):
        assert f"ingest.{code}" in r.output


def test_the_commercial_tou_bill_and_its_document(tour):
    r = _step(tour, "m2c bill show B-2026-09-000002")
    for words in ("COM-TOU", "peak", "night", "Demand", "duty"):
        assert words in r.output, words
    paid = _step(tour, "m2c pay ACC-1002").step.command.split()[3]  # the tour pays this bill in full
    assert f"{Decimal(paid):,}" in r.output
    pdf = tour["home"] / "var" / "bills" / "B-2026-09-000002.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_the_trial_balance_total_is_zero(tour):
    r = _step(tour, "m2c ledger trial-balance")
    assert "the total is 0.00" in r.step.comment
    total = next(_tokens(line) for line in r.output.splitlines() if _tokens(line)[:1] == ["total"])
    assert total[-1] == "0.00" and total[-3] == total[-2]


def test_the_payment_and_the_prepaid_day(tour):
    paid = _step(tour, "m2c pay ACC-1002")
    assert re.search(r"receipt R-\d{8}-\d{6}", paid.output) and "receivable 0.00" in paid.output
    day = _step(tour, "m2c prepaid run-daily")
    charged = [int(m.group(1)) for m in re.finditer(r"^\W*charged\W+(\d+)", day.output, re.MULTILINE)]
    assert charged == [1]  # the one prepaid wallet


def test_the_paid_bill_is_rebilled_in_two_segments(tour):
    r = _step(tour, "m2c agreement change-load SA-1002")
    assert "two segments" in r.step.comment
    assert "rebilled B-2026-09-000002" in r.output
    new = re.findall(r"B-2026-09-\d{6}", r.output.split("rebilled B-2026-09-000002", 1)[1])
    assert new, r.output
    p = bootstrap(Settings(database_url=_database(tour)))
    try:
        with p.sessions() as s:
            old = s.scalars(select(Bill).where(Bill.number == "B-2026-09-000002")).one()
            bill = s.scalars(select(Bill).where(Bill.number == new[0])).one()
            segments = s.scalars(select(BillSegment).where(BillSegment.bill_id == bill.id)).all()
            assert old.status == "cancelled" and bill.replaces_bill_id == old.id
            assert len(segments) == 2
            assert trial_balance(s).total == 0
    finally:
        p.dispose()


def test_too_little_history_stores_no_learned_model(tour):
    r = _step(tour, "m2c vee train")
    assert r.output.count("not stored") == 2  # commercial and residential


def test_ageing_shows_the_unpaid_bill_and_the_credit_of_the_paid_one(tour):
    r = _step(tour, "m2c ledger ageing")
    rows = [_tokens(line) for line in r.output.splitlines()]
    header = next(t for t in rows if "0-30" in t and "90+" in t)
    columns = header[header.index("0-30") :]
    by_account = {
        t[0]: dict(zip(columns, t[1:], strict=True)) for t in rows if t[:1] and t[0].startswith("ACC-")
    }
    p = bootstrap(Settings(database_url=_database(tour)))
    try:
        with p.sessions() as s:
            totals = dict(
                s.execute(
                    select(Bill.number, Bill.total).where(Bill.kind == "postpaid", Bill.status == "issued")
                ).all()
            )
    finally:
        p.dispose()
    first = totals["B-2026-09-000001"]  # ACC-1001's bill, not paid
    assert by_account["ACC-1001"]["0-30"] == f"{first:,.2f}"
    rebilled = next(v for k, v in totals.items() if k not in ("B-2026-09-000001",))
    paid = Decimal(_step(tour, "m2c pay ACC-1002").step.command.split()[3])
    assert paid > rebilled
    acc = by_account["ACC-1002"]  # paid in full before the rebill: nothing open, the rest in credit
    assert [acc[c] for c in ("0-30", "31-60", "61-90", "90+")] == ["0.00"] * 4
    assert acc["credit"] == f"{paid - rebilled:,.2f}"


def test_the_api_serves_the_readings_the_tour_asks_for(tour):
    r = _step(tour, "curl")
    body = json.loads(r.output)
    assert body["meter"] == "MTR-000101" and body["interval_s"] == 900
    assert len(body["starts"]) == 96 and all(v is not None for v in body["values"])
