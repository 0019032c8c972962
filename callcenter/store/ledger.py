"""Journal operations: books, postings that sum to zero, balances derived from postings, invariant checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from callcenter.store.models import FundAccount, JournalEntry, LedgerAccount, Posting

EQUITY_OWNER = 0


def book(session: Session, kind: str, owner_id: int) -> LedgerAccount:
    acct = session.execute(
        select(LedgerAccount).where(LedgerAccount.kind == kind, LedgerAccount.owner_id == owner_id)
    ).scalar_one_or_none()
    if acct is None:
        acct = LedgerAccount(kind=kind, owner_id=owner_id, balance_fen=0)
        session.add(acct)
        session.flush()
    return acct


def open_books(session: Session, fund: FundAccount) -> None:
    """Create the books of a new fund account (its cash, frozen cash, transit) and of its bank account."""
    for kind, owner in (("fund", fund.id), ("frozen", fund.id), ("transit", fund.id), ("bank", fund.bank_account_id)):
        book(session, kind, owner)


def post(
    session: Session, at: datetime, memo: str, moves: list[tuple[str, int, int]], transfer_id: int | None = None
) -> JournalEntry:
    """Post one balanced journal entry. ``moves`` are (book kind, owner id, signed fen); they must sum to zero."""
    if not moves:
        raise ValueError("an entry needs postings")
    if sum(m[2] for m in moves) != 0:
        raise ValueError(f"unbalanced entry {memo}: {moves}")
    entry = JournalEntry(at=at, memo=memo, transfer_id=transfer_id)
    session.add(entry)
    session.flush()
    for kind, owner, amount in moves:
        acct = book(session, kind, owner)
        session.add(Posting(entry_id=entry.id, ledger_account_id=acct.id, amount_fen=amount))
        session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == acct.id)
            .values(balance_fen=LedgerAccount.balance_fen + amount)
            .execution_options(synchronize_session=False)
        )
    return entry


def balances(session: Session, kind: str, owner_ids: list[int]) -> dict[int, int]:
    """Cached balances of several books of one kind (missing books count as 0)."""
    if not owner_ids:
        return {}
    rows = session.execute(
        select(LedgerAccount.owner_id, LedgerAccount.balance_fen).where(
            LedgerAccount.kind == kind, LedgerAccount.owner_id.in_(owner_ids)
        )
    )
    found = {owner: bal for owner, bal in rows}
    return {owner: found.get(owner, 0) for owner in owner_ids}


@dataclass
class LedgerCheck:
    books: int
    entries: int
    problems: list[str]
    client_money_fen: int  # fund + frozen + transit + bank mirror: constant under transfers

    @property
    def ok(self) -> bool:
        return not self.problems


def check_ledger(session: Session) -> LedgerCheck:
    """Prove the journal sound: every entry sums to zero, every cached balance equals its postings, no client
    book is negative."""
    problems: list[str] = []
    unbalanced = session.execute(
        select(Posting.entry_id, func.sum(Posting.amount_fen)).group_by(Posting.entry_id)
        .having(func.sum(Posting.amount_fen) != 0)
    ).all()
    problems += [f"entry {eid} sums to {total}" for eid, total in unbalanced]
    sums = dict(session.execute(
        select(Posting.ledger_account_id, func.sum(Posting.amount_fen)).group_by(Posting.ledger_account_id)
    ).all())
    books = session.execute(select(LedgerAccount)).scalars().all()
    client_money = 0
    for acct in books:
        derived = int(sums.get(acct.id, 0) or 0)
        if derived != acct.balance_fen:
            problems.append(f"book {acct.kind}:{acct.owner_id} cached {acct.balance_fen} but postings say {derived}")
        if acct.kind != "equity":
            client_money += derived
            if derived < 0:
                problems.append(f"book {acct.kind}:{acct.owner_id} is negative ({derived})")
    entries = session.execute(select(func.count(JournalEntry.id))).scalar_one()
    return LedgerCheck(books=len(books), entries=int(entries), problems=problems, client_money_fen=client_money)
