"""``callcenter bench scale`` builds its history with SQL and checks what it times (small sizes here; the figures
themselves are not asserted: no speed test)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from callcenter.bench.scale import TARGETS, parse_sizes, run
from callcenter.cli import app
from tests.conftest import PG_URL

pytestmark = pytest.mark.db


def test_sizes_are_checked() -> None:
    assert parse_sizes("10000,1_000_000") == (10_000, 1_000_000)
    for bad in ("", "10000,5000", "abc", "10,20", "2000,2000"):
        with pytest.raises(ValueError, match="--sizes"):
            parse_sizes(bad)
    result = CliRunner().invoke(app, ["bench", "scale", "--sizes", "5000,1000"])
    assert result.exit_code != 0 and "--sizes" in result.output


@pytest.mark.parametrize("url", [None, pytest.param(PG_URL, id="postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="CALLCENTER_TEST_DATABASE_URL not set"))])
def test_a_small_run_builds_times_and_checks_every_size(url: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    figures = run(sizes=(1000, 3000), database_url=url, repeat=3, import_rows=300)
    assert figures["sizes"] == [1000, 3000]
    assert set(figures["ms"]) == {"1000", "3000"}
    for row in figures["ms"].values():
        assert set(row) == set(TARGETS) | {"import_s"} and all(v > 0 for v in row.values())
    assert set(figures["growth"]) == set(figures["met"]) == set(TARGETS)
    out = capsys.readouterr().out
    assert "growth from 1,000 to 3,000 attempts" in out and "target <= 1.5x" in out
