"""SessionThread: calls run in order on one thread; a failure stops what is queued behind it."""

from __future__ import annotations

import threading
import time

import pytest

from meter2cash.dbthread import SessionThread


class _Session:
    """Stands in for a Session: SessionThread only hands it to the calls."""


def test_calls_run_in_order_on_one_background_thread():
    seen: list[tuple[int, str]] = []

    def work(i: int) -> int:
        time.sleep(0.001 * (5 - i))  # earlier calls take longer: order must not depend on it
        seen.append((i, threading.current_thread().name))
        return i * i

    with SessionThread(_Session(), enabled=True, max_pending=10) as db:  # type: ignore[arg-type]
        futures = [db.submit(work, i) for i in range(5)]
        assert db.call(work, 5) == 25
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
    assert [i for i, _ in seen] == list(range(6))
    names = {name for _, name in seen}
    assert len(names) == 1 and names != {threading.current_thread().name}


def test_disabled_runs_each_call_at_once_on_the_callers_thread():
    here = threading.current_thread().name
    with SessionThread(_Session(), enabled=False) as db:  # type: ignore[arg-type]
        f = db.submit(lambda: threading.current_thread().name)
        assert f.done() and f.result() == here
        with pytest.raises(ZeroDivisionError):
            db.submit(lambda: 1 / 0)


def test_a_failed_call_skips_the_calls_queued_behind_it_and_is_raised():
    ran: list[int] = []
    gate = threading.Event()

    def work(i: int) -> None:
        gate.wait(5)
        if i == 1:
            raise ValueError("store failed")
        ran.append(i)

    db = SessionThread(_Session(), enabled=True, max_pending=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="store failed"), db:
        for i in range(4):
            db.submit(work, i)
        gate.set()
    assert ran == [0]  # 2 and 3 were queued behind the failure and never ran
    with pytest.raises(ValueError, match="store failed"):
        db.submit(work, 9)  # the session's transaction is not usable any more


def test_submit_waits_when_too_many_calls_are_pending():
    finished: list[int] = []

    def slow(i: int) -> None:
        time.sleep(0.05)
        finished.append(i)

    with SessionThread(_Session(), enabled=True, max_pending=1) as db:  # type: ignore[arg-type]
        db.submit(slow, 1)
        db.submit(slow, 2)  # waits for call 1 first
        assert finished == [1]
    assert finished == [1, 2]


def test_an_error_in_the_callers_block_cancels_calls_not_started():
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    def work(i: int) -> None:
        started.set()
        release.wait(5)
        ran.append(i)

    with pytest.raises(KeyError), SessionThread(_Session(), enabled=True, max_pending=10) as db:  # type: ignore[arg-type]
        db.submit(work, 1)
        db.submit(work, 2)
        started.wait(5)
        threading.Timer(0.05, release.set).start()
        raise KeyError("rating failed")
    assert ran == [1]  # the running call finished before the block was left; call 2 never ran
