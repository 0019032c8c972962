"""``callcenter custody reconcile`` against the bank process, over the protocol: it voids what the bank never
applied, names what only the bank knows, and exits 1 only for differences a person must look at."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from callcenter.adapters.bank_http import HttpBank
from callcenter.bootstrap import bootstrap
from callcenter.domain.access import Actor
from callcenter.commands.custody import app
from callcenter.services.transfers import TransferCommand, TransferService
from callcenter.settings import load_settings
from tests.conftest import FixedClock
from tests.factories import make_client
from tests.processes import bank_server, clean_env


@pytest.mark.slow
def test_reconcile_command_over_the_protocol(db_url: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bank = bank_server(tmp_path, bank_database_url=f"sqlite:///{tmp_path / 'bank.db'}")
    bank.start()
    for key, value in clean_env(database_url=db_url, bank_url=bank.url).items():
        monkeypatch.setenv(key, value)
    clock = FixedClock()
    core = bootstrap(load_settings(), clock=clock, bank=HttpBank(bank.url))
    try:
        _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
        unreachable = HttpBank("http://127.0.0.1:9", timeout=0.5)  # this engine process lost the bank
        lost = TransferService(core.sessions, unreachable, core.calendar, core.transfers._limits, core.settings.tz,
                               clock=clock).transfer(TransferCommand("cli-1", "fund_to_bank", main, "100",
                                                                     actor=Actor.back_office("tests")))
        assert lost.status == "pending"
        trade_day = clock.now.astimezone(ZoneInfo("Asia/Shanghai")).date()
        bank_day = datetime.now(timezone.utc).astimezone(ZoneInfo("Asia/Shanghai")).date()
        runner = CliRunner()
        first = runner.invoke(app, ["reconcile", "--day", trade_day.isoformat(), "--day", bank_day.isoformat()])
        assert first.exit_code == 0, first.output
        assert f"voided    {lost.reference}" in first.output and "DIFFERENCE" not in first.output
        assert core.bank.status(lost.reference) == "cancelled"  # the bank will never apply it now
        core.bank.credit("ORPHAN-1", f"62{main[2:10]}00", 5_00)  # applied at the bank, unknown to us
        second = runner.invoke(app, ["reconcile", "--day", bank_day.isoformat()])
        assert second.exit_code == 1 and "DIFFERENCE ORPHAN-1: applied at the bank" in second.output
        from callcenter.commands.bank import app as bank_app

        statement = runner.invoke(bank_app, ["statement", "--day", bank_day.isoformat()])
        assert statement.exit_code == 0 and "ORPHAN-1" in statement.output and "5.00" in statement.output
        assert f"62{main[2:10]}00" not in statement.output  # account numbers masked
        bad = runner.invoke(app, ["reconcile", "--day", "25.11.2026"])
        assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    finally:
        core.close()
        bank.stop()
