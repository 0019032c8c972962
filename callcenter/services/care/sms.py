"""SMS senders for the port in ``callcenter.ports.sms``: a Twilio implementation (through the twilio library, whose ``http_client`` hook a
test swaps for a fake), and a simulated sender that keeps an outbox (the default backend)."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from callcenter.domain.masking import mask_phone
from callcenter.ports.sms import SmsResult, SmsSender, SmsStatus
from callcenter.settings import Settings

log = logging.getLogger(__name__)

@dataclass
class SentSms:
    to: str
    body: str
    reference: str
    provider_ref: str


@dataclass
class SimulatedSms:
    """Keeps what it 'sent' in ``outbox``; numbers in ``fail_numbers`` are refused."""

    fail_numbers: set[str] = field(default_factory=set)
    outbox: list[SentSms] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1), repr=False)

    def send(self, to: str, body: str, *, reference: str, kind: str = "") -> SmsResult:
        if to in self.fail_numbers:
            return SmsResult("failed", "", "simulated refusal")
        ref = f"SIM{next(self._ids):08d}"
        self.outbox.append(SentSms(to, body, reference, ref))
        return SmsResult("sent", ref)


# Twilio message statuses -> ours (https://www.twilio.com/docs/messaging/api/message-resource#message-status-values)
TWILIO_STATUS: dict[str, SmsStatus] = {
    "accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
    "delivered": "delivered", "read": "delivered",
    "failed": "failed", "undelivered": "failed", "canceled": "failed",
}


class TwilioSms:
    """Messages.create through a ``twilio.rest.Client`` built by the caller (pass ``http_client=`` to it in tests)."""

    def __init__(self, client: Any, from_number: str, status_callback: str | None = None) -> None:
        self.client = client
        self.from_number = from_number
        self.status_callback = status_callback

    def send(self, to: str, body: str, *, reference: str, kind: str = "") -> SmsResult:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        kwargs: dict[str, Any] = {"to": to, "from_": self.from_number, "body": body}
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            message = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            log.warning("SMS to %s refused: %s %s", mask_phone(to), exc.code, exc.msg)
            return SmsResult("failed", "", f"twilio {exc.code}: {exc.msg}"[:255])
        except TwilioException as exc:  # transport problems surface as TwilioException
            log.warning("SMS to %s not sent: %s", mask_phone(to), type(exc).__name__)
            return SmsResult("failed", "", f"twilio: {exc}"[:255])
        return SmsResult(TWILIO_STATUS.get(str(message.status), "sent"), str(message.sid))


def make_sms_sender(settings: Settings, *, http_client: Any = None) -> SmsSender:
    """The sender the settings ask for (``sms_backend``: simulated | twilio)."""
    if settings.sms_backend == "twilio":
        from twilio.rest import Client

        client = Client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                        http_client=http_client)
        callback = settings.twilio_public_url.rstrip("/") + "/twilio/sms/status"
        return TwilioSms(client, settings.twilio_from_number, callback)
    return SimulatedSms()
