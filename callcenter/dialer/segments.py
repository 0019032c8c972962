"""Leads built from client segments: former clients, dormant clients, holders of a security, birthdays."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from callcenter.bootstrap import App
from callcenter.dialer.leads import ImportResult, InvalidPhone, LeadRow, add_leads, normalise_phone
from callcenter.store.db import transaction
from callcenter.store.models.core import Client, FundAccount, Holding

SEGMENTS = ("former", "dormant", "holders", "birthdays")


def _months_back(today: date, months: int) -> date:
    y, m = divmod(today.year * 12 + today.month - 1 - months, 12)
    m += 1
    for day in (today.day, 30, 29, 28):
        try:
            return date(y, m, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def former_clients(s: Session, today: date, months: int) -> list[Client]:
    """Closed within the last ``months`` months."""
    since = _months_back(today, months)
    return list(s.scalars(select(Client).where(Client.status == "closed", Client.closed_on >= since)
                          .order_by(Client.closed_on.desc(), Client.id)))


def dormant_clients(s: Session, today: date, days: int) -> list[Client]:
    """Marked dormant, or open with no trade for ``days`` days (or never)."""
    before = today - timedelta(days=days)
    return list(s.scalars(select(Client).where(
        or_(Client.status == "dormant",
            and_(Client.status == "active", or_(Client.last_trade_on.is_(None), Client.last_trade_on <= before))))
        .order_by(Client.id)))


def holders_of(s: Session, code: str) -> list[Client]:
    q = (select(Client).join(FundAccount, FundAccount.client_id == Client.id)
         .join(Holding, Holding.fund_account_id == FundAccount.id)
         .where(Holding.code == code, Holding.quantity > 0, Client.status != "closed")
         .distinct().order_by(Client.id))
    return list(s.scalars(q))


def birthday_clients(s: Session, today: date, within_days: int) -> list[Client]:
    """Open clients whose birthday falls in [today, today + within_days]."""
    wanted = {((today + timedelta(days=i)).month, (today + timedelta(days=i)).day) for i in range(within_days + 1)}
    if (2, 28) in wanted and (3, 1) in wanted:
        wanted.add((2, 29))
    rows = s.scalars(select(Client).where(Client.birthday.is_not(None), Client.status != "closed").order_by(Client.id))
    return [c for c in rows if c.birthday is not None and (c.birthday.month, c.birthday.day) in wanted]


def segment_clients(s: Session, segment: str, today: date, *, months: int = 12, days: int = 180,
                    code: str = "", within_days: int = 7) -> list[Client]:
    if segment == "former":
        return former_clients(s, today, months)
    if segment == "dormant":
        return dormant_clients(s, today, days)
    if segment == "holders":
        return holders_of(s, code)
    if segment == "birthdays":
        return birthday_clients(s, today, within_days)
    raise ValueError(f"segment must be one of {', '.join(SEGMENTS)}")


def add_segment_leads(core: App, campaign_id: int, segment: str, today: date, **params: Any) -> ImportResult:
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
