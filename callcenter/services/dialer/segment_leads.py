"""Leads built from client segments: former clients, dormant clients, holders of a security, birthdays (the
segment queries are ``callcenter.services.segments``, shared with the care planner)."""

from __future__ import annotations

from datetime import date
from typing import Any

from callcenter.services.deps import Deps
from callcenter.services.dialer.leads import ImportResult, InvalidPhone, LeadRow, add_leads, normalise_phone
from callcenter.services.segments import SEGMENTS, segment_clients
from callcenter.store.db import transaction

__all__ = ["SEGMENTS", "add_segment_leads", "segment_clients"]


def add_segment_leads(core: Deps, campaign_id: int, segment: str, today: date, **params: Any) -> ImportResult:
    """Add the clients of a segment to a campaign as leads (client id kept; bad numbers skipped)."""
    with transaction(core.sessions) as s:
        clients = segment_clients(s, segment, today, **params)
        rows = []
        for c in clients:
            try:
                phone = normalise_phone(c.mobile)
            except InvalidPhone:
                continue
            rows.append(LeadRow(0, phone, c.name, 0, None, c.id, {"segment": segment, "client_no": c.client_no}))
    return add_leads(core, campaign_id, rows)
