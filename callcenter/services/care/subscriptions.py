"""财经秘书 — which alerts a client gets, and channel opt-outs. One service for the IVR menu, the agent screen
and inbound SMS ("TD" unsubscribes). Topics and their defaults are in ``callcenter.domain.reminders.TOPICS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.reminders import TOPICS
from callcenter.i18n import t
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareOptOut, CareSubscription

# IVR digits of the 财经秘书 menu, in order.
IVR_TOPICS: tuple[str, ...] = ("corporate_actions", "ipo", "bulletin", "market_close", "birthday",
                                  "trade_confirmation", "price_alert")
UNSUBSCRIBE_WORDS = {"TD", "T", "退订", "STOP", "UNSUBSCRIBE", "0000"}


class UnknownTopic(ValueError):
    pass


@dataclass(frozen=True)
class Preferences:
    client_id: int
    topics: dict[str, bool]  # every topic, defaults filled in
    opted_out: frozenset[str]  # sms / call / all


def topics_of(s: Session, client_ids: list[int]) -> dict[int, dict[str, bool]]:
    out = {cid: dict(TOPICS) for cid in client_ids}
    if client_ids:
        for row in s.scalars(select(CareSubscription).where(CareSubscription.client_id.in_(client_ids))):
            if row.topic in TOPICS:
                out[row.client_id][row.topic] = row.enabled
    return out


def optouts_of(s: Session, client_ids: list[int]) -> dict[int, frozenset[str]]:
    sets: dict[int, set[str]] = {cid: set() for cid in client_ids}
    if client_ids:
        for row in s.scalars(select(CareOptOut).where(CareOptOut.client_id.in_(client_ids))):
            sets[row.client_id].add(row.channel)
    return {cid: frozenset(v) for cid, v in sets.items()}


class SubscriptionService:
    """Use cases, one transaction each. ``source`` is who made the change: ivr / agent / sms / web."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock

    def get(self, client_id: int) -> Preferences:
        def work(s: Session) -> Preferences:
            return Preferences(client_id, topics_of(s, [client_id])[client_id], optouts_of(s, [client_id])[client_id])

        return run_in_transaction(self.sessions, work)

    def set_topic(self, client_id: int, topic: str, enabled: bool, *, source: str,
                  staff_id: int | None = None) -> Preferences:
        if topic not in TOPICS:
            raise UnknownTopic(t("care.errors.unknown_topic", "zh-CN", topic=topic))

        def work(s: Session) -> None:
            row = s.get(CareSubscription, (client_id, topic))
            if row is None:
                s.add(CareSubscription(client_id=client_id, topic=topic, enabled=enabled, source=source,
                                       staff_id=staff_id, updated_at=self.clock()))
            else:
                row.enabled, row.source, row.staff_id, row.updated_at = enabled, source, staff_id, self.clock()

        run_in_transaction(self.sessions, work)
        return self.get(client_id)

    def opt_out(self, client_id: int, channel: str, *, source: str) -> None:
        if channel not in ("sms", "call", "all"):
            raise ValueError(f"unknown channel {channel!r}")

        def work(s: Session) -> None:
            if s.get(CareOptOut, (client_id, channel)) is None:
                s.add(CareOptOut(client_id=client_id, channel=channel, source=source, at=self.clock()))

        run_in_transaction(self.sessions, work)

    def opt_in(self, client_id: int, channel: str) -> None:
        run_in_transaction(self.sessions, lambda s: s.execute(
            delete(CareOptOut).where(CareOptOut.client_id == client_id, CareOptOut.channel == channel)))

    # --- the IVR menu (digits 1..5 toggle a topic) ---------------------------------------------------

    def ivr_menu(self, client_id: int, lang: str) -> str:
        prefs = self.get(client_id)
        items = []
        for digit, topic in enumerate(IVR_TOPICS, start=1):
            state = t("care.ivr.state_on" if prefs.topics[topic] else "care.ivr.state_off", lang)
            items.append(t("care.ivr.item", lang, digit=digit, state=state, topic=t(f"care.topics.{topic}", lang)))
        sep = "，" if lang == "zh-CN" else "; "
        return t("care.ivr.menu", lang, items=sep.join(items))

    def ivr_toggle(self, client_id: int, digit: str, lang: str) -> tuple[str, bool, str] | None:
        """Toggle the topic behind ``digit``; returns (topic, now enabled, what to say), None for other keys."""
        if not digit.isdigit() or not 1 <= int(digit) <= len(IVR_TOPICS):
            return None
        topic = IVR_TOPICS[int(digit) - 1]
        enabled = not self.get(client_id).topics[topic]
        self.set_topic(client_id, topic, enabled, source="ivr")
        key = "care.ivr.changed_on" if enabled else "care.ivr.changed_off"
        return topic, enabled, t(key, lang, topic=t(f"care.topics.{topic}", lang))

    # --- inbound SMS ------------------------------------------------------------------------------

    def handle_inbound_sms(self, from_number: str, body: str) -> str | None:
        """An unsubscribe word from a client's mobile opts that client out of SMS; returns the reply to send
        (None when the message is not an unsubscribe or the number is unknown)."""
        if body.strip().upper() not in UNSUBSCRIBE_WORDS:
            return None
        rows = run_in_transaction(self.sessions, lambda s: list(
            s.execute(select(Client.id, Client.language).where(Client.mobile == from_number))))
        if not rows:
            return None
        for client_id, _lang in rows:
            self.opt_out(client_id, "sms", source="sms")
        return t("care.sms_inbound.opted_out", rows[0][1] or "zh-CN")
