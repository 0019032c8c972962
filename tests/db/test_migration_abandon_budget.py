"""Migration 0008 on a database with attempts in it: abandon_days is filled from the last 31 days' live answers
(same rule as dialer.budget.counts_of, local days in the settings time zone)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import MetaData, insert, select, text

from callcenter.services.dialer.budget import local_day
from callcenter.settings import load_settings
from callcenter.store.db import make_engine
from callcenter.store.migrate import upgrade
from tests.conftest import PG_URL, database_params
from tests.db.test_migration_transfer_scope import _row


@pytest.mark.parametrize("kind", database_params())
def test_abandon_days_are_filled_from_recent_attempts(kind: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}" if kind == "sqlite" else PG_URL
    engine = make_engine(url)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    recent, old = now - timedelta(hours=1), now - timedelta(days=40)
    try:
        if kind == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade(engine, "0007")
        meta = MetaData()
        meta.reflect(engine)
        t = meta.tables
        with engine.begin() as conn:
            conn.execute(insert(t["campaigns"]).values(_row(t["campaigns"], id=5, kind="cold_leads", dial_mode="ratio",
                                                             state="running", days="every", max_attempts=3,
                                                             ratio=2.0, target_abandon=0.03, window_start=time(9),
                                                             window_end=time(20), retry_delays={})))
            conn.execute(insert(t["leads"]).values(_row(t["leads"], id=1, campaign_id=5, status="done", extra={})))
            made = [  # outcome, abandoned, connected, ended
                ("human", False, True, recent), ("human", False, False, recent), ("abandoned", True, False, recent),
                ("machine", False, False, recent), ("no_answer", False, False, recent), (None, False, False, None),
                ("abandoned", True, False, old),
            ]
            for i, (outcome, abandoned, connected, ended) in enumerate(made, start=1):
                conn.execute(insert(t["attempts"]).values(_row(
                    t["attempts"], id=i, lead_id=1, campaign_id=5, outcome=outcome, abandoned=abandoned,
                    dialled_at=(ended or now) - timedelta(minutes=1), ended_at=ended,
                    connected_at=ended if connected else None, talk_s=30.0 if connected else None)))
        upgrade(engine)
        meta = MetaData()
        meta.reflect(engine)
        days = meta.tables["abandon_days"]
        with engine.connect() as conn:
            got = [tuple(r) for r in conn.execute(select(days.c.campaign_id, days.c.day, days.c.humans,
                                                         days.c.abandoned, days.c.connected))]
        assert got == [(5, local_day(recent, load_settings().tz), 3, 1, 1)]  # the 40-day-old one is left out
    finally:
        engine.dispose()
