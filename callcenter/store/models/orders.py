"""Phone orders (电话委托): the counter's orders and trades (ours: key, channel, caller, frozen cash), and the
simulated exchange's own book (``sim_*``: what the exchange knows, read only by ``callcenter.trading``)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, Fen, UtcDateTime

ORDER_STATUSES = ("queued", "pending", "open", "partial", "filled", "cancelled", "rejected", "expired")


class Order(Base):
    """One order as the client gave it, with its single stored answer. ``frozen_fen`` is what it still holds in
    the fund account's ``frozen`` book (the journal proves the sum)."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        CheckConstraint("side in ('buy','sell')", name="side"),
        CheckConstraint("kind in ('limit','market')", name="kind"),
        CheckConstraint("status in ('queued','pending','open','partial','filled','cancelled','rejected','expired')",
                        name="status"),
        CheckConstraint("filled_qty >= 0 and cancelled_qty >= 0 and filled_qty + cancelled_qty <= quantity",
                        name="quantities"),
        CheckConstraint("frozen_fen >= 0", name="frozen_nonneg"),
        Index("ix_orders_account_day", "fund_account_id", "trade_date"),
        Index("ix_orders_unsettled", "settled", "trade_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_scope: Mapped[str] = mapped_column(String(64))  # Actor.scope of who placed it
    idempotency_key: Mapped[str] = mapped_column(String(128))  # '<call id>:<step>' on the IVR
    request_hash: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(24), unique=True)  # 合同号, the gateway's idempotency key
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    fund_account_id: Mapped[int] = mapped_column(ForeignKey("fund_accounts.id"))
    code: Mapped[str] = mapped_column(String(6))
    side: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(6))
    quantity: Mapped[int] = mapped_column(Integer)
    price_li: Mapped[int] = mapped_column(Fen)  # 0.001 yuan; a market order's protection price
    status: Mapped[str] = mapped_column(String(9))
    error_code: Mapped[str] = mapped_column(String(40), default="")
    filled_qty: Mapped[int] = mapped_column(Integer, default=0)
    filled_value_fen: Mapped[int] = mapped_column(Fen, default=0)
    fees_fen: Mapped[int] = mapped_column(Fen, default=0)
    cancelled_qty: Mapped[int] = mapped_column(Integer, default=0)
    frozen_fen: Mapped[int] = mapped_column(Fen, default=0)
    # the CSRC's record of a phone order: channel (ivr / twilio / text / cli / api) and the calling number
    channel: Mapped[str] = mapped_column(String(16))
    caller_phone: Mapped[str] = mapped_column(String(20), default="")
    trade_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    settled: Mapped[bool] = mapped_column(Boolean, default=False)
    response_json: Mapped[str] = mapped_column(Text, default="")


