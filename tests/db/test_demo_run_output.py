"""What `callcenter run` seeds and prints depends on the PBX: demo campaigns dial only on the simulated one, and
no IVR PIN is printed at start on any backend (real-Asterisk issue, item 15)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from callcenter.bootstrap import bootstrap
from callcenter.commands.demo import app as demo_app
from callcenter.commands.demo import print_demo_logins
from callcenter.demo.seed import DEMO_FUND_ACCOUNT, DEMO_PIN, seed
from callcenter.demo.seed_campaigns import seed_campaigns
from callcenter.settings import load_settings
from callcenter.store.db import transaction
from callcenter.store.models.dialer import Campaign


@pytest.mark.parametrize(("backend", "states"), [("simulated", {"running"}), ("asterisk", {"draft"})])
def test_demo_campaigns_run_only_on_the_simulated_pbx(db_url: str, clock, bank_sim, backend: str,  # type: ignore[no-untyped-def]
                                                      states: set[str]) -> None:
    core = bootstrap(load_settings(database_url=db_url, telephony_backend=backend), clock=clock,
                     bank=bank_sim.client())
    try:
        assert seed(core.sessions, clients=60, today=date(2026, 11, 25)) is not None
        demo = seed_campaigns(core, today=date(2026, 11, 25), cold_leads=5)
        assert demo is not None and demo.started == (backend == "simulated")
        with transaction(core.sessions) as s:
            assert set(s.scalars(select(Campaign.state))) == states
    finally:
        core.close()


def test_no_pin_is_printed_at_start_but_demo_logins_shows_it(capsys, db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    print_demo_logins()  # what `callcenter run` prints at every start
    started = capsys.readouterr().out
    assert DEMO_FUND_ACCOUNT in started and "admin / admin-demo-1" in started
    assert DEMO_PIN not in started
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", db_url)
    asked = CliRunner().invoke(demo_app, ["logins"])  # a person asks for the demo secrets
    assert asked.exit_code == 0 and DEMO_PIN in asked.output
