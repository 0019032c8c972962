"""The simulated bank's own database in tests: an SQLite file, or a PostgreSQL database of its own
(CALLCENTER_TEST_BANK_DATABASE_URL, else the test database's name + ``_bank``, created when missing)."""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

from callcenter.bank.books import BankBase
from callcenter.store.db import make_engine
from tests.conftest import PG_URL, create_database_if_missing


def bank_pg_url() -> str:
    explicit = os.environ.get("CALLCENTER_TEST_BANK_DATABASE_URL", "")
    if explicit:
        return explicit
    url = make_url(PG_URL)
    return url.set(database=f"{url.database}_bank").render_as_string(hide_password=False)


def fresh_bank_database(url: str) -> str:
    """An empty bank database at ``url`` (PostgreSQL): created when missing, the bank's tables dropped."""
    create_database_if_missing(url)
    engine = make_engine(url)
    try:
        BankBase.metadata.drop_all(engine)
    finally:
        engine.dispose()
    return url
