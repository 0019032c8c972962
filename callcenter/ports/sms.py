"""Text messages to clients (SMS): what the care jobs ask of a gateway. Adapters: ``callcenter.services.care.sms``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

SmsStatus = Literal["sent", "delivered", "failed"]


@dataclass(frozen=True)
class SmsResult:
    status: SmsStatus  # "sent": accepted by the provider; delivery reports come later
    provider_ref: str = ""
    error: str = ""


class SmsSender(Protocol):
    def send(self, to: str, body: str, *, reference: str) -> SmsResult:
        """Send one message; never raises for a refused message (returns status "failed")."""
        ...
