"""Read side: a client's accounts, balances and holdings as screens and the API show them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from callcenter.domain.access import Actor
from callcenter.domain.masking import mask_account, mask_phone
from callcenter.domain.money import fen_to_yuan
from callcenter.store.ledger import balances
from callcenter.store.models import Client, FundAccount, Holding, Security


@dataclass(frozen=True)
class AccountBalance:
    fund_account_id: int
    account_masked: str
    bank_name: str
    is_main: bool
    status: str
    available_fen: int
    frozen_fen: int
    market_value_fen: int

    @property
    def total_assets_fen(self) -> int:
        return self.available_fen + self.frozen_fen + self.market_value_fen


@dataclass(frozen=True)
class HoldingView:
    code: str
    name: str
    quantity: int
    cost_fen: int
    price_fen: int

    @property
    def market_value_fen(self) -> int:
        return self.quantity * self.price_fen


def holdings(s: Session, client_id: int) -> list[HoldingView]:
    """Largest market value first."""
    rows = s.execute(
        select(Holding, Security)
        .join(Security, Security.code == Holding.code)
        .join(FundAccount, FundAccount.id == Holding.fund_account_id)
        .where(FundAccount.client_id == client_id, Holding.quantity > 0)
    ).all()
    views = [HoldingView(h.code, sec.name, h.quantity, h.cost_fen, sec.last_price_fen) for h, sec in rows]
    return sorted(views, key=lambda v: (-v.market_value_fen, v.code))


def account_balances(s: Session, client_id: int) -> list[AccountBalance]:
    funds = s.execute(
        select(FundAccount).where(FundAccount.client_id == client_id).order_by(FundAccount.seq)
    ).scalars().all()
    ids = [f.id for f in funds]
    cash, frozen = balances(s, "fund", ids), balances(s, "frozen", ids)
    value: dict[int, int] = {}
    for h, price in s.execute(
        select(Holding, Security.last_price_fen).join(Security, Security.code == Holding.code)
        .where(Holding.fund_account_id.in_(ids))
    ).all():
        value[h.fund_account_id] = value.get(h.fund_account_id, 0) + h.quantity * price
    return [
        AccountBalance(f.id, mask_account(f.account_no), f.bank_account.bank_name, f.is_main, f.status,
                       cash[f.id], frozen[f.id], value.get(f.id, 0))
        for f in funds
    ]


def client_summary(s: Session, client: Client) -> dict[str, object]:
    accts = account_balances(s, client.id)
    hold = holdings(s, client.id)
    return {
        "id": client.id,
        "client_no": client.client_no,
        "name": client.name,
        "mobile": mask_phone(client.mobile),
        "status": client.status,
        "branch": client.branch,
        "service_group_id": client.service_group_id,
        "closed_on": client.closed_on.isoformat() if client.closed_on else None,
        "closed_reason": client.closed_reason,
        "accounts": [
            {"id": a.fund_account_id, "account": a.account_masked, "bank": a.bank_name, "main": a.is_main,
             "status": a.status, "available": str(fen_to_yuan(a.available_fen)),
             "frozen": str(fen_to_yuan(a.frozen_fen)), "market_value": str(fen_to_yuan(a.market_value_fen)),
             "total_assets": str(fen_to_yuan(a.total_assets_fen))}
            for a in accts
        ],
        "holdings": [
            {"code": h.code, "name": h.name, "quantity": h.quantity, "cost": str(fen_to_yuan(h.cost_fen)),
             "price": str(fen_to_yuan(h.price_fen)), "market_value": str(fen_to_yuan(h.market_value_fen))}
            for h in hold
        ],
        "total_assets": str(fen_to_yuan(sum(a.total_assets_fen for a in accts))),
    }


SEARCH_LIMIT = 20


def search_clients(s: Session, actor: Actor, query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, object]]:
    """Clients the actor may read (``callcenter.domain.access``) matching ``query``: a client number, a fund account
    number, the last four or more digits of a mobile number, or part of a name. Masked as everywhere; the scope is in
    the SQL, so a search never even counts another group's clients."""
    q = query.strip()
    if not q:
        return []
    digits = q.lstrip("+").replace(" ", "")
    if digits.isdigit() and len(digits) >= 4:
        by_account = select(FundAccount.client_id).where(FundAccount.account_no == digits)
        match = or_(Client.client_no == q.upper(), Client.mobile.endswith(digits), Client.id.in_(by_account))
    elif q.isascii() and q.isalnum() and any(ch.isdigit() for ch in q):
        match = Client.client_no == q.upper()
    else:
        match = Client.name.contains(q, autoescape=True)
    stmt = select(Client).where(match)
    if actor.role not in ("admin", "back_office"):
        scope = [Client.service_group_id.in_(sorted(actor.group_ids))] if actor.group_ids else []
        if actor.role == "agent" and actor.contact_client_ids:
            scope.append(Client.id.in_(sorted(actor.contact_client_ids)))
        if actor.role not in ("agent", "supervisor") or not scope:
            return []
        stmt = stmt.where(or_(*scope))
    rows = s.execute(stmt.order_by(Client.name, Client.id).limit(limit)).scalars().all()
    return [{"id": c.id, "client_no": c.client_no, "name": c.name, "mobile": mask_phone(c.mobile),
             "status": c.status, "branch": c.branch, "service_group_id": c.service_group_id} for c in rows]
