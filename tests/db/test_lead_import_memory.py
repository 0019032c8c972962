"""The lead import streams (``leads.import_lead_file``): its peak of Python memory (``tracemalloc``) does not grow
with the file (a file five times longer stays within 1.5x), on SQLite and PostgreSQL; every row is created."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.bench.scale import write_lead_file
from callcenter.bootstrap import App
from callcenter.services.dialer.campaigns import create_campaign
from callcenter.services.dialer.leads import LeadFile, import_lead_file
from callcenter.store.db import transaction
from callcenter.store.models.dialer import Lead

pytestmark = pytest.mark.db


def _peak_import(core: App, path: Path, rows: int) -> int:
    cid = create_campaign(core, name=f"内存{rows}", kind="cold_leads", script_id="cold_call")
    tracemalloc.start()
    try:
        report = import_lead_file(core.sessions, cid, LeadFile.from_path(path), core.clock(), batch_size=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.imported and report.created == rows
    with transaction(core.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Lead).where(Lead.campaign_id == cid)) == rows
    return peak


def test_a_longer_file_takes_no_more_memory(core: App, tmp_path: Path) -> None:
    small = write_lead_file(tmp_path / "small.csv", 1_000)
    large = write_lead_file(tmp_path / "large.csv", 5_000)
    _peak_import(core, small, 1_000)  # warm: the first import loads modules, compiles statements
    peak_small = _peak_import(core, small, 1_000)
    peak_large = _peak_import(core, large, 5_000)
    assert peak_large <= 1.5 * peak_small, (peak_small, peak_large)
