"""Message wording: Jinja2 templates kept in callcenter/locales/<lang>/care.yaml, rendered in the talk scripts'
sandbox (immutable sandbox, StrictUndefined, the same date/money filters)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from callcenter.i18n import has, t
from callcenter.services.scripts.sandbox import compile_template


@dataclass(frozen=True)
class ClientView:
    name: str
    gender: str = ""
    language: str = "zh-CN"

    def as_vars(self, lang: str) -> dict[str, str]:
        return {
            "name": self.name,
            "surname": self.name[:1],
            "honorific": t(f"care.honorific.{self.gender}", "zh-CN") if self.gender in ("M", "F") else "",
            "honorific_en": t(f"care.honorific.{self.gender}", "en") if self.gender in ("M", "F") else "",
        }


@dataclass(frozen=True)
class EventView:
    kind: str
    code: str
    security_name: str
    event_date: date
    start_date: date | None = None
    end_date: date | None = None
    price: Decimal | None = None
    ratio: str = ""


def template_source(key: str, lang: str) -> str:
    full = f"care.templates.{key}"
    if not has(full, lang):
        raise KeyError(f"no message template {key!r}")
    return t(full, lang)


def render(key: str, lang: str, **variables: Any) -> str:
    """Render template ``key`` in ``lang`` (plain text, no HTML escaping: SMS and text-to-speech)."""
    return compile_template(template_source(key, lang), html=False).render(**variables).strip()


def sms_text(body: str, lang: str) -> str:
    """Signature first, opt-out instruction last (as carriers require of notification SMS in China)."""
    return f"{t('care.signature', lang)}{body}{t('care.sms_footer', lang)}"


def event_message(template: str, client: ClientView, event: EventView, lang: str) -> str:
    return render(template or event.kind, lang, client=client.as_vars(lang), event=event)


def birthday_message(template: str, client: ClientView, lang: str) -> str:
    return render(template or "birthday", lang, client=client.as_vars(lang))
