"""What the tests that start servers share: a free loopback port, and waiting until something is so.

Imported as ``from support import …`` by integration and end-to-end tests alike (``tests/`` is on
the path through the root ``conftest.py``). Waiting is tenacity's retry with a fixed pause and a
time limit, as cosmicpython's ``conftest.py`` waits for its API.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from typing import TypeVar

import httpx
from tenacity import RetryError, retry, retry_if_exception_type, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (the system picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T], what: str, *, timeout: float = 30.0, every: float = 0.1) -> T:
    """The first true value of ``check()``, asked every ``every`` s. A connection refused or timed
    out (``httpx.TransportError``) counts as not yet; any other exception ends the wait. Nothing
    true within ``timeout`` s is an ``AssertionError`` naming ``what``."""
    waiting = retry(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(every),
        retry=retry_if_result(lambda value: not value) | retry_if_exception_type(httpx.TransportError),
    )(check)
    try:
        return waiting()
    except RetryError as exc:
        raise AssertionError(f"{what} did not happen within {timeout} s") from exc


def wait_until_serving(
    url: str, what: str, *, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0
) -> None:
    """Wait until ``GET url`` answers 200 (a server's health route). With ``process``, a server
    that exits first fails at once, with what it printed when its output is a pipe."""

    def answers() -> bool:
        if process is not None and process.poll() is not None:
            printed = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"{what} exited with {process.returncode} before answering\n{printed}")
        return httpx.get(url, timeout=1).status_code == 200

    wait_for(answers, what, timeout=timeout, every=0.2)
