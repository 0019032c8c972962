"""The abandon budget in the database (dialer.budget) on SQLite and PostgreSQL: finish_attempt counts live
answers once, by local day, atomically across transactions; load_budgets reads today and 30 days in one go;
the wall board shows the same figures."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.services.dialer.budget import load_budgets
from callcenter.services.dialer.hopper import claim_leads, finish_attempt, start_attempt
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.campaigns import create_campaign, start_campaign
from callcenter.domain.abandon import AbandonBudget
from callcenter.services.kpis import wallboard
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.dialer import AbandonDay, Attempt, Campaign

pytestmark = pytest.mark.db
UTC = timezone.utc
SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # Wednesday 10:30 in Shanghai


def campaign(core: App) -> int:
    cid = create_campaign(core, name="预算", kind="cold_leads", script_id="cold_call", window_start=time(0),
                          window_end=time(23, 59), days="every", max_attempts=9)
    start_campaign(core, cid)
    return cid


def dial_and_end(core: App, cid: int, outcomes: list[tuple[str, bool, bool]], at: datetime = NOW) -> list[int]:
    """One attempt per (outcome, abandoned, connected), each on a fresh lead, ended at ``at``."""
    start = len(run_in_transaction(core.sessions, lambda s: s.scalars(select(Attempt.id)).all()))
    add_leads(core, cid, [LeadRow(0, f"+86139{start + i:08d}") for i in range(len(outcomes))])

    def work(s):  # type: ignore[no-untyped-def]
        c = s.get(Campaign, cid)
        leads = claim_leads(s, c, "d1", len(outcomes), at - timedelta(seconds=30), lambda d: True)
        assert len(leads) == len(outcomes)
        ids = []
        for lead, (outcome, abandoned, connected) in zip(leads, outcomes):
            a = start_attempt(s, lead, c, "d1", at - timedelta(seconds=30), mode="ratio")
            if connected:
                a.connected_at = at - timedelta(seconds=20)
            finish_attempt(s, a, outcome, at, abandoned=abandoned, talk_s=20.0 if connected else None, tz=SH)
            ids.append(a.id)
        return ids

    return run_in_transaction(core.sessions, work)


def rows(core: App, cid: int) -> list[tuple[str, int, int, int]]:
    with transaction(core.sessions) as s:
        return [(r.day.isoformat(), r.humans, r.abandoned, r.connected)
                for r in s.scalars(select(AbandonDay).where(AbandonDay.campaign_id == cid).order_by(AbandonDay.day))]


def test_finish_attempt_counts_live_answers_only_and_once(core: App) -> None:
    cid = campaign(core)
    ids = dial_and_end(core, cid, [("human", False, True), ("human", False, False), ("abandoned", True, False),
                                   ("machine", False, False), ("busy", False, False), ("no_answer", False, False),
                                   ("failed", False, False), ("lost", False, False)])
    # three live answers: one reached an agent, one hung up in the grace period, one abandoned
    assert rows(core, cid) == [("2026-11-25", 3, 1, 1)]
    dial_and_end(core, cid, [("human", False, True)])  # a second transaction adds to the same row
    assert rows(core, cid) == [("2026-11-25", 4, 1, 2)]

    def close_again(s):  # type: ignore[no-untyped-def]
        finish_attempt(s, s.get(Attempt, ids[2]), "abandoned", NOW + timedelta(minutes=1), abandoned=True, tz=SH)

    run_in_transaction(core.sessions, close_again)
    assert rows(core, cid) == [("2026-11-25", 4, 1, 2)]  # an attempt already closed is not counted again


def test_the_local_day_decides_and_load_budgets_reads_today_and_30_days(core: App) -> None:
    cid, other, silent = campaign(core), campaign(core), campaign(core)
    late = datetime(2026, 11, 24, 15, 59, tzinfo=UTC)  # 23:59 on the 24th in Shanghai
    early = datetime(2026, 11, 24, 16, 1, tzinfo=UTC)  # 00:01 on the 25th in Shanghai
    dial_and_end(core, cid, [("abandoned", True, False), ("human", False, True)], late)
    dial_and_end(core, cid, [("human", False, True)], early)
    dial_and_end(core, cid, [("abandoned", True, False)] * 2, NOW - timedelta(days=29))  # 27 Oct: in the 30 days
    dial_and_end(core, cid, [("abandoned", True, False)] * 5, NOW - timedelta(days=30))  # 26 Oct: out
    dial_and_end(core, other, [("human", False, True)] * 3, NOW)
    assert [r[0] for r in rows(core, cid)] == ["2026-10-26", "2026-10-27", "2026-11-24", "2026-11-25"]
    with transaction(core.sessions) as s:
        budgets = load_budgets(s, [cid, other, silent], NOW, SH)
        assert budgets == {
            cid: AbandonBudget(today_humans=1, today_abandoned=0, d30_humans=5, d30_abandoned=3),
            other: AbandonBudget(3, 0, 3, 0),
            silent: AbandonBudget(),
        }
        # seen at 23:59 on the 24th, today is the 24th and the 30 days reach back to 26 Oct
        assert load_budgets(s, [cid], late, SH)[cid] == AbandonBudget(2, 1, 9, 8)
        assert load_budgets(s, [], NOW, SH) == {}
        with pytest.raises(ValueError, match="naive"):
            load_budgets(s, [cid], NOW.replace(tzinfo=None), SH)
        board = wallboard(s, NOW, SH)
    row = next(c for c in board["campaigns"] if c["id"] == cid)  # type: ignore[attr-defined]
    assert row["abandon_today"] == 0.0 and row["abandon_30d"] == pytest.approx(3 / 5)
    assert next(c for c in board["campaigns"] if c["id"] == silent)["abandon_30d"] is None  # type: ignore[attr-defined]


def test_concurrent_finishers_add_up(core: App) -> None:
    """Two diallers closing attempts of one campaign at the same time: no count is lost (atomic upsert)."""
    import threading

    cid = campaign(core)
    add_leads(core, cid, [LeadRow(0, f"+86138{i:08d}") for i in range(24)])

    def open_all(s):  # type: ignore[no-untyped-def]
        c = s.get(Campaign, cid)
        return [start_attempt(s, lead, c, "d1", NOW, mode="ratio").id
                for lead in claim_leads(s, c, "d1", 24, NOW, lambda d: True)]

    ids = run_in_transaction(core.sessions, open_all)
    assert len(ids) == 24
    errors: list[BaseException] = []

    def finisher(mine: list[int]) -> None:
        try:
            for aid in mine:
                def close(s, aid: int = aid):  # type: ignore[no-untyped-def]
                    a = s.get(Attempt, aid)
                    abandoned = aid % 4 == 0
                    finish_attempt(s, a, "abandoned" if abandoned else "human", NOW + timedelta(seconds=5),
                                   abandoned=abandoned, talk_s=None if abandoned else 10.0, tz=SH)

                run_in_transaction(core.sessions, close)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=finisher, args=(ids[i::2],)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors and not any(th.is_alive() for th in threads)
    abandoned = sum(1 for aid in ids if aid % 4 == 0)
    assert rows(core, cid) == [("2026-11-25", 24, abandoned, 24 - abandoned)]
