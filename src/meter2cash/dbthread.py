"""Database work of one Session on a background thread, so that Python work overlaps it.

A bill run alternates between Python work (determinants, rating, building rows) and database
work (reading interval data, ``COPY`` of bills, lines and journal postings). Done in turn, the
Python process and the database server each wait for the other. :class:`SessionThread` runs the
database calls on one thread, in the order they were submitted, while the caller goes on: the
next chunk is read and the previous one stored while the current one is rated.

Rules that keep this safe:

- While a :class:`SessionThread` is open, only its thread uses the session; the caller submits
  every call that touches it (``submit``/``call``) and uses the session again only after
  :meth:`SessionThread.drain` or leaving the ``with`` block.
- Calls run one at a time, in submission order, in the caller's transaction (nothing commits).
- After a call fails, the calls queued behind it are not run: they fail with the same error,
  which the caller gets from the next ``submit``, ``call``, ``drain`` or the future's result.
- ``enabled=False`` runs every call at once on the caller's thread (same results, no overlap):
  the default on SQLite, whose work happens inside this process anyway.

:func:`snapshot_session` opens a second, read-only session that sees exactly what a session's
transaction sees, so that reads run on another database connection (another server process)
at the same time as the writes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

T = TypeVar("T")


class SessionThread:
    """Runs calls that use ``session`` on one background thread (see the module docstring).

    ``max_pending`` bounds how many submitted calls may wait unfinished (each may hold a chunk
    of rows in memory): ``submit`` waits for the oldest first when the bound is reached.
    """

    def __init__(self, session: Session, *, enabled: bool | None = None, max_pending: int = 3) -> None:
        if enabled is None:
            enabled = session.get_bind().dialect.name == "postgresql"
        self.session = session
        self.enabled = enabled
        self.max_pending = max(1, max_pending)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[Any]] = deque()
        self._failed: BaseException | None = None

    def __enter__(self) -> SessionThread:
        if self.enabled:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="m2c-db")
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if typ is None:
                self.drain()
            else:  # the caller failed: let the thread finish what it runs, then give up the rest
                for f in self._pending:
                    f.cancel()
                self._wait_all()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Queue ``fn(*args, **kwargs)``; its result (or error) comes through the future."""
        self._raise_failed()
        if self._pool is None:
            done: Future[T] = Future()
            done.set_result(fn(*args, **kwargs))  # inline: errors propagate at once
            return done
        while len(self._pending) >= self.max_pending:
            self._settle(self._pending.popleft())
        future = self._pool.submit(self._guarded, fn, args, kwargs)
        self._pending.append(future)
        return future

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` after everything queued before it and return its result."""
        return self.submit(fn, *args, **kwargs).result()

    def drain(self) -> None:
        """Wait for every queued call; raise the first error of any."""
        while self._pending:
            self._settle(self._pending.popleft())
        self._raise_failed()

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        if self._failed is not None:  # an earlier call failed: the transaction is not usable
            raise self._failed
        try:
            return fn(*args, **kwargs)
        except BaseException as e:
            self._failed = e
            raise

    def _settle(self, future: Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # waits; the error, if any, is kept in _failed
        self._raise_failed()

    def _wait_all(self) -> None:
        while self._pending:
            f = self._pending.popleft()
            if not f.cancelled():
                f.exception()

    def _raise_failed(self) -> None:
        if self._failed is not None:
            raise self._failed


@contextmanager
def snapshot_session(session: Session) -> Iterator[Session | None]:
    """A read-only session on a second connection that sees what ``session`` sees, or ``None``.

    On PostgreSQL, while ``session``'s transaction has written nothing yet, the second session
    imports its snapshot (``pg_export_snapshot``, ``SET TRANSACTION SNAPSHOT``): both see the
    same committed data, and reads through the second one run in another server process.
    ``None`` elsewhere, and once ``session`` has written: its own uncommitted rows would not be
    visible to another connection. The caller keeps ``session``'s transaction open while the
    second session is in use, and reads through it only what ``session`` itself does not write.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        yield None
        return
    conn = session.connection()
    if conn.execute(text("SELECT txid_current_if_assigned()")).scalar() is not None:
        yield None
        return
    snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar()
    engine = bind.engine
    with engine.connect() as reader_conn:
        reader_conn = reader_conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        reader_conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
        reader = Session(bind=reader_conn)
        try:
            yield reader
        finally:
            reader.close()
            reader_conn.rollback()
