"""What administrators configure for the desk: the dispositions agents close a call with and the pause codes
they pause with, each for every campaign kind (``campaign_kind`` "") or for one kind, in both languages."""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.models.base import Base

CODE_TYPES = ("disposition", "pause")


class DeskCode(Base):
    """One disposition or pause code. ``code`` is what the engine records (a disposition's ``dnc`` and ``retry``
    have a meaning to the dialler); the labels are what people read. Disabled codes stay for the history."""

    __tablename__ = "desk_codes"
    __table_args__ = (
        UniqueConstraint("code_type", "campaign_kind", "code", name="uq_desk_codes_type_kind_code"),
        CheckConstraint("code_type in ('disposition','pause')", name="code_type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_type: Mapped[str] = mapped_column(String(12))  # disposition / pause
    campaign_kind: Mapped[str] = mapped_column(String(24), default="")  # "" = every campaign kind
    code: Mapped[str] = mapped_column(String(32))
    label_zh: Mapped[str] = mapped_column(String(64))
    label_en: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
