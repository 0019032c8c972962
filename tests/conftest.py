"""Shared fixtures: databases (SQLite always; PostgreSQL too when CALLCENTER_TEST_DATABASE_URL is set), a
wired App on a fixed clock, and small factories for clients and accounts."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from callcenter.bank.books import BankBooks
from callcenter.bank.inprocess import InProcessBank
from callcenter.bootstrap import App, bootstrap
from callcenter.settings import load_settings
from callcenter.store.db import make_engine
from callcenter.store.migrate import upgrade


def create_database_if_missing(url: str) -> None:
    """Create the PostgreSQL database ``url`` names when the server has none of that name."""
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        server.dispose()


def _worker_database(url: str) -> str:
    """Under pytest-xdist (``make test`` runs two workers) each worker has its own PostgreSQL database, named for
    the configured one plus the worker (``test_gw0``), created when missing; the environment variable is set to
    it, so the processes a test starts use the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker or not url.startswith("postgresql"):
        return url
    base = make_url(url)
    worker_url = base.set(database=f"{base.database}_{worker}").render_as_string(hide_password=False)
    create_database_if_missing(worker_url)
    os.environ["CALLCENTER_TEST_DATABASE_URL"] = worker_url
    return worker_url


PG_URL = _worker_database(os.environ.get("CALLCENTER_TEST_DATABASE_URL", ""))

# Settings of the suite (a test that is about one of them passes its own value, which wins over these):
# - argon2 at its cheapest for the hashes the tests make (staff passwords and PINs by the dozen per test): the
#   production parameters (t=3, 64 MiB) cost ~0.1 s a hash and were a third of the suite's time; what the tests
#   check of hashing (checks counted, the pool, throttles, parameters from settings) does not depend on the cost;
# - Twilio's IVR actions answered within their webhook unless a test asks otherwise (the wait path has its own
#   tests with a short window), so a loaded CI machine never turns a quick action into the wait path.
for _name, _value in (("CALLCENTER_ARGON2_TIME_COST", "1"), ("CALLCENTER_ARGON2_MEMORY_KIB", "8192"),
                      ("CALLCENTER_ARGON2_PARALLELISM", "1"), ("CALLCENTER_TWILIO_ACTION_INLINE_S", "10")):
    os.environ.setdefault(_name, _value)

# 2026-11-25 is a Wednesday and an SSE trading day; 10:30 in Shanghai is inside the transfer window.
TRADING_NOON_UTC = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)


def database_params() -> list[object]:
    params: list[object] = [pytest.param("sqlite", id="sqlite")]
    if PG_URL:
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


class FixedClock:
    def __init__(self, now: datetime = TRADING_NOON_UTC) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def fresh_database(kind: str, tmp_path: Path) -> str:
    """An empty, migrated database of ``kind``; PostgreSQL must be reachable when configured (fail, never skip)."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        engine = make_engine(url)
    else:
        url = PG_URL
        engine = make_engine(url)
        with engine.begin() as conn:  # raises (test fails) when PostgreSQL is not reachable
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    # Tables of models whose migration is not written yet; tests/db/test_migrations.py fails until it is.
    from callcenter.store.models import Base

    Base.metadata.create_all(engine, checkfirst=True)
    engine.dispose()
    return url


@pytest.fixture(params=database_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database(request.param, tmp_path)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def bank_db_url(tmp_path: Path) -> str:
    """The simulated bank's own database (never the engine's): an SQLite file beside the test's database."""
    return f"sqlite:///{tmp_path / 'bank.db'}"


@pytest.fixture
def bank_sim(bank_db_url: str, clock: FixedClock) -> InProcessBank:
    """The bank service in this process (its books, its protocol, through httpx.MockTransport), on the test clock."""
    sim = InProcessBank(BankBooks.open(bank_db_url, clock=clock))
    yield sim
    sim.close()


@pytest.fixture
def core(db_url: str, clock: FixedClock, bank_sim: InProcessBank) -> App:
    app = bootstrap(load_settings(database_url=db_url), clock=clock, bank=bank_sim.client())
    yield app
    app.close()