class Trade(Base):
    """One fill of an order (成交). Applied once: ``exec_id`` is the gateway's."""

    __tablename__ = "trades"
    __table_args__ = (Index("ix_trades_account_day", "fund_account_id", "trade_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exec_id: Mapped[int] = mapped_column(Integer, unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    fund_account_id: Mapped[int] = mapped_column(ForeignKey("fund_accounts.id"))
    code: Mapped[str] = mapped_column(String(6))
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[int] = mapped_column(Integer)
    price_li: Mapped[int] = mapped_column(Fen)
    value_fen: Mapped[int] = mapped_column(Fen)
    fees_fen: Mapped[int] = mapped_column(Fen)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    trade_date: Mapped[date] = mapped_column(Date)
    settled: Mapped[bool] = mapped_column(Boolean, default=False)


class SimOrder(Base):
    """The simulated exchange's book: an order as the exchange received it (idempotent on reference)."""

    __tablename__ = "sim_orders"
    __table_args__ = (Index("ix_sim_orders_status", "status", "trade_date"),)

    reference: Mapped[str] = mapped_column(String(24), primary_key=True)
    code: Mapped[str] = mapped_column(String(6))
    side: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(6))
    quantity: Mapped[int] = mapped_column(Integer)
    price_li: Mapped[int] = mapped_column(Fen)
    filled: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(9))  # open / filled / cancelled / rejected / expired
    reject_code: Mapped[str] = mapped_column(String(40), default="")
    trade_date: Mapped[date] = mapped_column(Date)
    first_step: Mapped[int] = mapped_column(Integer)  # the first price step it may trade at
    checked_step: Mapped[int] = mapped_column(Integer, default=-1)  # price steps matched so far
    placed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SimFill(Base):
    __tablename__ = "sim_fills"

    exec_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(ForeignKey("sim_orders.reference"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    price_li: Mapped[int] = mapped_column(Fen)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class PriceAlert(Base):
    """行情报警: tell the client (SMS, 财经秘书 topic ``price_alert``) when ``code`` crosses ``threshold_li``
    (``above``: rises to or over it; ``below``: falls to or under it). Fires once per crossing: firing disarms it,
    the price going back across the threshold re-arms it (``callcenter.services.care.trading_alerts``)."""

    __tablename__ = "price_alerts"
    __table_args__ = (
        UniqueConstraint("client_id", "code", "direction"),
        CheckConstraint("direction in ('above','below')", name="direction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    code: Mapped[str] = mapped_column(String(6))
    direction: Mapped[str] = mapped_column(String(5))
    threshold_li: Mapped[int] = mapped_column(Fen)
    armed: Mapped[bool] = mapped_column(Boolean, default=True)
    fired_count: Mapped[int] = mapped_column(Integer, default=0)
    last_fired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    source: Mapped[str] = mapped_column(String(8))  # ivr / agent
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderConfirmation(Base):
    """What a client heard read back and confirmed on the hotline before an order was placed (the CSRC's record
    of a phone order's confirmation): one row per order, written in the order's own transaction, kept under the
    ``order`` retention class until ``keep_until``. ``ivr_session_id``/``call_id`` link it to the call; a
    recording of that IVR session, when one exists, is ``recording_id`` (else this record stands alone)."""

    __tablename__ = "order_confirmations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    ivr_session_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    recording_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    caller_masked: Mapped[str] = mapped_column(String(32), default="")
    lang: Mapped[str] = mapped_column(String(8))
    code: Mapped[str] = mapped_column(String(6))
    name: Mapped[str] = mapped_column(String(64), default="")
    side: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(6))
    quantity: Mapped[int] = mapped_column(Integer)
    price_li: Mapped[int] = mapped_column(Fen)
    frozen_fen: Mapped[int] = mapped_column(Fen, default=0)
    fees_fen: Mapped[int] = mapped_column(Fen, default=0)
    heard: Mapped[str] = mapped_column(Text)  # the read-back as a sentence in the caller's language
    outcome: Mapped[str] = mapped_column(String(9))  # the order's status when it was recorded (or rejected)
    confirmed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    retention_class: Mapped[str] = mapped_column(String(10), default="order")
    keep_until: Mapped[datetime] = mapped_column(UtcDateTime)


APPOINTMENT_KINDS = ("group_callback", "analyst_callback", "branch_visit")


class Appointment(Base):
    """预约服务: a client's appointment of one kind at one slot (``slot_start``, UTC). Booked from the hotline
    (``channel`` ivr/twilio/text, idempotent on the call step's key) or by an agent or supervisor (``agent``)."""

    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        CheckConstraint("kind in ('group_callback','analyst_callback','branch_visit')", name="kind"),
        CheckConstraint("status in ('booked','cancelled','done','missed')", name="status"),
        Index("ix_appointments_slot", "slot_start", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    service_group_id: Mapped[int | None] = mapped_column(ForeignKey("service_groups.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    slot_start: Mapped[datetime] = mapped_column(UtcDateTime)
    slot_day: Mapped[date] = mapped_column(Date)  # the local day of the slot
    status: Mapped[str] = mapped_column(String(9), default="booked")
    channel: Mapped[str] = mapped_column(String(16))
    idempotency_scope: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    booked_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), nullable=True)  # staff, or the client
    ivr_session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AppointmentSlot(Base):
    """The count of open appointments of a kind at a slot: the row a booking locks and raises, so capacity holds
    under concurrent bookings (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite)."""

    __tablename__ = "appointment_slots"
    __table_args__ = (CheckConstraint("booked >= 0", name="booked_nonneg"),)

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    slot_start: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    booked: Mapped[int] = mapped_column(Integer, default=0)
    # set by a supervisor for this slot (0 closes it); None: the setting's capacity for the kind
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
