"""SQLite's one writer inside a process: ``run_in_transaction`` takes the engine's ``WriteQueue`` for the whole
transaction (a second writer waits on it, not in SQLite's polling busy handler), re-entrantly; PostgreSQL has
none (row locks and MVCC instead)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from callcenter.store.db import _queue_of, make_engine, make_session_factory, run_in_transaction


def test_sqlite_writers_of_one_process_take_turns_on_the_write_queue(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    sessions = make_session_factory(engine)
    queue = _queue_of(sessions)
    assert queue is not None
    run_in_transaction(sessions, lambda s: s.execute(text("CREATE TABLE t (n INTEGER)")))
    inside, go = threading.Event(), threading.Event()
    seen: list[int] = []

    def first(s: object) -> None:
        s.execute(text("INSERT INTO t VALUES (1)"))  # type: ignore[attr-defined]
        inside.set()
        assert go.wait(10)

    def second(s: object) -> None:
        seen.append(s.execute(text("SELECT count(*) FROM t")).scalar_one())  # type: ignore[attr-defined]

    a = threading.Thread(target=run_in_transaction, args=(sessions, first))
    a.start()
    assert inside.wait(10)
    assert not queue.acquire(timeout=0.01)  # held by the open transaction of the other thread
    b = threading.Thread(target=run_in_transaction, args=(sessions, second))
    b.start()
    b.join(0.2)
    assert b.is_alive() and seen == []  # waiting its turn
    go.set()
    a.join(10)
    b.join(10)
    assert seen == [1]  # ran after the first committed, and saw its row
    assert queue.acquire(timeout=0) and queue.acquire(timeout=0)  # free again, and re-entrant
    queue.release()
    queue.release()
    engine.dispose()


def test_postgresql_and_foreign_binds_have_no_write_queue() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connected
    assert _queue_of(make_session_factory(engine)) is None
