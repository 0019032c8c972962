"""Small builders of test data through the same models and ledger the services use."""

from __future__ import annotations

import itertools
from datetime import date

from sqlalchemy.orm import Session

from callcenter.bootstrap import App
from callcenter.services.auth import hash_secret
from callcenter.store.db import run_in_transaction
from callcenter.store.ledger import open_books, post
from callcenter.store.models import BankAccount, Client, FundAccount, ServiceGroup, Staff

_seq = itertools.count(1)


def make_client(core: App, *, accounts: list[tuple[int, int]], group_id: int | None = None,
                status: str = "active", locked: set[int] | frozenset[int] = frozenset(), pin: str | None = None) -> tuple[int, list[str]]:
    """A client with len(accounts) fund accounts; accounts[i] = (fund cash fen, bank cash fen); the first is main.
    Returns (client id, fund account numbers). The bank accounts are opened at the bank through its protocol."""
    openings: list[tuple[str, int]] = []

    def work(s: Session) -> tuple[int, list[str]]:
        openings.clear()
        n = next(_seq)
        client = Client(client_no=f"T{n:06d}", name=f"测试{n}", id_number_masked="310115********0012",
                        mobile=f"+86139{n:08d}", branch="测试营业部", status=status, opened_on=date(2020, 1, 1),
                        closed_on=date(2026, 1, 1) if status == "closed" else None, service_group_id=group_id)
        s.add(client)
        s.flush()
        numbers = []
        pin_hash = hash_secret(pin) if pin else ""
        for i, (cash, bank_cash) in enumerate(accounts):
            bank = BankAccount(client_id=client.id, bank_code="ICBC", bank_name="中国工商银行",
                               account_no=f"62{n:08d}{i:02d}")
            s.add(bank)
            s.flush()
            fund = FundAccount(client_id=client.id, seq=i + 1, account_no=f"39{n:08d}{i:02d}", is_main=i == 0,
                               main_of_client=client.id if i == 0 else None, bank_account_id=bank.id,
                               status="locked" if i in locked else "active", opened_on=date(2020, 1, 1),
                               pin_hash=pin_hash)
            s.add(fund)
            s.flush()
            open_books(s, fund)
            moves = []
            if cash:
                moves += [("fund", fund.id, cash), ("equity", 0, -cash)]
            if bank_cash:
                moves += [("bank", bank.id, bank_cash), ("equity", 0, -bank_cash)]
            if moves:
                post(s, core.clock(), "opening", moves)
            openings.append((bank.account_no, bank_cash))
            numbers.append(fund.account_no)
        return client.id, numbers

    made = run_in_transaction(core.sessions, work)
    core.bank.open_accounts(openings)  # type: ignore[attr-defined]  # the simulator's HttpBank
    return made


def make_staff(core: App, username: str, password: str, role: str, group_id: int | None = None,
               supervises: list[int] | None = None) -> int:
    def work(s: Session) -> int:
        staff = Staff(username=username, display_name=username, password_hash=hash_secret(password), role=role,
                      service_group_id=group_id)
        s.add(staff)
        s.flush()
        for gid in supervises or []:
            s.get(ServiceGroup, gid).supervisor_id = staff.id
        return staff.id

    return run_in_transaction(core.sessions, work)


def make_group(core: App, name: str) -> int:
    def work(s: Session) -> int:
        g = ServiceGroup(name=name)
        s.add(g)
        s.flush()
        return g.id

    return run_in_transaction(core.sessions, work)
