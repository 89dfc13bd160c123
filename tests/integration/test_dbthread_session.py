"""SessionThread and snapshot_session on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import create_engine, insert, select

from meter2cash.cis.parties.models import Person
from meter2cash.db import normalise_url
from meter2cash.dbthread import SessionThread, snapshot_session


def test_default_overlaps_on_postgresql_only(session):
    assert SessionThread(session).enabled is (session.get_bind().dialect.name == "postgresql")


def test_a_snapshot_session_sees_what_the_session_sees_until_it_writes(db_url, session):
    session.add(Person(name="committed"))
    session.commit()
    names = select(Person.name).order_by(Person.name)
    with snapshot_session(session) as snap:
        if not db_url.startswith("postgresql"):
            assert snap is None
            return
        assert snap is not None
        assert snap.get_bind() is not session.connection()  # another connection
        # A row committed by a third connection after the snapshot was taken: the snapshot
        # session does not see it (its snapshot is the session's), a new connection does.
        other = create_engine(normalise_url(db_url))
        try:
            with other.begin() as conn:
                conn.execute(insert(Person).values(name="later"))
            assert snap.scalars(names).all() == ["committed"]
            with other.connect() as conn:
                assert conn.scalars(names).all() == ["committed", "later"]
        finally:
            other.dispose()
        assert snap.scalars(names).all() == ["committed"]  # still the same snapshot
    session.rollback()  # a new transaction of the session sees the later row
    session.add(Person(name="not yet committed"))
    session.flush()
    with snapshot_session(session) as snap:
        assert snap is None  # another connection would not see the row just written
    session.rollback()
