"""Journal operations: books, postings that sum to zero, balances derived from postings, invariant checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Select, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from callcenter.store.models import FundAccount, JournalEntry, LedgerAccount, Posting

EQUITY_OWNER = 0

Books = dict[tuple[str, int], int]  # book ids by (kind, owner id), as a caller already knows them

# a post's statements, built once (not paid per post): the entry, its postings, the balances of its books
_ENTRY_T = cast(Table, JournalEntry.__table__)
_ENTRY = insert(_ENTRY_T).returning(_ENTRY_T.c.id)
_POSTINGS = insert(cast(Table, Posting.__table__))
_BOOK_T = cast(Table, LedgerAccount.__table__)
_BALANCE = (update(_BOOK_T).where(_BOOK_T.c.id == bindparam("book_id"))
            .values(balance_fen=_BOOK_T.c.balance_fen + bindparam("delta")))


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
    session: Session, at: datetime, memo: str, moves: list[tuple[str, int, int]], transfer_id: int | None = None,
    *, books: Books | None = None,
) -> int:
    """Post one balanced journal entry. ``moves`` are (book kind, owner id, signed fen); they must sum to zero.
    Returns the entry id. ``books``: ids the caller already read (a transfer reads its books with its fund
    account); the others are looked up in one query (``books_query``). Postings go in as one batch; the books'
    cached balances change in one batch of UPDATEs, in book id order (no deadlock between two posts)."""
    if not moves:
        raise ValueError("an entry needs postings")
    if sum(m[2] for m in moves) != 0:
        raise ValueError(f"unbalanced entry {memo}: {moves}")
    wanted = {(kind, owner) for kind, owner, _ in moves}
    ids = {key: books[key] for key in wanted if key in books} if books else {}
    missing = wanted - ids.keys()
    if missing:
        ids.update({(kind, owner): id_ for id_, kind, owner in session.execute(books_query(missing))})
        for key in missing - ids.keys():
            ids[key] = book(session, *key).id
    entry_id = session.execute(_ENTRY, {"at": at, "memo": memo, "transfer_id": transfer_id}).scalar_one()
    session.execute(_POSTINGS, [
        {"entry_id": entry_id, "ledger_account_id": ids[(kind, owner)], "amount_fen": amount}
        for kind, owner, amount in moves
    ])
    per_book: dict[int, int] = {}
    for kind, owner, amount in moves:
        per_book[ids[(kind, owner)]] = per_book.get(ids[(kind, owner)], 0) + amount
    deltas = [{"book_id": book_id, "delta": delta} for book_id, delta in sorted(per_book.items()) if delta]
    if deltas:
        session.execute(_BALANCE, deltas)
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
