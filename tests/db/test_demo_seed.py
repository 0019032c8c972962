"""The demo brokerage is believable and follows the custody rules it demonstrates."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import phonenumbers
import pytest
from sqlalchemy import func, select

from callcenter.bootstrap import App
from callcenter.demo import data
from callcenter.demo.seed import (DEMO_FUND_ACCOUNT, DEMO_PIN, DEMO_TRADING_PASSWORD, bank_openings,
                                  open_demo_bank_accounts, seed)
from callcenter.services.throttles import Scope
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger
from callcenter.store.models import Client, FundAccount, Holding, Order, ServiceGroup, Staff, Trade


@pytest.mark.slow
def test_demo_seed(core: App) -> None:
    today = date(2026, 11, 25)
    summary = seed(core.sessions, clients=400, today=today)
    assert summary is not None and summary.clients == 400
    assert seed(core.sessions, clients=400) is None  # never twice
    with transaction(core.sessions) as s:
        clients = s.execute(select(Client)).scalars().all()
        for c in clients:
            parsed = phonenumbers.parse(c.mobile)
            assert phonenumbers.is_valid_number(parsed) and parsed.country_code == 86, c.mobile
            assert phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE
            assert "*" in c.id_number_masked
        statuses = Counter(c.status for c in clients)
        assert 0.06 < statuses["closed"] / len(clients) < 0.15 and statuses["dormant"] > 0
        for c in clients:
            if c.status == "closed":
                assert c.closed_reason in data.CLOSE_REASONS
                assert today - timedelta(days=548) <= c.closed_on < today
        per_client = Counter(s.execute(select(FundAccount.client_id)).scalars())
        assert max(per_client.values()) <= 5 and min(per_client.values()) >= 1
        mains = Counter(s.execute(select(FundAccount.client_id).where(FundAccount.is_main.is_(True))).scalars())
        assert set(mains.values()) == {1} and len(mains) == len(clients)
        banks = {f.bank_account.bank_name for f in s.execute(select(FundAccount)).scalars()}
        assert banks <= {name for _, name in data.BANKS}
        codes = set(s.execute(select(Holding.code)).scalars())
        assert codes and codes <= {code for code, *_ in data.SECURITIES}
        aux_holdings = s.execute(select(func.count(Holding.id)).join(FundAccount)
                                 .where(FundAccount.is_main.is_(False))).scalar_one()
        assert aux_holdings == 0  # only the main account trades
        for group in s.execute(select(ServiceGroup)).scalars():
            members = s.execute(select(Staff).where(Staff.service_group_id == group.id)).scalars().all()
            assert 2 <= len(members) <= 3 and any(m.back_office for m in members)
        assert check_ledger(s).ok
        # an order history: filled and settled, one trade each, channel and caller recorded, none today
        orders = s.execute(select(Order)).scalars().all()
        assert summary.orders == len(orders) > 50 and summary.trades == s.execute(select(func.count(Trade.id))).scalar_one()
        assert {o.status for o in orders} == {"filled"} and all(o.settled and o.caller_phone for o in orders)
        assert {o.channel for o in orders} <= {"ivr", "twilio", "text"} and max(o.trade_date for o in orders) < today
        assert max(s.execute(select(Trade.exec_id)).scalars()) < 0  # clear of the gateway's exec ids
    assert core.ivr.authenticate(DEMO_FUND_ACCOUNT, DEMO_PIN, "", "demo").outcome == "ok"
    assert core.ivr._check_secret(Scope.TRADING_PWD, DEMO_FUND_ACCOUNT, DEMO_TRADING_PASSWORD,
                                  "trading_pwd_hash") == "ok"
    # the bank's side of the demo is opened at the bank, through its protocol, equal to our mirror books
    openings = bank_openings(core.sessions)
    assert open_demo_bank_accounts(core) == (len(openings), 0)
    assert open_demo_bank_accounts(core) == (0, len(openings))  # again: nothing changes
    assert core.bank.accounts() == dict(openings)  # type: ignore[attr-defined]


def test_demo_clients_have_distinct_pins_and_staff_distinct_passwords(core: App) -> None:
    """One known PIN opens one demo client, not all of them; one agent's password is not every agent's
    (hardening finding 14). The README's demo client and logins keep theirs."""
    from callcenter.demo.seed import DEMO_LOGINS
    from callcenter.services.auth import verify_secret

    assert seed(core.sessions, clients=40, today=date(2026, 11, 25)) is not None
    with transaction(core.sessions) as s:
        mains = s.execute(select(Client.client_no, FundAccount.account_no, FundAccount.status)
                          .join(FundAccount, FundAccount.client_id == Client.id)
                          .where(FundAccount.is_main.is_(True)).order_by(Client.id)).all()
        staff = s.execute(select(Staff.username, Staff.password_hash)).all()
    assert mains[0].account_no == DEMO_FUND_ACCOUNT
    open_ones = [(i, m) for i, m in enumerate(mains) if m.status == "active"][:6]
    assert core.ivr.authenticate(DEMO_FUND_ACCOUNT, DEMO_PIN, "", "readme").outcome == "ok"
    for i, m in open_ones[1:]:
        assert core.ivr.authenticate(m.account_no, DEMO_PIN, "", f"no-{i}").outcome == "wrong_pin", m.client_no
    for name, hashed in staff:
        assert verify_secret(hashed, "agent-demo-1") == (name == "agent01"), name
    for name, password, _role in DEMO_LOGINS:
        assert verify_secret(dict(staff)[name], password), name

    from callcenter.demo.seed import client_pins, staff_password  # how the demo derives them from the seed

    pins = list(client_pins(40))
    assert pins[0] == DEMO_PIN and len(set(pins)) == 40
    assert list(client_pins(40)) == pins  # the same demo on every machine
    for i, m in open_ones:
        assert core.ivr.authenticate(m.account_no, pins[i], "", f"ok-{i}").outcome == "ok", m.client_no
    passwords = {name: staff_password(name) for name, _ in staff}
    assert len(set(passwords.values())) == len(staff) > 10
    for name, hashed in staff:
        assert verify_secret(hashed, passwords[name]), name


