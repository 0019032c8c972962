"""Recording every agent call: the dialler engine tells ``CallRecorder`` when a call reaches an agent and when it
ends; the recorder keeps one ``Recording`` row per call leg (``services.recordings.RecordingService``) and has
the telephony record the audio (``ports.recordings.RecordsCalls``: MixMonitor over AMI, Twilio's Recordings API,
the simulated PBX's synthesised WAV). A backend that cannot record still gets the rows.

* ``connected(call_id, agent)``: the leg starts (outbound attempt or IVR hand-off; its client, campaign, desk
  contact and retention class — ``callback`` for a call-back campaign — looked up in the database), then
  ``record_start`` on the port. A second ``connected`` of a call already recorded is a transfer: the first leg
  stops and the new one is linked to it (``parent_id``).
* ``ended(call_id)``: ``record_stop``, the row stopped (duration = talk time of the leg), and the file attached
  when the port hands it over (in the background: Asterisk closes the file after the channel is gone;
  ``drain()`` waits for those).
* ``pause(call_id, reason)`` / ``resume(call_id)``: the agent's button (``agent``) and the client typing digits
  the agent asked for (``pin``: paused before the first digit, so no key tone reaches the file); the port
  writes silence, the row marks the span. ``held`` / ``retrieved``: the hooks for hold (the ``hold`` stretch is
  marked; the leg goes on); ``transferred(call_id, to_agent)``: a new linked leg.

Use cases only: no adapter is imported; the port is whatever the engine was built on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.ports import channel_variables as V
from callcenter.ports.telephony import TelephonyError
from callcenter.services.recordings import RecordingError, RecordingService
from callcenter.store.db import run_in_transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import Attempt, Campaign, Lead
from callcenter.store.models.ivr import IvrSession

log = logging.getLogger(__name__)

_CONTROL = ("record_start", "record_mute", "record_stop", "record_audio")


@dataclass(frozen=True)
class LegFacts:
    attempt_id: int | None = None
    ivr_session_id: int | None = None
    client_id: int | None = None
    campaign_id: int | None = None
    desk_contact_id: int | None = None
    retention_class: str = "ordinary"


@dataclass
class Leg:
    recording_id: int
    call_id: str
    agent_id: int | None
    name: str
    paused: str | None = None  # the reason of the pause in force
    held_at: datetime | None = None


def leg_facts(s: Session, call_id: str, agent_id: int | None) -> LegFacts:
    """What the recording row says of the call ``call_id`` (an attempt's, or an IVR hand-off's)."""
    contact_q = select(DeskContact.id).order_by(DeskContact.id.desc()).limit(1)
    if agent_id is not None:
        contact_q = contact_q.where(DeskContact.agent_id == agent_id)
    ivr_id = V.handoff_session_id(call_id)
    if ivr_id is not None:
        session = s.get(IvrSession, ivr_id)
        contact = s.execute(contact_q.where(DeskContact.ivr_session_id == ivr_id)).scalar()
        return LegFacts(ivr_session_id=ivr_id, client_id=session.client_id if session is not None else None,
                        desk_contact_id=contact)
    attempt = s.scalars(select(Attempt).where(Attempt.call_id == call_id)).first()
    if attempt is None:
        return LegFacts()
    lead = s.get(Lead, attempt.lead_id)
    campaign = s.get(Campaign, attempt.campaign_id)
    contact = s.execute(contact_q.where(DeskContact.attempt_id == attempt.id)).scalar()
    return LegFacts(attempt_id=attempt.id, client_id=lead.client_id if lead is not None else None,
                    campaign_id=attempt.campaign_id, desk_contact_id=contact,
                    retention_class="callback" if campaign is not None and campaign.kind == "callback" else "ordinary")


@dataclass
class CallRecorder:
    recordings: RecordingService
    sessions: sessionmaker[Session]
    wall: Callable[[], datetime]
    telephony: Any = None  # a ``RecordsCalls`` backend, or anything else (rows only)
    legs: dict[str, Leg] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def control(self) -> Any:
        port = self.telephony
        return port if port is not None and all(callable(getattr(port, m, None)) for m in _CONTROL) else None

    async def _db(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(fn)

    # --- the engine's hooks ------------------------------------------------------------------------------------

    async def connected(self, call_id: str, agent_id: int | None, at: datetime | None = None) -> int | None:
        """The call reached an agent: a new leg (a transfer when the call already has one)."""
        when = at or self.wall()
        parent: int | None = None
        old = self.legs.get(call_id)
        if old is not None:
            if old.agent_id == agent_id:
                return old.recording_id  # reported twice (a reconnect): one leg
            parent = old.recording_id
            await self._stop_leg(old, when)
        facts: LegFacts = await self._db(lambda: run_in_transaction(
            self.sessions, lambda s: leg_facts(s, call_id, agent_id)))
        try:
            rid: int = await self._db(lambda: self.recordings.start(
                call_id[:64], agent_id=agent_id, client_id=facts.client_id, campaign_id=facts.campaign_id,
                attempt_id=facts.attempt_id, desk_contact_id=facts.desk_contact_id,
                ivr_session_id=facts.ivr_session_id, retention_class=facts.retention_class, parent_id=parent,
                at=when))
        except RecordingError as exc:
            log.warning("recording of %s not started: %s", call_id, exc)
            return None
        leg = Leg(rid, call_id, agent_id, f"rec-{rid}")
        self.legs[call_id] = leg
        control = self.control
        if control is not None:
            try:
                await control.record_start(call_id, leg.name)
            except TelephonyError as exc:  # the call goes on unrecorded; the row says so when it ends
                log.warning("recording of %s did not start on the PBX: %s", call_id, exc)
        return rid

    async def ended(self, call_id: str, at: datetime | None = None) -> None:
        leg = self.legs.pop(call_id, None)
        if leg is not None:
            await self._stop_leg(leg, at or self.wall())

    async def transferred(self, call_id: str, to_agent: int | None, at: datetime | None = None) -> int | None:
        """The call moved to another agent (hook for the transfer command): the new leg, linked to the old."""
        return await self.connected(call_id, to_agent, at)

    async def held(self, call_id: str, at: datetime | None = None) -> None:
        """The agent put the client on hold (hook for the hold command): the stretch is marked ``hold``."""
        leg = self.legs.get(call_id)
        if leg is not None and leg.held_at is None:
            leg.held_at = at or self.wall()

    async def retrieved(self, call_id: str, at: datetime | None = None) -> None:
        leg = self.legs.get(call_id)
        if leg is None or leg.held_at is None:
            return
        start, leg.held_at = leg.held_at, None
        when = at or self.wall()
        await self._db(lambda: self.recordings.mark(leg.recording_id, "hold", start, when))

    async def pause(self, call_id: str, reason: str = "agent", at: datetime | None = None) -> bool:
        """Silence from now on (``agent``: the button; ``pin``: the client is about to type digits)."""
        leg = self.legs.get(call_id)
        if leg is None:
            return False
        control = self.control
        if control is not None and leg.paused is None:
            await control.record_mute(call_id, True)  # the PBX first: no digit between the row and the mute
        changed = await self._db(lambda: self.recordings.pause(leg.recording_id, at or self.wall(), reason))
        if changed:
            leg.paused = reason
        return True

    async def resume(self, call_id: str, at: datetime | None = None) -> bool:
        leg = self.legs.get(call_id)
        if leg is None:
            return False
        await self._db(lambda: self.recordings.resume(leg.recording_id, at or self.wall()))
        control = self.control
        if control is not None and leg.paused is not None:
            await control.record_mute(call_id, False)
        leg.paused = None
        return True

    # --- ending a leg --------------------------------------------------------------------------------------------

    async def _stop_leg(self, leg: Leg, when: datetime) -> None:
        if leg.held_at is not None:
            start, leg.held_at = leg.held_at, None
            await self._db(lambda: self.recordings.mark(leg.recording_id, "hold", start, when))
        control = self.control
        if control is not None:
            try:
                await control.record_stop(leg.call_id)
            except TelephonyError as exc:  # the channel is gone already: the PBX stopped it itself
                log.debug("stop of recording %s: %s", leg.recording_id, exc)
        try:
            await self._db(lambda: self.recordings.stop(leg.recording_id, when))
        except RecordingError as exc:
            log.warning("recording %s not stopped: %s", leg.recording_id, exc)
            return
        if control is not None:
            task = asyncio.create_task(self._attach(control, leg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _attach(self, control: Any, leg: Leg) -> None:
        try:
            audio = await control.record_audio(leg.call_id, leg.name)
            if audio is None:
                log.warning("recording %s: the PBX left no file", leg.recording_id)
                return
            await self._db(lambda: self.recordings.attach_audio(leg.recording_id, audio))
        except (TelephonyError, RecordingError, OSError) as exc:
            log.warning("recording %s: file not stored: %s", leg.recording_id, exc)

    async def drain(self) -> None:
        """Wait until every ended leg's file is stored (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
