"""Demo campaigns for ``callcenter run``: when the database has no campaign yet, a running call centre.

* 老客户回访 (former clients, predictive, win-back script): clients closed within 18 months (segments helper).
* 休眠客户激活 (dormant, progressive): clients with no trade for 180 days.
* 网点潜在客户 (cold leads met at bank branches, preview): generated prospects from a fixed random seed.

Assigned to the demo service groups (win-back: groups 1-3, so ``agent01`` gets its calls; dormant: 4-6; cold
leads: 7-8). On the simulated PBX (the default) the campaigns dial any day and hour so the demo lives whenever it
is started, and they are started; on a real PBX (Asterisk, Twilio) they keep the usual 09:00-20:00 on working
days and stay drafts: the demo's numbers are made up, and nothing rings a real telephone until a supervisor
starts a campaign.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from sqlalchemy import func, select

from callcenter.bootstrap import App
from callcenter.demo import data
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.leads import LeadRow, add_leads
from callcenter.services.dialer.segment_leads import add_segment_leads
from callcenter.store.db import run_in_transaction
from callcenter.store.models import ServiceGroup
from callcenter.store.models.dialer import Campaign


@dataclass
class CampaignSeed:
    campaigns: dict[str, int]
    leads: dict[str, int]
    started: bool  # running on the simulated PBX; drafts on a real one (a supervisor starts them)


def _cold_rows(n: int, rng: random.Random, today: date) -> list[LeadRow]:
    rows = []
    for i in range(n):
        name = rng.choice(data.SURNAMES) + rng.choice(data.GIVEN_MALE + data.GIVEN_FEMALE)
        phone = "+86" + rng.choice(data.MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        met = today.toordinal() - rng.randrange(1, 30)
        rows.append(LeadRow(i + 1, phone, name, rng.randrange(3), None, None,
                            {"met_at": rng.choice(data.BRANCHES), "met_date": date.fromordinal(met).isoformat()}))
    return rows


def seed_campaigns(core: App, *, today: date | None = None, cold_leads: int = 300,
                   rng_seed: int = 20261125) -> CampaignSeed | None:
    """Create and start the demo campaigns; None (nothing changed) when any campaign exists or no groups do."""
    today = today or core.clock().astimezone(core.settings.tz).date()

    def state(s):
        return (s.execute(select(func.count(Campaign.id))).scalar_one(),
                list(s.scalars(select(ServiceGroup.id).order_by(ServiceGroup.id))))

    existing, groups = run_in_transaction(core.sessions, state)
    if existing or not groups:
        return None
    anytime = core.settings.telephony_backend == "simulated"
    window: dict[str, Any] = ({"window_start": time(0, 0), "window_end": time(23, 59, 59), "days": "every"} if anytime
              else {"window_start": time(9, 0), "window_end": time(20, 0), "days": "working"})
    retry = {"busy": 10, "no_answer": 120}
    specs = [
        ("win_back", "老客户回访 · 流失客户挽回", "former_clients", "win_back", "predictive", 30, groups[0:3]),
        ("dormant", "休眠客户激活", "dormant", "dormant", "progressive", 20, groups[3:6]),
        ("cold", "网点潜在客户首访", "cold_leads", "branch_prospect", "preview", 10, groups[6:8] or groups[-1:]),
    ]
    ids: dict[str, int] = {}
    leads: dict[str, int] = {}
    for key, name, kind, script, mode, priority, gids in specs:
        cid = dialer.create_campaign(core, name=name, kind=kind, script_id=script, dial_mode=mode, priority=priority,
                                     max_attempts=3, retry_delays=retry, caller_id="+862195500", **window)
        dialer.assign_campaign(core, cid, group_ids=gids)
        ids[key] = cid
    leads["win_back"] = add_segment_leads(core, ids["win_back"], "former", today, months=18).created
    leads["dormant"] = add_segment_leads(core, ids["dormant"], "dormant", today, days=180).created
    leads["cold"] = add_leads(core, ids["cold"], _cold_rows(cold_leads, random.Random(rng_seed), today)).created
    # Only the simulated PBX dials at once: on a real Asterisk or Twilio the demo's numbers are made up, and a
    # running campaign would ring real telephones. There they stay drafts until a supervisor starts one.
    started = anytime
    if started:
        for cid in ids.values():
            dialer.start_campaign(core, cid)
    return CampaignSeed(ids, leads, started)
