"""``callcenter bench transfers`` runs the service and both baselines (ORM session, raw DB-API) interleaved and
checks the work it timed: every transfer done, the ledger sound (small run; the figures are not asserted)."""

from __future__ import annotations

import pytest

from callcenter.bench.transfers import run
from tests.conftest import PG_URL

pytestmark = pytest.mark.db


@pytest.mark.parametrize("url", [None, pytest.param(PG_URL, id="postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="CALLCENTER_TEST_DATABASE_URL not set"))])
def test_a_small_run_times_three_paths_and_checks_them(url: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    figures = run(transfers=40, clients=4, database_url=url, chunk=10)
    assert figures["done"] == 40 and figures["invariants_ok"]
    assert all(figures[k] > 0 for k in ("service_tps", "orm_baseline_tps", "raw_baseline_tps"))
    out = capsys.readouterr().out
    assert "ORM baseline" in out and "raw baseline" in out and "every transfer done (40)" in out
