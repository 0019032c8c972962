"""Engine, sessions and transactions for SQLite (default) and PostgreSQL.

* SQLite: WAL, foreign keys on, a busy timeout, and every transaction opened with ``BEGIN IMMEDIATE`` so a
  read-then-write transaction holds the write lock from its first read (no lost updates, no upgrade deadlocks).
  Inside one process the transactions of ``run_in_transaction`` / ``transaction`` wait for the write lock on a
  lock of the engine's own (``WriteQueue``), woken the moment it is free, instead of in SQLite's busy handler,
  which polls with sleeps of up to 100 ms: with the web, the hotline and the dialler all writing, a request
  waited there up to 2 s behind transactions of a few milliseconds each (``bench loop``, 4,000 BEGINs waiting
  132 s in all). Other processes on the same file still meet SQLite's busy timeout.
* Reads: ``read_only`` runs a transaction that writes nothing — on SQLite a plain (deferred) ``BEGIN``: a WAL
  snapshot, taken without the write lock and without a turn in the ``WriteQueue``, so a screen's read never waits
  behind the dialler's writes; on PostgreSQL ``READ ONLY``. It refuses (``ReadOnlyViolation``) work that left
  ORM changes behind, and rolls back at the end.
* PostgreSQL: READ COMMITTED with explicit row locks taken in a fixed order by the services; serialisation
  failures and deadlocks (SQLSTATE 40001 / 40P01) are retried inside ``transaction()`` and never reach a caller.
* Both: ``hide_parameters`` — a database error's message and every log line carry the SQL statement but never
  its parameters (PINs' hashes, account and phone numbers, whatever a request sent).
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

RETRYABLE_SQLSTATES = {"40001", "40P01"}


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:" and not url.startswith("sqlite://" + "/:memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_begin_immediate(engine)
        _WRITE_QUEUES[engine] = WriteQueue()
        return engine
    return create_engine(url, echo=echo, hide_parameters=True, pool_size=pool_size, max_overflow=pool_size * 2,
                         pool_pre_ping=True)


def _sqlite_begin_immediate(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:  # a DB-API connection (sqlite3)
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")


_READ_ONLY = "callcenter_read_only"


class ReadOnlyViolation(RuntimeError):
    """Work run by ``read_only`` changed ORM objects: it needs ``run_in_transaction``."""


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if code in RETRYABLE_SQLSTATES:
            return True
        if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
            return True
    return False


class WriteQueue:
    """A re-entrant lock for SQLite's one writer in this process: a waiter is woken as soon as the holder is done
    (SQLite's busy handler polls with sleeps of up to 100 ms instead). ``acquire`` gives up after ``timeout``
    seconds (the caller then goes on to SQLite's own busy timeout, as without it)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, timeout: float = 30.0) -> bool:
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()


_WRITE_QUEUES: "weakref.WeakKeyDictionary[Engine, WriteQueue]" = weakref.WeakKeyDictionary()


def _queue_of(sessions: sessionmaker[Session]) -> WriteQueue | None:
    bind = sessions.kw.get("bind")
    return _WRITE_QUEUES.get(bind) if isinstance(bind, Engine) else None


@contextmanager
def _write_turn(sessions: sessionmaker[Session]) -> Iterator[None]:
    queue = _queue_of(sessions)
    held = queue is not None and queue.acquire()
    try:
        yield
    finally:
        if held and queue is not None:
            queue.release()


def run_in_transaction(
    sessions: sessionmaker[Session], work: Callable[[Session], T], *, attempts: int = 8
) -> T:
    """Run ``work(session)`` in one transaction, committing at the end; retry serialisation failures."""
    for attempt in range(1, attempts + 1):
        session = sessions()
        try:
            with _write_turn(sessions), session.begin():
                result = work(session)
            return result
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(random.uniform(0, 0.005 * 2**attempt))
        finally:
            session.close()
    raise AssertionError("unreachable")


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A single transaction without retry (for reads and for code that manages its own retries)."""
    session = sessions()
    try:
        with _write_turn(sessions), session.begin():
            yield session
    finally:
        session.close()


def read_only(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in a transaction that only reads (see the module's docstring), then roll it back."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, Engine):
        return run_in_transaction(sessions, work)
    conn = bind.connect().execution_options(**{_READ_ONLY: True})
    try:
        session = Session(conn, expire_on_commit=False, join_transaction_mode="rollback_only")
        try:
            with conn.begin():
                if bind.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                result = work(session)
                if session.new or session.dirty or session.deleted:
                    raise ReadOnlyViolation("a read-only transaction was asked to write")
                conn.rollback()
            return result
        finally:
            session.close()
    finally:
        conn.close()


def dialect_name(sessions: sessionmaker[Session] | Session) -> str:
    bind = sessions.kw["bind"] if isinstance(sessions, sessionmaker) else sessions.get_bind()
    return bind.dialect.name
