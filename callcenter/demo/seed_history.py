"""Six months of service-group history for the demo, so the KPI ranking (考核) means something on day one.

Without history every client lacks last month's snapshot and a group's asset growth equals its total assets.
Walking back from each grouped client's assets today, month by month, with a market move and net deposits drawn
from a fixed random stream, gives each past month a month-end snapshot (``ClientAssetSnapshot``) and each group
its stored KPI row (``GroupKpi``: growth split into net deposits and investment gain, trade volume and turnover,
contacts, complaints), ranked by the one ranking rule (``callcenter.services.kpis.score_key``). The current month
is then closed against a real snapshot of last month. Runs once, inside the demo seed; never on real data."""

from __future__ import annotations

import random
from datetime import date, datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.services.groups import client_assets_fen
from callcenter.services.kpis import score_key
from callcenter.store.models import Client
from callcenter.store.models.desk import ClientAssetSnapshot, GroupKpi

HISTORY_MONTHS = 6


def month_of(day: date, back: int) -> str:
    """The month ``back`` months before ``day``'s, as YYYY-MM."""
    index = day.year * 12 + day.month - 1 - back
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def seed_kpi_history(s: Session, today: date, rng_seed: int, months: int = HISTORY_MONTHS) -> int:
    """Month-end snapshots for the ``months`` months before this one and a ranked KPI row per group for each month
    that has a snapshot before it. Returns the number of KPI rows written (0 when history exists already)."""
    if s.execute(select(func.count(GroupKpi.id))).scalar_one():
        return 0
    rng = random.Random(f"{rng_seed}:kpi-history")
    clients = list(s.execute(select(Client.id, Client.service_group_id)
                             .where(Client.service_group_id.is_not(None)).order_by(Client.id)).all())
    # walk back: assets[k] = end of the month k months ago (k=0: now)
    flows: dict[int, list[tuple[int, int, int]]] = {}  # client -> [(assets at end, net deposits, trade volume)] by k
    for cid, _gid in clients:
        assets = client_assets_fen(s, cid)
        series = []
        for _k in range(months + 1):
            move = rng.gauss(0.006, 0.045)  # the month's market move on the client's assets
            deposits = int(assets * rng.gauss(0.01, 0.03)) if rng.random() < 0.35 else 0
            volume = int(assets * max(0.0, rng.lognormvariate(-0.7, 0.8))) if rng.random() < 0.7 else 0
            series.append((assets, deposits, volume))
            assets = max(0, int((assets - deposits) / (1 + move)))
        flows[cid] = series
    for k in range(1, months + 1):
        s.add_all(ClientAssetSnapshot(month=month_of(today, k), client_id=cid, assets_fen=flows[cid][k][0])
                  for cid, _ in clients)
    now = datetime.now(timezone.utc)
    written = 0
    groups = sorted({int(gid) for _, gid in clients if gid is not None})
    for k in range(1, months):  # month k months ago, measured against the snapshot of k+1 months ago
        rows = []
        for gid in groups:
            members = [cid for cid, g in clients if g == gid]
            start = sum(flows[c][k + 1][0] for c in members)
            end = sum(flows[c][k][0] for c in members)
            net = sum(flows[c][k][1] for c in members)
            volume = sum(flows[c][k][2] for c in members)
            avg = (start + end) // 2
            contacts = rng.randrange(len(members) // 3, len(members) + 1)
            rows.append(GroupKpi(month=month_of(today, k), group_id=gid, clients=len(members),
                                 assets_start_fen=start, assets_end_fen=end, net_deposits_fen=net,
                                 investment_gain_fen=end - start - net, trade_volume_fen=volume,
                                 turnover_bp=volume * 10_000 // avg if avg > 0 else 0, contacts=contacts,
                                 complaints=rng.choices([0, 1, 2, 3], weights=[60, 25, 10, 5])[0],
                                 qa_score_pct=None, qa_evaluations=0, rank=0, computed_at=now))
        for i, row in enumerate(sorted(rows, key=score_key)):
            row.rank = i + 1
        s.add_all(rows)
        written += len(rows)
    s.flush()
    return written
