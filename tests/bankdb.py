"""The simulated bank's own database in tests: an SQLite file, or a PostgreSQL database of its own
(CALLCENTER_TEST_BANK_DATABASE_URL, else the test database's name + ``_bank``, created when missing)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from callcenter.bank.books import BankBase
from callcenter.store.db import make_engine
from tests.conftest import PG_URL


def bank_pg_url() -> str:
    explicit = os.environ.get("CALLCENTER_TEST_BANK_DATABASE_URL", "")
    if explicit:
        return explicit
    url = make_url(PG_URL)
    return url.set(database=f"{url.database}_bank").render_as_string(hide_password=False)


def fresh_bank_database(url: str) -> str:
    """An empty bank database at ``url`` (PostgreSQL): created when missing, the bank's tables dropped."""
    target = make_url(url)
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        server.dispose()
    engine = make_engine(url)
    try:
        BankBase.metadata.drop_all(engine)
    finally:
        engine.dispose()
    return url
