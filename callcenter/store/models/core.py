"""Clients, their fund and bank accounts, holdings, staff and service groups."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.store.models.base import Base, Fen, UtcDateTime


class ServiceGroup(Base):
    """A service group (服务小组) of 2-3 staff, at least one from middle/back office."""

    __tablename__ = "service_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    branch: Mapped[str] = mapped_column(String(64), default="")
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", use_alter=True), nullable=True)

    members: Mapped[list["Staff"]] = relationship(back_populates="group", foreign_keys="Staff.service_group_id")


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (CheckConstraint("role in ('agent','supervisor','admin','qa')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # agent / supervisor / admin / qa (质检)
    back_office: Mapped[bool] = mapped_column(Boolean, default=False)  # middle/back-office member of a group
    service_group_id: Mapped[int | None] = mapped_column(ForeignKey("service_groups.id"), nullable=True)
    extension: Mapped[str] = mapped_column(String(32), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    group: Mapped[ServiceGroup | None] = relationship(back_populates="members", foreign_keys=[service_group_id])


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint("status in ('active','dormant','closed')", name="status"),
        CheckConstraint("status <> 'closed' or closed_on is not null", name="closed_has_date"),
        Index("ix_clients_status_closed_on", "status", "closed_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_no: Mapped[str] = mapped_column(String(20), unique=True)  # 客户号
    name: Mapped[str] = mapped_column(String(64))
    gender: Mapped[str] = mapped_column(String(1), default="")  # M / F
    id_number_masked: Mapped[str] = mapped_column(String(32))  # only the masked form is stored
    mobile: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    phone2: Mapped[str] = mapped_column(String(20), default="")
    birthday: Mapped[date | None] = mapped_column(Date, nullable=True)
    branch: Mapped[str] = mapped_column(String(64))
    onsite: Mapped[bool] = mapped_column(Boolean, default=True)  # 现场 / 非现场 client
    status: Mapped[str] = mapped_column(String(8), default="active")
    opened_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    closed_reason: Mapped[str] = mapped_column(String(32), default="")
    last_trade_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    risk_level: Mapped[str] = mapped_column(String(8), default="C3")
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    service_group_id: Mapped[int | None] = mapped_column(ForeignKey("service_groups.id"), nullable=True, index=True)

    fund_accounts: Mapped[list["FundAccount"]] = relationship(back_populates="client", order_by="FundAccount.id")
    bank_accounts: Mapped[list["BankAccount"]] = relationship(back_populates="client", order_by="BankAccount.id")


class BankAccount(Base):
    """The client's account at a depository bank (存管银行)."""

    __tablename__ = "bank_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    bank_code: Mapped[str] = mapped_column(String(8))
    bank_name: Mapped[str] = mapped_column(String(32))
    account_no: Mapped[str] = mapped_column(String(32), unique=True)

    client: Mapped[Client] = relationship(back_populates="bank_accounts")


class FundAccount(Base):
    """A fund account (资金账号); at most 5 per client, exactly one main, each bound to one bank account."""

    __tablename__ = "fund_accounts"
    __table_args__ = (
        UniqueConstraint("bank_account_id", name="uq_fund_accounts_bank_account_id"),
        CheckConstraint("status in ('active','locked','closed')", name="status"),
        CheckConstraint("seq between 1 and 5", name="seq_range"),
        UniqueConstraint("client_id", "seq", name="uq_fund_accounts_client_seq"),
        CheckConstraint(
            "(is_main = true and main_of_client = client_id) or (is_main = false and main_of_client is null)",
            name="main_flag",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # 1..5 — the cap of five is a constraint, not a convention
    account_no: Mapped[str] = mapped_column(String(20), unique=True)
    is_main: Mapped[bool] = mapped_column(Boolean, default=False)
    # One main account per client: main_flag is client_id when main, NULL otherwise, and unique.
    main_of_client: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    bank_account_id: Mapped[int] = mapped_column(ForeignKey("bank_accounts.id"))
    status: Mapped[str] = mapped_column(String(8), default="active")
    pin_hash: Mapped[str] = mapped_column(String(255), default="")  # IVR / phone PIN, argon2 (throttle: AuthThrottle)
    # 交易密码: the second secret that confirms a phone order, argon2 like the PIN, its own throttle (trading_pwd)
    trading_pwd_hash: Mapped[str] = mapped_column(String(255), default="")
    opened_on: Mapped[date] = mapped_column(Date)

    client: Mapped[Client] = relationship(back_populates="fund_accounts")
    bank_account: Mapped[BankAccount] = relationship()
    holdings: Mapped[list["Holding"]] = relationship(back_populates="fund_account", order_by="Holding.code")


class Security(Base):
    __tablename__ = "securities"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)  # A-share code
    name: Mapped[str] = mapped_column(String(32))
    exchange: Mapped[str] = mapped_column(String(4))  # SSE / SZSE
    last_price_fen: Mapped[int] = mapped_column(Fen)


class Holding(Base):
    __tablename__ = "holdings"
    __table_args__ = (
        UniqueConstraint("fund_account_id", "code", name="uq_holdings_account_code"),
        CheckConstraint("quantity >= 0", name="quantity_nonneg"),
        Index("ix_holdings_code", "code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fund_account_id: Mapped[int] = mapped_column(ForeignKey("fund_accounts.id"))
    code: Mapped[str] = mapped_column(ForeignKey("securities.code"))
    quantity: Mapped[int] = mapped_column(Integer)
    cost_fen: Mapped[int] = mapped_column(Fen)  # average cost per share, fen

    fund_account: Mapped[FundAccount] = relationship(back_populates="holdings")
    security: Mapped[Security] = relationship()


class AuditLog(Base):
    """Who opened which client record, and other security-relevant actions."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_action_at", "action", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), nullable=True, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
