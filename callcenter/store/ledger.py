"""Journal operations: books, postings that sum to zero, balances derived from postings, invariant checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, func, insert, or_, select, update
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


def books_query(wanted: set[tuple[str, int]]) -> Select[int, str, int]:
    """The ids of the books ``(kind, owner id)``: one ``kind = ? AND owner_id = ?`` term per book, each a lookup in
    the unique index ``uq_ledger_accounts_kind_owner`` on both databases (a tuple ``IN (VALUES ...)`` is a scan of
    the whole index on SQLite, whose cost grows with the number of clients)."""
    return select(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.owner_id).where(
        or_(*(and_(LedgerAccount.kind == kind, LedgerAccount.owner_id == owner) for kind, owner in sorted(wanted)))
    )


def post(
    session: Session, at: datetime, memo: str, moves: list[tuple[str, int, int]], transfer_id: int | None = None
) -> int:
    """Post one balanced journal entry. ``moves`` are (book kind, owner id, signed fen); they must sum to zero.
    Returns the entry id. Books are looked up in one query (``books_query``); postings go in as one batch; the
    books' cached balances change in one UPDATE."""
    if not moves:
        raise ValueError("an entry needs postings")
    if sum(m[2] for m in moves) != 0:
        raise ValueError(f"unbalanced entry {memo}: {moves}")
    wanted = {(kind, owner) for kind, owner, _ in moves}
    rows = session.execute(books_query(wanted)).all()
    ids = {(kind, owner): id_ for id_, kind, owner in rows}
    for key in wanted - ids.keys():
        ids[key] = book(session, *key).id
    entry_id = session.execute(
        insert(JournalEntry).values(at=at, memo=memo, transfer_id=transfer_id).returning(JournalEntry.id)
    ).scalar_one()
    session.execute(insert(Posting), [
        {"entry_id": entry_id, "ledger_account_id": ids[(kind, owner)], "amount_fen": amount}
        for kind, owner, amount in moves
    ])
    per_book: dict[int, int] = {}
    for kind, owner, amount in moves:
        per_book[ids[(kind, owner)]] = per_book.get(ids[(kind, owner)], 0) + amount
    deltas = {book_id: delta for book_id, delta in sorted(per_book.items()) if delta}
    if deltas:  # every book's cached balance in one UPDATE (its rows locked in id order: no deadlock between posts)
        session.execute(
            update(LedgerAccount).where(LedgerAccount.id.in_(list(deltas)))
            .values(balance_fen=LedgerAccount.balance_fen + case(deltas, value=LedgerAccount.id))
            .execution_options(synchronize_session=False)
        )
    return entry_id


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
    client_money_fen: int  # fund + frozen + transit + bank mirror: constant under transfers (orders move it to
    # stock at cost, fees and the market side)

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
        if acct.kind in ("fund", "frozen", "transit", "bank"):
            client_money += derived
        if acct.kind not in ("equity", "market"):  # the two counterparties may be negative
            if derived < 0:
                problems.append(f"book {acct.kind}:{acct.owner_id} is negative ({derived})")
    entries = session.execute(select(func.count(JournalEntry.id))).scalar_one()
    return LedgerCheck(books=len(books), entries=int(entries), problems=problems, client_money_fen=client_money)
