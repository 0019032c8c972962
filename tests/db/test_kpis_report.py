"""``kpis.report`` adds the attempts up in SQL: its figures are those of a row-by-row reference (the way it was
computed before) on random attempts around local midnights, on SQLite and PostgreSQL, by campaign, agent and day."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from callcenter.bootstrap import App
from callcenter.services.dialer.campaigns import create_campaign
from callcenter.services import kpis
from callcenter.store.db import transaction
from callcenter.store.models import Staff
from callcenter.store.models.dialer import Attempt, Campaign, Lead

pytestmark = pytest.mark.db
UTC = timezone.utc
NOW = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)


def reference(attempts: list[dict[str, object]], by: str, first: date, last: date, tz: ZoneInfo) -> dict[object, dict[str, object]]:
    start, end = datetime.combine(first, time(0), tz), datetime.combine(last + timedelta(days=1), time(0), tz)
    out: dict[object, dict[str, object]] = {}
    for a in attempts:
        at = a["dialled_at"]
        assert isinstance(at, datetime)
        if not start <= at < end:
            continue
        key = a["campaign_id"] if by == "campaign" else a["agent_id"] if by == "agent" else \
            at.astimezone(tz).date().isoformat()
        r = out.setdefault(key, {"attempts": 0, "contacts": 0, "talk_s": 0, "appointments": 0, "dispositions": {}})
        r["attempts"] += 1  # type: ignore[operator]
        r["contacts"] += a["connected_at"] is not None  # type: ignore[operator]
        r["talk_s"] += int(a["talk_s"] or 0)  # type: ignore[operator,call-overload]
        d = a["disposition"]
        if d:
            disp = r["dispositions"]
            assert isinstance(disp, dict)
            disp[d] = disp.get(d, 0) + 1
            r["appointments"] += d == "appointment_booked"  # type: ignore[operator]
    return out


@pytest.mark.parametrize("tz_name", ["Asia/Shanghai", "Asia/Kolkata"])  # whole hours, and half an hour off
def test_the_sql_figures_are_the_row_by_row_ones(core: App, tz_name: str) -> None:
    tz = ZoneInfo(tz_name)
    rng = random.Random(7)
    campaigns = [create_campaign(core, name=f"报表{k}", kind="cold_leads", script_id="cold_call") for k in range(3)]
    with transaction(core.sessions) as s:
        staff = [Staff(username=f"rep{k}", display_name=f"坐席{k}", password_hash="-", role="agent") for k in range(3)]
        s.add_all(staff)
        s.flush()
        agents = [st.id for st in staff]
        lead = Lead(campaign_id=campaigns[0], phone="+8613900000001", created_at=NOW, updated_at=NOW)
        s.add(lead)
        s.flush()
        rows: list[dict[str, object]] = []
        for i in range(400):
            # around local midnights: the day a row belongs to is the local one
            day = datetime.combine(date(2026, 11, 20) + timedelta(days=rng.randrange(6)), time(0), tz)
            at = (day + timedelta(minutes=rng.randrange(-90, 90))).astimezone(UTC)
            connected = rng.random() < 0.5
            rows.append({"lead_id": lead.id, "campaign_id": rng.choice(campaigns),
                         "agent_id": rng.choice(agents + [None]), "phone": "+8613900000001", "dialled_at": at,
                         "connected_at": at + timedelta(seconds=5) if connected else None,
                         "talk_s": rng.uniform(0, 300) if connected and rng.random() < 0.9 else None,
                         "disposition": rng.choice([None, "appointment_booked", "not_interested", "callback"]),
                         "attempt_no": 1, "dialer_id": "", "server": "", "mode": "progressive", "hangup_text": "",
                         "amd_cause": "", "abandoned": False, "notes": ""})
        s.execute(insert(Attempt), rows)
        names = dict(s.execute(select(Campaign.id, Campaign.name)).all())
    first, last = date(2026, 11, 21), date(2026, 11, 24)
    for by in kpis.REPORT_DIMENSIONS:
        with transaction(core.sessions) as s:
            got = kpis.report(s, by, first, last, tz)
        want = reference(rows, by, first, last, tz)
        assert {r["key"]: {k: r[k] for k in ("attempts", "contacts", "talk_s", "appointments", "dispositions")}
                for r in got} == want, by
        assert [r["key"] for r in got] == sorted(want, key=str)
        if by == "campaign":
            assert {r["label"] for r in got} <= set(names.values())
