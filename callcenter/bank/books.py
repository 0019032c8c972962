"""The simulated bank's books: accounts and transactions in the bank's own database (``bank_database_url``).

These tables have their own metadata, not the engine's ``Base``: the engine's migrations never see them and
the engine never reads them. They are created at start (``create_all``); the simulator has no Alembic
migrations, its books are test data of an outside system, thrown away with ``var/bank.db``.

Every call runs in its own transaction. A delivery locks the account row first (PostgreSQL; SQLite holds the
write lock from ``BEGIN IMMEDIATE``), so two deliveries of one reference queue up and the second sees the
first. A reference is spent once answered: refused, applied or cancelled, it keeps that answer for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (BigInteger, Date, Engine, Index, MetaData, Row, String, Table, bindparam, func, insert, select,
                        update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from callcenter.store.db import make_engine, make_session_factory, run_in_transaction

DIRECTIONS = ("in", "out")  # in: 银行转证券 (the bank account is debited); out: 证券转银行 (it is credited)


class BankBase(DeclarativeBase):
    metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"})


class SimAccount(BankBase):
    __tablename__ = "sim_accounts"

    account_no: Mapped[str] = mapped_column(String(32), primary_key=True)
    balance_fen: Mapped[int] = mapped_column(BigInteger)
    opened_at: Mapped[str] = mapped_column(String(32))


class SimTransaction(BankBase):
    __tablename__ = "sim_transactions"
    __table_args__ = (Index("ix_sim_transactions_day", "business_day", "status"),)

    reference: Mapped[str] = mapped_column(String(32), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))  # in / out / void (cancelled before any delivery)
    account_no: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  # as requested, positive (0 for void)
    status: Mapped[str] = mapped_column(String(10))  # applied / rejected / cancelled
    code: Mapped[str] = mapped_column(String(40))  # why rejected: insufficient_funds, unknown_account, refused
    business_day: Mapped[date] = mapped_column(Date)
    at: Mapped[str] = mapped_column(String(32))  # ISO UTC


class ReferenceConflict(Exception):
    """The reference was already used for another request (another account, amount or direction)."""


@dataclass(frozen=True)
class Answer:
    reference: str
    status: str  # applied / rejected / cancelled / unknown
    code: str = ""
    direction: str = ""
    account_no: str = ""
    amount_fen: int = 0
    business_day: str = ""
    at: str = ""
    replayed: bool = False

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @property
    def signed_fen(self) -> int:
        """As the client's bank account sees it: - for in (money leaves it), + for out."""
        return -self.amount_fen if self.direction == "in" else self.amount_fen


_ACCOUNTS = cast(Table, SimAccount.__table__)
_TXNS = cast(Table, SimTransaction.__table__)
# a delivery's statements, built once: the account (its row locked on PostgreSQL), the reference, the new
# transaction, the balance
_BALANCE_OF = select(_ACCOUNTS.c.balance_fen).where(_ACCOUNTS.c.account_no == bindparam("no"))
_BALANCE_OF_LOCKED = _BALANCE_OF.with_for_update()
_TXN_OF = select(_TXNS).where(_TXNS.c.reference == bindparam("ref"))
_NEW_TXN = insert(_TXNS)
_MOVE = (update(_ACCOUNTS).where(_ACCOUNTS.c.account_no == bindparam("no"))
         .values(balance_fen=_ACCOUNTS.c.balance_fen + bindparam("signed")))


