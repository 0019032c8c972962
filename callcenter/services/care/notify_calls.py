"""Agentless notification calls through the telephony port: play the message, 1 repeats it, 0 asks for an agent.

``NotifyFlow`` is the pure state machine of one call (events in, commands out). ``NotificationCaller`` places
the pending ``notify_call`` deliveries, feeds the port's events to the flows -- the keys too, as
``DigitPressed`` (Twilio's ``<Gather>`` around the message, the simulated PBX's ``press``) --, carries out the
commands, and records the outcome on the delivery: ``answered`` (heard it), ``to_agent`` (pressed 0), or
``failed`` after ``MAX_ATTEMPTS``.

Before a call is placed its message (with the "press 1 / press 0" suffix, in the client's language) is rendered
to speech as the prompt ``cc/care/notify-<delivery id>`` (``ports.prompts.PromptRenderer``; the text also goes
to the PBX as channel variable ``CARE_MESSAGE``); the message plays inside a menu (``play_menu``) when the port
has one. The number shown is the message kind's (``notify_caller_ids``, keyed by the subject's prefix), else
``notify_caller_id``, else the firm's hotline, on every backend.

"0" reaches an agent through the call core's routing: the call becomes an IVR hand-off (an ``ivr_sessions``
row, channel ``notify``, handed off) that the engine loads at its next sync, and the port goes on with it under
the hand-off's call id (``reassign``; on Asterisk the channel then waits in ``[cc-handoff-wait]`` as an IVR
caller's does, and its ``HandoffWaiting`` parks it): the core routes it to the longest-idle ready agent, or after
``handoff_wait_s`` plays the sorry prompt and books a call back. With ``notify_zero = "callback"`` a call back is
booked at once when no agent is ready, and the client hears the same sorry prompt (``cc/<lang>/handoff_sorry``:
all agents busy, we will call you back) before the call ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import asyncio

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.masking import mask_phone
from callcenter.i18n import t
from callcenter.settings import Settings
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.care import CareCallback, CareDelivery
from callcenter.store.models.dialer import AgentSession
from callcenter.store.models.ivr import IvrSession, IvrStep
from callcenter.ports.channel_variables import CC_LANG, handoff_call_id
from callcenter.ports.prompts import PromptRenderer
from callcenter.ports.telephony import (
    Answered,
    DigitPressed,
    Ended,
    Failed,
    Telephony,
    TelephonyError,
    TelephonyEvent,
)

log = logging.getLogger(__name__)

MAX_PLAYS = 3
MAX_ATTEMPTS = 2
RETRY_AFTER = timedelta(minutes=30)
CALL_PREFIX = "care-"
SORRY_PROMPT = "cc/{lang}/handoff_sorry"  # the call core's own for a hand-off nobody took (core.handoff_sorry_prompt)


# --- the pure flow ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Play:
    prompt: str


@dataclass(frozen=True)
class EndCall:
    pass


@dataclass(frozen=True)
class ToAgent:
    pass


Command = Play | EndCall | ToAgent


@dataclass
class NotifyFlow:
    prompt: str
    state: str = "dialling"  # dialling -> playing -> (machine) -> to_agent -> done
    plays: int = 0
    heard: bool = False
    outcome: str | None = None  # answered | to_agent | failed (set when the call is over)
    detail: str = ""

    def answered(self, amd: str | None) -> list[Command]:
        if self.state != "dialling":
            return []
        self.plays, self.heard = 1, True
        self.state = "machine" if amd == "machine" else "playing"  # a voicemail gets the message once
        return [Play(self.prompt)]

    def digit(self, d: str) -> list[Command]:
        if self.state != "playing":
            return []
        if d == "1" and self.plays < MAX_PLAYS:
            self.plays += 1
            return [Play(self.prompt)]
        if d == "0":
            self.state = "to_agent"
            return [ToAgent()]
        return []

    def failed(self, reason: str) -> list[Command]:
        self.state, self.outcome, self.detail = "done", "failed", reason
        return []

    def ended(self) -> list[Command]:
        if self.state == "to_agent":
            self.outcome = "to_agent"
        elif self.heard:
            self.outcome = "answered"
            self.detail = "machine" if self.state == "machine" else f"plays={self.plays}"
        else:
            self.outcome, self.detail = "failed", "ended before answer"
        self.state = "done"
        return []


# --- the driver ---------------------------------------------------------------------------------------


class Wiring(Protocol):
    """What the caller needs of the engine (callcenter.bootstrap.App has it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


@dataclass
class NotificationCaller:
    core: Wiring
    telephony: Telephony
    caller_id: str = ""  # overrides the settings' caller ids (tests)
    timeout_s: float = 30.0
    renderer: PromptRenderer | None = None  # renders each message before its call (None: the PBX's own TTS)
    flows: dict[str, tuple[int, NotifyFlow]] = field(default_factory=dict)
    _context: dict[int, tuple[int | None, str, str]] = field(default_factory=dict)  # delivery -> client, lang, phone

    @staticmethod
    def prompt_for(delivery_id: int) -> str:
        return f"cc/care/notify-{delivery_id}"

    def caller_id_for(self, subject: str) -> str:
        """The number a notification call shows: per message kind, else the default, else the firm's hotline."""
        if self.caller_id:
            return self.caller_id
        s = self.core.settings
        kind = subject.split(":", 1)[0]
        return s.notify_caller_ids.get(kind) or s.notify_caller_id or s.company_hotline

    async def place_due(self, now: datetime | None = None) -> int:
        """Dial every pending notification call (fresh, or failed long enough ago to retry). Two callers at
        once dial each delivery once: a conditional update claims it first."""
        core = self.core
        now = now or core.clock()
        rows = run_in_transaction(core.sessions, lambda s: list(s.execute(
            select(CareDelivery.id, CareDelivery.attempts, CareDelivery.claimed_at, CareDelivery.message,
                   CareDelivery.language, Client.mobile, CareDelivery.subject, CareDelivery.client_id)
            .join(Client, Client.id == CareDelivery.client_id)
            .where(CareDelivery.channel == "notify_call", CareDelivery.status == "pending")
            .order_by(CareDelivery.id))))
        placed = 0
        for delivery_id, attempts, claimed_at, message, lang, mobile, subject, client_id in rows:
            if attempts > 0 and claimed_at > now - RETRY_AFTER:
                continue

            def take(s: Session, delivery_id: int = delivery_id, attempts: int = attempts,
                     claimed_at: datetime = claimed_at) -> bool:
                res = cast("CursorResult[Any]", s.execute(update(CareDelivery).where(
                    CareDelivery.id == delivery_id, CareDelivery.status == "pending",
                    CareDelivery.attempts == attempts, CareDelivery.claimed_at == claimed_at,
                ).values(attempts=attempts + 1, claimed_at=now, updated_at=now)))
                return res.rowcount == 1

            if not run_in_transaction(core.sessions, take):
                continue
            call_id = f"{CALL_PREFIX}{delivery_id}-{attempts + 1}"
            text = f"{message}{t('care.templates.notify_call_suffix', lang)}".replace("\n", " ")[:1000]
            if self.renderer is not None:
                try:  # the message is speech before the call is placed
                    await asyncio.to_thread(self.renderer.render_message, self.prompt_for(delivery_id), text, lang)
                except (OSError, RuntimeError, ValueError) as exc:
                    log.warning("notification %s: message not rendered: %s", delivery_id, exc)
                    self._finish(delivery_id, attempts + 1, "pending" if attempts + 1 < MAX_ATTEMPTS else "failed",
                                 f"not rendered: {exc}"[:255])
                    continue
            self.flows[call_id] = (delivery_id, NotifyFlow(self.prompt_for(delivery_id)))
            self._context[delivery_id] = (client_id, lang, mobile)
            try:
                await self.telephony.originate(call_id, mobile, self.caller_id_for(subject),
                                               {"CARE_DELIVERY": str(delivery_id), "CARE_MESSAGE": text,
                                                CC_LANG: lang},  # the hand-off's hold prompts
                                               self.timeout_s)
            except (TelephonyError, ValueError) as exc:  # refused, or not confirmed (connection lost): never a crash
                log.warning("notification call %s to %s not placed: %s", delivery_id, mask_phone(mobile), exc)
                self.flows.pop(call_id, None)
                self._finish(delivery_id, attempts + 1, "failed", f"rejected: {exc}"[:255])
                continue
            placed += 1
        return placed

    async def handle(self, event: TelephonyEvent) -> None:
        """Feed one telephony event (only this caller's calls are looked at)."""
        call_id = getattr(event, "call_id", None)
        if call_id is None or call_id not in self.flows:
            return
        delivery_id, flow = self.flows[call_id]
        if isinstance(event, Answered):
            await self._run(call_id, flow.answered(event.amd))
        elif isinstance(event, DigitPressed):
            await self._run(call_id, flow.digit(event.digit))
        elif isinstance(event, Failed):
            flow.failed(event.reason)
            self._done(call_id)
        elif isinstance(event, Ended):
            flow.ended()
            self._done(call_id)

    async def on_digit(self, call_id: str, digit: str) -> None:
        if call_id in self.flows:
            await self._run(call_id, self.flows[call_id][1].digit(digit))

    async def _run(self, call_id: str, commands: list[Command]) -> None:
        for cmd in commands:
            try:
                if isinstance(cmd, Play):
                    menu = getattr(self.telephony, "play_menu", None)
                    if callable(menu) and self.flows[call_id][1].state == "playing":
                        await menu(call_id, cmd.prompt)  # keys pressed while it plays come back as DigitPressed
                    else:
                        await self.telephony.play(call_id, cmd.prompt)  # a machine: once, then hang up
                elif isinstance(cmd, EndCall):
                    await self.telephony.hangup(call_id)
                elif isinstance(cmd, ToAgent):
                    await self._to_agent(call_id)
            except TelephonyError as exc:  # the caller hung up meanwhile; the terminal event follows
                log.info("notification call %s: %s", call_id, exc)

    async def _to_agent(self, call_id: str) -> None:
        """"0": the call becomes a hand-off of the call core, or a call back is booked (see the module doc)."""
        delivery_id = self.flows[call_id][0]
        reassign = getattr(self.telephony, "reassign", None)
        if not callable(reassign) or (self.core.settings.notify_zero == "callback" and not self._agent_ready()):
            self._agent_callback(delivery_id)
            lang = self._context.get(delivery_id, (None, "zh-CN", ""))[1]
            # told, not cut off: "all our agents are busy, we will call you back" (as a hand-off nobody took)
            await self.telephony.play(call_id, SORRY_PROMPT.format(lang=lang))
            return
        ivr_session_id = run_in_transaction(self.core.sessions, lambda s: self._hand_off(s, call_id, delivery_id))
        _, flow = self.flows.pop(call_id)
        flow.ended()
        attempt = int(call_id.rsplit("-", 1)[1])
        self._finish(delivery_id, attempt, "to_agent", f"handoff {handoff_call_id(ivr_session_id)}")
        await reassign(call_id, handoff_call_id(ivr_session_id))

    def _agent_ready(self) -> bool:
        return bool(run_in_transaction(self.core.sessions, lambda s: s.scalar(
            select(func.count()).select_from(AgentSession).where(AgentSession.ended_at.is_(None),
                                                                AgentSession.state == "ready"))))

    def _hand_off(self, s: Session, call_id: str, delivery_id: int) -> int:
        now = self.core.clock()
        client_id, lang, phone = self._context.get(delivery_id, (None, "zh-CN", ""))
        message = s.get_one(CareDelivery, delivery_id).message
        row = IvrSession(call_id=call_id, channel="notify", caller=phone[:32], client_id=client_id, lang=lang,
                         started_at=now, handed_off=True, summary=f"通知外呼转人工：{message}"[:2000])
        s.add(row)
        s.flush()
        s.add(IvrStep(session_id=row.id, at=now, step="handoff", detail='{"from": "notify_call"}'))
        return row.id

    def _done(self, call_id: str) -> None:
        delivery_id, flow = self.flows.pop(call_id)
        self._context.pop(delivery_id, None)
        attempt = int(call_id.rsplit("-", 1)[1])
        if flow.outcome == "failed" and attempt < MAX_ATTEMPTS:
            self._finish(delivery_id, attempt, "pending", f"attempt {attempt}: {flow.detail}")
        else:
            self._finish(delivery_id, attempt, flow.outcome or "failed", flow.detail)

    def _finish(self, delivery_id: int, attempt: int, status: str, detail: str) -> None:
        core = self.core
        now = core.clock()
        run_in_transaction(core.sessions, lambda s: s.execute(
            update(CareDelivery).where(CareDelivery.id == delivery_id, CareDelivery.attempts == attempt)
            .values(status=status, detail=detail[:255], provider_ref=f"{CALL_PREFIX}{delivery_id}-{attempt}",
                    updated_at=now)))

    def _agent_callback(self, delivery_id: int) -> None:
        core = self.core
        now = core.clock()
        today = now.astimezone(core.settings.tz).date()

        def work(s: Session) -> None:
            d = s.get_one(CareDelivery, delivery_id)
            dedupe = f"notify:{delivery_id}"
            if s.scalar(select(CareCallback.id).where(CareCallback.dedupe == dedupe)) is None:
                s.add(CareCallback(dedupe=dedupe, client_id=d.client_id, purpose="reminder", script_id="reminder",
                                   event_id=d.event_id, not_before=today, due_on=today, status="scheduled",
                                   created_at=now))

        run_in_transaction(core.sessions, work)


class NotificationLine:
    """Where the care part finds the notification caller of the dialler part running in the same process.

    The composition root builds one and hands it to both parts: the dialler part ``plug``s in the caller it
    builds on its telephony when it starts and ``unplug``s it when it stops; the care part's notification jobs
    place their calls through ``caller`` and wait (the deliveries stay pending) while no dialler runs here."""

    def __init__(self) -> None:
        self.caller: NotificationCaller | None = None

    def plug(self, caller: NotificationCaller) -> None:
        self.caller = caller

    def unplug(self, caller: NotificationCaller) -> None:
        if self.caller is caller:
            self.caller = None
