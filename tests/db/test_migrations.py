"""Alembic migrations build exactly the schema the models describe, on every database."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from callcenter.store.db import make_engine
from callcenter.store.migrate import current, upgrade
from callcenter.store.models import Base
from tests.conftest import PG_URL


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        if url.startswith("postgresql"):
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade(engine)
        assert current(engine) is not None
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def test_migrations_match_models_on_sqlite(tmp_path: Path) -> None:
    assert _diff(f"sqlite:///{tmp_path / 'm.db'}") == []


def test_migrations_match_models_on_postgresql() -> None:
    if not PG_URL:
        import pytest

        pytest.skip("CALLCENTER_TEST_DATABASE_URL not set (CI sets it)")
    assert _diff(PG_URL) == []