def test_the_demo_has_six_months_of_group_history_so_the_ranking_means_something(core: App) -> None:
    """Issue 13: without history a group's asset growth equalled its total assets. The demo seeds month-end
    snapshots for six months and ranked KPI rows for five; closing this month then measures against last month."""
    from zoneinfo import ZoneInfo

    from callcenter.services import kpis
    from callcenter.store.models.desk import ClientAssetSnapshot, GroupKpi

    today = date(2026, 11, 25)
    summary = seed(core.sessions, clients=60, today=today)
    assert summary is not None and summary.kpi_months == 5
    with transaction(core.sessions) as s:
        months = sorted(s.execute(select(GroupKpi.month).distinct()).scalars())
        assert months == ["2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
        snapshots = sorted(s.execute(select(ClientAssetSnapshot.month).distinct()).scalars())
        assert snapshots == ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]
        groups = s.execute(select(func.count(ServiceGroup.id))).scalar_one()
        for m in months:
            rows = s.execute(select(GroupKpi).where(GroupKpi.month == m)).scalars().all()
            assert sorted(r.rank for r in rows) == list(range(1, groups + 1))
            assert all(r.assets_end_fen - r.assets_start_fen == r.net_deposits_fen + r.investment_gain_fen for r in rows)
            assert any(r.turnover_bp > 0 for r in rows)
    rows = kpis.compute_month(core.sessions, "2026-11", core.clock(), ZoneInfo("Asia/Shanghai"))
    assert rows and all(r.assets_start_fen > 0 for r in rows if r.clients)
    # growth is a month's change, not the group's whole book
    assert all(abs(r.growth_fen) < r.assets_end_fen // 2 for r in rows if r.assets_end_fen)
    assert seed(core.sessions, clients=60) is None
