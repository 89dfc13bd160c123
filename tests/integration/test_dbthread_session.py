"""SessionThread and snapshot_session on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from meter2cash.cis.models import Person
from meter2cash.dbthread import SessionThread, snapshot_session


def test_default_overlaps_on_postgresql_only(session):
    assert SessionThread(session).enabled is (session.get_bind().dialect.name == "postgresql")


def test_a_snapshot_session_sees_what_the_session_sees_until_it_writes(db_url, session):
    session.add(Person(name="committed"))
    session.commit()
    with snapshot_session(session) as snap:
        if not db_url.startswith("postgresql"):
            assert snap is None
            return
        assert snap is not None
        assert snap.scalars(select(Person.name)).all() == ["committed"]
        assert snap.get_bind() is not session.connection()  # another connection, same snapshot
    session.add(Person(name="not yet committed"))
    session.flush()
    with snapshot_session(session) as snap:
        assert snap is None  # another connection would not see the row just written
    session.rollback()
