"""Builders shared by the client-care tests (no tests here)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import select

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client, FundAccount, Holding, Security
from tests.factories import make_client


def utc(y: int, m: int, d: int, hh: int = 2, mm: int = 0) -> datetime:
    """UTC; the default 02:00 UTC is 10:00 in Shanghai, inside every quiet-hours window."""
    return datetime(y, m, d, hh, mm, tzinfo=timezone.utc)


def security(core: App, code: str, name: str) -> None:
    def work(s):  # type: ignore[no-untyped-def]
        if s.get(Security, code) is None:
            s.add(Security(code=code, name=name, exchange="SSE", last_price_fen=1000))

    run_in_transaction(core.sessions, work)


def client_holding(core: App, codes: dict[str, int] | None = None, *, birthday: date | None = None,
                   language: str = "zh-CN", gender: str = "M", status: str = "active",
                   opened_on: date | None = None) -> int:
    """A client with one fund account holding ``codes`` (code -> quantity)."""
    cid, _ = make_client(core, accounts=[(0, 0)], status=status)

    def work(s):  # type: ignore[no-untyped-def]
        c = s.get(Client, cid)
        c.birthday, c.language, c.gender = birthday, language, gender
        if opened_on is not None:
            c.opened_on = opened_on
        fund = s.scalars(select(FundAccount).where(FundAccount.client_id == cid)).first()
        for code, qty in (codes or {}).items():
            if s.get(Security, code) is None:
                s.add(Security(code=code, name=f"证券{code}", exchange="SSE", last_price_fen=1000))
                s.flush()
            s.add(Holding(fund_account_id=fund.id, code=code, quantity=qty, cost_fen=1000))

    run_in_transaction(core.sessions, work)
    return cid


def mobile_of(core: App, cid: int) -> str:
    return run_in_transaction(core.sessions, lambda s: s.get(Client, cid).mobile)
