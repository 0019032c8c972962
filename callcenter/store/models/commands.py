"""Durable call commands: what an agent asked the dialler process that owns a call to do with it (hang up now;
transfer and hold later). The row is the command (inserted in the same transaction as the desk's own
bookkeeping); a bus event only nudges the owner to claim it at once (``callcenter.services.call_commands``).

Life-cycle of ``state``: ``pending`` -> ``claimed`` (by ``claimed_by``, a dialler id) -> ``done`` | ``failed``;
a row left pending or claimed for too long becomes ``expired``. Contact and attempt ids are plain integers (the
desk and the dialler own those tables); the staff member is a key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base, UtcDateTime

COMMAND_KINDS = ("hangup", "hold", "resume", "mute", "unmute", "dtmf", "transfer", "consult", "consult_complete",
                 "consult_cancel", "conference", "conference_leave", "transfer_ivr", "listen", "whisper", "barge",
                 "monitor_stop",
                 "ivr_orders")  # the call controls (services/dialer/controls.py); ivr_orders: to the IVR order menu
COMMAND_STATES = ("pending", "claimed", "done", "failed", "expired")


class CallCommand(Base):
    __tablename__ = "call_commands"
    __table_args__ = (Index("ix_call_commands_state_requested", "state", "requested_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # COMMAND_KINDS
    contact_id: Mapped[int] = mapped_column(Integer, index=True)
    attempt_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    dialer_id: Mapped[str] = mapped_column(String(64), default="")  # the call's owner when it was requested
    requested_by: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(12), default="pending")  # COMMAND_STATES
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")
    args: Mapped[str] = mapped_column(Text, default="", server_default="")  # JSON: a call control's arguments
