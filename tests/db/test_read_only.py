"""``store.db.read_only``: a transaction that only reads — on SQLite it takes no write lock (a screen's read does
not queue behind the dialler's writes, ``bench loop``), on PostgreSQL it is READ ONLY; work that writes is
refused on both."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from callcenter.bootstrap import App
from callcenter.store.db import ReadOnlyViolation, dialect_name, read_only, run_in_transaction
from callcenter.store.models.core import Staff
from tests.factories import make_staff

pytestmark = pytest.mark.db


def test_a_read_goes_on_while_a_writer_holds_the_write_lock_and_sees_the_last_commit(core: App) -> None:
    sid = make_staff(core, "ro-reader", "pw-ro-reader-123", "agent")
    holding, release = threading.Event(), threading.Event()

    def writer(s) -> None:  # type: ignore[no-untyped-def]
        s.execute(update(Staff).where(Staff.id == sid).values(display_name="改了"))
        holding.set()
        assert release.wait(20), "never released"

    thread = threading.Thread(target=run_in_transaction, args=(core.sessions, writer))
    thread.start()
    assert holding.wait(20)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.append(read_only(core.sessions, lambda s: s.scalar(
        select(Staff.display_name).where(Staff.id == sid)))))
    reader.start()
    reader.join(20)  # a read waiting for the writer would still be waiting: the writer only ends after this
    finished = not reader.is_alive()
    release.set()
    thread.join(20)
    reader.join(20)
    assert finished, "the read waited for the writer's lock"
    assert seen == ["ro-reader"]  # the last committed name, not the writer's uncommitted one
    assert read_only(core.sessions, lambda s: s.scalar(select(Staff.display_name).where(Staff.id == sid))) == "改了"


def test_orm_changes_in_a_read_only_transaction_are_refused_and_not_kept(core: App) -> None:
    sid = make_staff(core, "ro-writer", "pw-ro-writer-123", "agent")

    def rename(s) -> None:  # type: ignore[no-untyped-def]
        s.get(Staff, sid).display_name = "不该写"

    with pytest.raises(ReadOnlyViolation):
        read_only(core.sessions, rename)
    assert read_only(core.sessions, lambda s: s.get(Staff, sid).display_name) == "ro-writer"


def test_postgresql_refuses_sql_writes_in_a_read_only_transaction(core: App) -> None:
    if dialect_name(core.sessions) != "postgresql":
        pytest.skip("SQLite has no READ ONLY transactions (the ORM check above is what guards it there)")
    with pytest.raises(DBAPIError, match="read-only"):
        read_only(core.sessions, lambda s: s.execute(text("UPDATE staff SET display_name = 'x'")))
