"""Migration 0006 on a database with transfers in it: every existing key gets the scope of whoever made it,
and SQLite's table rebuild does not trip over the journal entries that refer to the transfers."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Date, DateTime, Integer, MetaData, Numeric, insert, text

from callcenter.store.db import make_engine
from callcenter.store.migrate import upgrade
from tests.conftest import PG_URL, database_params


def _row(table, **given):  # type: ignore[no-untyped-def]
    """Given values, and a plain value for every other NOT NULL column without a default."""
    row = dict(given)
    for col in table.columns:
        if col.name in row or col.nullable or col.primary_key or col.server_default is not None:
            continue
        if isinstance(col.type, Boolean):
            row[col.name] = False
        elif isinstance(col.type, (Integer, Numeric)):
            row[col.name] = 0
        elif isinstance(col.type, DateTime):
            row[col.name] = datetime(2026, 11, 25, tzinfo=timezone.utc)
        elif isinstance(col.type, Date):
            row[col.name] = date(2026, 11, 25)
        else:
            row[col.name] = "x"
    return row


@pytest.mark.parametrize("kind", database_params())
def test_existing_transfers_get_the_scope_of_their_principal(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if kind == "sqlite" else PG_URL
    engine = make_engine(url)
    try:
        if kind == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade(engine, "0005")
        meta = MetaData()
        meta.reflect(engine)
        t = meta.tables
        with engine.begin() as conn:
            conn.execute(insert(t["clients"]).values(_row(t["clients"], id=42, client_no="C42", status="active")))
            conn.execute(insert(t["staff"]).values(_row(t["staff"], id=7, username="sup", role="supervisor")))
            made = [("api-1", 7, "api"), ("ivr:call-9:3", None, "ivr"), ("bench-1", None, "bench")]
            for i, (key, staff, channel) in enumerate(made, start=1):
                conn.execute(insert(t["transfers"]).values(_row(
                    t["transfers"], id=i, idempotency_key=key, reference=f"R{i}", client_id=42, kind="fund_to_bank",
                    amount_fen=1, status="done", channel=channel, staff_id=staff)))
                conn.execute(insert(t["journal_entries"]).values(_row(t["journal_entries"], id=i, transfer_id=i)))
        upgrade(engine)
        with engine.connect() as conn:
            scopes = dict(conn.execute(text("SELECT idempotency_key, idempotency_scope FROM transfers")).all())
            linked = conn.execute(text("SELECT count(*) FROM journal_entries WHERE transfer_id IS NOT NULL")).scalar()
        assert scopes == {"api-1": "staff:7", "ivr:call-9:3": "client:42", "bench-1": "back_office:bench"}
        assert linked == 3
        if kind == "sqlite":
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on afterwards
    finally:
        engine.dispose()
