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


@dataclass(frozen=True)
class SmsReceipt:
    """A delivery receipt: the message ``provider_ref`` names reached the phone, or finally did not."""

    provider_ref: str
    status: Literal["delivered", "failed"]
    detail: str = ""  # the gateway's code (e.g. DELIVERED, MK:0001)


class SmsSender(Protocol):
    def send(self, to: str, body: str, *, reference: str, kind: str = "") -> SmsResult:
        """Send one message; never raises for a refused message (returns status "failed"). ``kind``: what the
        message is (event, birthday, bulletin, market_close, trading): gateways that send only registered
        templates (mainland China) choose the template by it."""
        ...