def _answer(txn: SimTransaction | Row[Any], replayed: bool = False) -> Answer:
    return Answer(reference=txn.reference, status=txn.status, code=txn.code, direction=txn.direction,
                  account_no=txn.account_no, amount_fen=txn.amount_fen, business_day=txn.business_day.isoformat(),
                  at=txn.at, replayed=replayed)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BankBooks:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now,
                 tz: ZoneInfo = ZoneInfo("Asia/Shanghai")) -> None:
        self.engine = engine
        self._sessions = make_session_factory(engine)
        self._clock = clock
        self._tz = tz
        self._pg = engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, url: str, *, clock: Callable[[], datetime] = utc_now,
             tz: ZoneInfo = ZoneInfo("Asia/Shanghai")) -> "BankBooks":
        """Connect to the bank's database and create its tables when missing."""
        engine = make_engine(url)
        BankBase.metadata.create_all(engine, checkfirst=True)
        return cls(engine, clock=clock, tz=tz)

    def close(self) -> None:
        self.engine.dispose()

    def _now(self) -> tuple[str, date]:
        now = self._clock()
        return now.astimezone(timezone.utc).isoformat(), now.astimezone(self._tz).date()

    # ------------------------------------------------------------------ accounts
    def open_accounts(self, accounts: list[tuple[str, int]]) -> tuple[int, int]:
        """Open each (account number, opening balance) that does not exist yet. Returns (opened, existing)."""
        at, _ = self._now()

        def work(s: Session, chunk: dict[str, int]) -> tuple[int, int]:
            have = set(s.execute(select(SimAccount.account_no).where(SimAccount.account_no.in_(list(chunk))))
                       .scalars())
            s.add_all(SimAccount(account_no=no, balance_fen=bal, opened_at=at) for no, bal in chunk.items()
                      if no not in have)
            return len(chunk) - len(have), len(have)

        opened = existing = 0
        items = list(dict(accounts).items())
        for start in range(0, len(items), 500):
            chunk = dict(items[start:start + 500])
            try:
                o, e = run_in_transaction(self._sessions, lambda s: work(s, chunk))
            except IntegrityError:  # opened concurrently by someone else: look again
                o, e = run_in_transaction(self._sessions, lambda s: work(s, chunk))
            opened, existing = opened + o, existing + e
        return opened, existing

    def balance(self, account_no: str) -> int | None:
        def work(s: Session) -> int | None:
            acct = s.get(SimAccount, account_no)
            return None if acct is None else acct.balance_fen

        return run_in_transaction(self._sessions, work)

    def accounts(self) -> list[tuple[str, int]]:
        return run_in_transaction(self._sessions, lambda s: [
            (a.account_no, a.balance_fen) for a in s.execute(select(SimAccount).order_by(SimAccount.account_no)).scalars()
        ])

    # ------------------------------------------------------------------ transfers
    def transfer(self, direction: str, reference: str, account_no: str, amount_fen: int, *,
                 refuse: str = "") -> Answer:
        """Apply a transfer once. ``refuse``: a code to refuse a new reference with (fault injection)."""
        if direction not in DIRECTIONS or amount_fen <= 0:
            raise ValueError("bad transfer")
        signed = -amount_fen if direction == "in" else amount_fen

        def work(s: Session) -> Answer:
            balance = s.execute(_BALANCE_OF_LOCKED if self._pg else _BALANCE_OF, {"no": account_no}).scalar()
            existing = s.execute(_TXN_OF, {"ref": reference}).first()
            if existing is not None:
                if existing.direction != "void" and (existing.direction, existing.account_no, existing.amount_fen) \
                        != (direction, account_no, amount_fen):
                    raise ReferenceConflict(reference)
                return _answer(existing, replayed=True)
            at, day = self._now()
            code = refuse or ("unknown_account" if balance is None else
                              "insufficient_funds" if balance + signed < 0 else "")
            row = dict(reference=reference, direction=direction, account_no=account_no, amount_fen=amount_fen,
                       status="rejected" if code else "applied", code=code, business_day=day, at=at)
            s.execute(_NEW_TXN, row)
            if not code:
                s.execute(_MOVE, {"no": account_no, "signed": signed})
            return Answer(reference=reference, status=str(row["status"]), code=code, direction=direction,
                          account_no=account_no, amount_fen=amount_fen, business_day=day.isoformat(), at=at)

        try:
            return run_in_transaction(self._sessions, work)
        except IntegrityError:  # a concurrent cancel or twin of the same reference won: answer as it stands
            return run_in_transaction(self._sessions, work)

    def query(self, reference: str) -> Answer:
        def work(s: Session) -> Answer:
            txn = s.get(SimTransaction, reference)
            return Answer(reference=reference, status="unknown") if txn is None else _answer(txn)

        return run_in_transaction(self._sessions, work)

    def cancel(self, reference: str) -> Answer:
        """Make sure ``reference`` never applies; the answer is the state it ends in."""
        def work(s: Session) -> Answer:
            txn = s.get(SimTransaction, reference)
            if txn is not None:
                return _answer(txn, replayed=True)
            at, day = self._now()
            txn = SimTransaction(reference=reference, direction="void", account_no="", amount_fen=0,
                                 status="cancelled", code="cancelled", business_day=day, at=at)
            s.add(txn)
            s.flush()
            return _answer(txn)

        try:
            return run_in_transaction(self._sessions, work)
        except IntegrityError:  # a delivery inserted it first
            return run_in_transaction(self._sessions, work)

    def statement(self, day: date) -> list[Answer]:
        """Every transaction applied on business day ``day``, in the order applied."""
        return run_in_transaction(self._sessions, lambda s: [
            _answer(t) for t in s.execute(
                select(SimTransaction).where(SimTransaction.business_day == day, SimTransaction.status == "applied")
                .order_by(SimTransaction.at, SimTransaction.reference)
            ).scalars()
        ])

    def total_fen(self) -> int:
        return int(run_in_transaction(self._sessions, lambda s: s.execute(
            select(func.coalesce(func.sum(SimAccount.balance_fen), 0))).scalar_one()))

