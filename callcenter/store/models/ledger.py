"""The money ledger: double-entry postings and transfers with idempotency keys. (The simulated bank keeps its
books in its own database: ``callcenter/bank``.)"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.store.models.base import Base, Fen, UtcDateTime


class LedgerAccount(Base):
    """One book in our journal.

    kinds: ``fund`` (a client's cash in a fund account), ``bank`` (our mirror of the client's bank account),
    ``transit`` (money of a fund account on its way to the bank), ``equity`` (opening balances);
    orders (``callcenter.services.orders``): ``frozen`` (cash held by a fund account's open orders), ``stock``
    (owner: a holding — its shares at cost), ``fees`` (owner 0: commission, stamp duty and transfer fees
    collected), ``market`` (owner 0: the exchange's side of every trade; may be negative, it carries the
    clients' realised gains and losses).
    ``balance_fen`` is a cache of the sum of postings, updated in the same transaction;
    ``callcenter custody check`` proves the two equal.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("kind", "owner_id", name="uq_ledger_accounts_kind_owner"),
        CheckConstraint("kind in ('fund','frozen','bank','transit','equity','stock','fees','market')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[int] = mapped_column(Integer)  # fund account id, bank account id, or 0 for equity
    balance_fen: Mapped[int] = mapped_column(Fen, default=0)


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    transfer_id: Mapped[int | None] = mapped_column(ForeignKey("transfers.id"), nullable=True, index=True)
    memo: Mapped[str] = mapped_column(String(64))

    postings: Mapped[list["Posting"]] = relationship(back_populates="entry")


class Posting(Base):
    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount_fen <> 0", name="nonzero"),
        Index("ix_postings_account", "ledger_account_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    ledger_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount_fen: Mapped[int] = mapped_column(Fen)  # signed: + increases the book

    entry: Mapped[JournalEntry] = relationship(back_populates="postings")


class Transfer(Base):
    """A bank-securities or main/auxiliary transfer request and its single, stored answer."""

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint("amount_fen > 0 or status = 'rejected'", name="positive"),
        CheckConstraint("status in ('pending','done','rejected','failed','voided')", name="status"),
        CheckConstraint("kind in ('bank_to_fund','fund_to_bank','fund_to_fund')", name="kind"),
        Index("ix_transfers_client_day", "client_id", "trade_date"),
        Index("ix_transfers_status", "status"),
        UniqueConstraint("idempotency_scope", "idempotency_key"),  # a key is unique per principal, not globally
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # who sent the key (callcenter.domain.access.Actor.scope: staff:<id>, client:<id>, back_office:<tool>)
    idempotency_scope: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(24), unique=True)  # shown to the client (流水号)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    kind: Mapped[str] = mapped_column(String(16))
    from_fund_account_id: Mapped[int | None] = mapped_column(ForeignKey("fund_accounts.id"), nullable=True)
    to_fund_account_id: Mapped[int | None] = mapped_column(ForeignKey("fund_accounts.id"), nullable=True)
    bank_account_id: Mapped[int | None] = mapped_column(ForeignKey("bank_accounts.id"), nullable=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    status: Mapped[str] = mapped_column(String(8))
    error_code: Mapped[str] = mapped_column(String(40), default="")
    channel: Mapped[str] = mapped_column(String(16))  # ivr / twilio / api / agent
    caller_phone: Mapped[str] = mapped_column(String(20), default="")  # part of the regulator's order record
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    trade_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    response_json: Mapped[str] = mapped_column(Text, default="")  # the stored answer, given again for the same key
