"""Client segments as queries, one per segment, used by every reader: the dialler's lead segments
(``callcenter leads segment``), the care planner's recipients (holders of a security, birthdays).

* ``former_clients``: closed within the last N months.
* ``dormant_clients``: marked dormant, or open with no trade for N days (or never).
* ``holders_of``: open clients holding a security in any of their fund accounts.
* ``birthday_clients``: open clients whose birthday is celebrated in a date range
  (``domain.birthdays``: 29 February on 28 February in common years).
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import and_, extract, or_, select
from sqlalchemy.orm import Session

from callcenter.domain.birthdays import birthdays_celebrated_between
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
    """Clients (not closed) holding ``code`` in any of their fund accounts, by id."""
    holding = (select(FundAccount.client_id).join(Holding, Holding.fund_account_id == FundAccount.id)
               .where(Holding.code == code, Holding.quantity > 0))
    return list(s.scalars(select(Client).where(Client.id.in_(holding), Client.status != "closed")
                          .order_by(Client.id)))


def birthday_clients(s: Session, first: date, last: date) -> list[Client]:
    """Open clients whose birthday is celebrated on a day in ``[first, last]``, by id."""
    pairs = sorted(birthdays_celebrated_between(first, last))
    if not pairs:
        return []
    month, day = extract("month", Client.birthday), extract("day", Client.birthday)
    return list(s.scalars(select(Client).where(
        Client.status != "closed", Client.birthday.is_not(None),
        or_(*[and_(month == m, day == d) for m, d in pairs])).order_by(Client.id)))


def segment_clients(s: Session, segment: str, today: date, *, months: int = 12, days: int = 180,
                    code: str = "", within_days: int = 7) -> list[Client]:
    if segment == "former":
        return former_clients(s, today, months)
    if segment == "dormant":
        return dormant_clients(s, today, days)
    if segment == "holders":
        return holders_of(s, code)
    if segment == "birthdays":
        return birthday_clients(s, today, today + timedelta(days=within_days))
    raise ValueError(f"segment must be one of {', '.join(SEGMENTS)}")
