"""Service groups (2-3 staff, at least one back-office member, enforced), the monthly assignment of important
off-site clients by contribution rank, and the monthly KPIs with the top-2 / bottom-2 ranking."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from callcenter.services import groups, kpis
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client, Staff, Transfer
from callcenter.store.models.desk import ClientAssetSnapshot, DeskContact
from tests.factories import make_client, make_staff

pytestmark = pytest.mark.db
TZ = ZoneInfo("Asia/Shanghai")


_names = itertools.count(1)


def staff(core, n: int, back_office: int = 0) -> list[int]:  # type: ignore[no-untyped-def]
    ids = [make_staff(core, f"staff{next(_names)}", "pw-x-12345", "agent") for i in range(n)]

    def mark(s) -> None:  # type: ignore[no-untyped-def]
        for sid in ids[:back_office]:
            s.get(Staff, sid).back_office = True

    run_in_transaction(core.sessions, mark)
    return ids


def test_group_composition_is_enforced(core) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(groups.GroupRuleError) as e:
        groups.create_group(core.sessions, "独行", staff(core, 1, 1))
    assert e.value.code == "size"
    with pytest.raises(groups.GroupRuleError) as e:
        groups.create_group(core.sessions, "四人", staff(core, 4, 1))
    assert e.value.code == "size"
    with pytest.raises(groups.GroupRuleError) as e:
        groups.create_group(core.sessions, "全前台", staff(core, 3, 0))
    assert e.value.code == "no_back_office"
    members = staff(core, 2, 1)
    gid = groups.create_group(core.sessions, "合格", members)
    view = run_in_transaction(core.sessions, lambda s: groups.list_groups(s))
    assert [(g.id, g.valid, len(g.members)) for g in view] == [(gid, True, 2)]
    with pytest.raises(groups.GroupRuleError) as e:  # taking the back-office member away breaks the first group
        groups.create_group(core.sessions, "挖角", [members[0]] + staff(core, 1, 0))
    assert e.value.code == "would_break_other_group"


def _offsite(core, fen: int) -> int:  # type: ignore[no-untyped-def]
    cid, _ = make_client(core, accounts=[(fen, 0)])
    run_in_transaction(core.sessions, lambda s: setattr(s.get(Client, cid), "onsite", False))
    return cid


def test_monthly_assignment_by_contribution_rank(core) -> None:  # type: ignore[no-untyped-def]
    g = [groups.create_group(core.sessions, f"组{i}", staff(core, 2, 1)) for i in range(3)]
    clients = [_offsite(core, (10 - i) * 1_000_000_00) for i in range(7)]  # biggest first
    make_client(core, accounts=[(99_000_000_00, 0)])  # on-site: not assigned
    result = groups.assign_month(core.sessions, "2026-11", top_n=6)
    # snake order: ranks 1..6 -> groups 0,1,2,2,1,0
    assert result == {g[0]: [clients[0], clients[5]], g[1]: [clients[1], clients[4]], g[2]: [clients[2], clients[3]]}
    assert run_in_transaction(core.sessions, lambda s: s.get(Client, clients[6]).service_group_id) is None
    again = groups.assign_month(core.sessions, "2026-11", top_n=6)  # re-running replaces, never duplicates
    assert again == result


def test_monthly_kpis_split_growth_and_mark_top_and_bottom(core) -> None:  # type: ignore[no-untyped-def]
    gs = [groups.create_group(core.sessions, f"考核{i}", staff(core, 2, 1)) for i in range(5)]
    clients = []
    for i, gid in enumerate(gs):
        cid, _ = make_client(core, accounts=[((i + 1) * 100_000_00, 0)], group_id=gid)
        clients.append(cid)
    now = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)

    def history(s) -> None:  # type: ignore[no-untyped-def]
        for i, cid in enumerate(clients):  # October close: every client had 50,000.00
            s.add(ClientAssetSnapshot(month="2026-10", client_id=cid, assets_fen=50_000_00))
        s.add(Transfer(idempotency_scope="back_office:test", idempotency_key="k1", request_hash="h", reference="R1", client_id=clients[4], kind="bank_to_fund",
                       amount_fen=300_000_00, status="done", channel="ivr", trade_date=date(2026, 11, 10),
                       created_at=now))
        s.add(Transfer(idempotency_scope="back_office:test", idempotency_key="k2", request_hash="h", reference="R2", client_id=clients[4], kind="fund_to_bank",
                       amount_fen=20_000_00, status="done", channel="ivr", trade_date=date(2026, 11, 12),
                       created_at=now))
        s.add(Transfer(idempotency_scope="back_office:test", idempotency_key="k3", request_hash="h", reference="R3", client_id=clients[4], kind="bank_to_fund",
                       amount_fen=1_00, status="rejected", channel="ivr", trade_date=date(2026, 11, 12),
                       created_at=now))
        for n, complaint in ((1, False), (2, True)):
            s.add(DeskContact(agent_id=1, client_id=clients[0], started_at=now, ended_at=now,
                              disposition="complaint" if complaint else "completed", complaint=complaint))

    run_in_transaction(core.sessions, history)
    rows = kpis.compute_month(core.sessions, "2026-11", now, TZ)
    by_group = {r.group_id: r for r in rows}
    top = by_group[gs[4]]
    assert top.assets_start_fen == 50_000_00 and top.assets_end_fen == 500_000_00
    assert top.net_deposits_fen == 280_000_00
    assert top.investment_gain_fen == 500_000_00 - 50_000_00 - 280_000_00
    assert top.growth_fen == top.net_deposits_fen + top.investment_gain_fen
    low = by_group[gs[0]]
    assert (low.contacts, low.complaints) == (2, 1)
    assert [r.group_id for r in rows] == list(reversed(gs))  # ranked by asset growth
    assert [r.mark for r in rows] == ["top", "top", "", "bottom", "bottom"]
    assert kpis.compute_month(core.sessions, "2026-11", now, TZ) == rows  # idempotent
    assert [r.group_id for r in kpis.ranking(core.sessions, "2026-11", frozenset({gs[0]}))] == [gs[0]]


def test_turnover_comes_from_the_groups_trades(core) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from callcenter.domain.access import Actor
    from callcenter.services.orders import PlaceOrder
    from callcenter.store.models import Order, Trade

    traded, idle = (groups.create_group(core.sessions, f"换手{i}", staff(core, 2, 1)) for i in range(2))
    cid, (acct,) = make_client(core, accounts=[(1_000_000_00, 0)], group_id=traded)
    make_client(core, accounts=[(1_000_000_00, 0)], group_id=idle)
    q = core.orders.quote("600000")  # the clock is a trading morning of 2026-11
    assert core.orders.place(PlaceOrder("kpi:1", acct, "buy", "600000", 1000, q.limit_up, actor=Actor.client(cid))).ok
    volume = run_in_transaction(core.sessions, lambda s: s.execute(
        select(func.sum(Trade.value_fen)).join(Order, Order.id == Trade.order_id).where(Order.client_id == cid)
    ).scalar_one())
    assert volume > 0
    rows = {r.group_id: r for r in kpis.compute_month(core.sessions, "2026-11",
                                                       datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc), TZ)}
    row = rows[traded]
    assert row.turnover_bp == volume * 10_000 // ((row.assets_start_fen + row.assets_end_fen) // 2) > 0
    assert rows[idle].turnover_bp == 0
    assert run_in_transaction(core.sessions, lambda s: kpis.trades_volume(s, [cid], date(2026, 12, 1),
                                                                          date(2026, 12, 31))) == 0  # other month
