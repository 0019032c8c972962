"""The outbound dialler engine: the driver of the call core (``callcenter.services.dialer.core``).

Every decision is the core's (pacing, routing to the longest-idle ready agent, abandon after ``abandon_after_s``
with the safe-harbour prompt, AMD, previews, callbacks, wrap-up, attempt outcomes; see its docstring for the
transition table).  ``DialerEngine`` feeds it port events and ticks, carries out the commands it returns through
the ports -- the ``Telephony`` port, the database, the event bus -- and feeds each command's result straight back
(depth first, under one lock), so the core decides on current facts.

Database work runs in a worker thread (``asyncio.to_thread``), one short transaction per command that needs
an answer through ``run_in_transaction`` (each its own session): the event loop (web, FastAGI) never waits on
the database. The records that need no answer (``RecordAnswered``, ``FinishAttempt``, ...) wait in order and go
first in the engine's next transaction, or in one transaction at the end of the burst of port events (the
reader hands over whatever arrived meanwhile, ``handle_burst``) or of the tick, and always before a port
command (the PBX acts on committed facts); a ``Publish`` behind them is emitted once they are committed. So a
burst of hang-ups is one transaction, not one per call, and SQLite's one write lock is taken that much less
often while the web serves. Transaction bodies only touch the database and return values; nothing outside the
database (a port call, a live event, the engine's own state) happens inside a transaction that may be retried.

The database is the source of truth for agents (``agent_sessions``): the web changes ready / pause / wrap-up
through ``callcenter.services.dialer.campaigns``, the engine re-reads its agents every ``sync_s`` seconds (``Sync``) and makes
its own changes with the same state machine.  Several engines share one database: leads are claimed with row
locks (``hopper``) and each agent session is leased by one engine (``_sync_tx``).  When a call reaches an agent,
the agent's desk contact is opened in the same transaction that moves them to talking
(``services.desk.open_contact``), whether or not a browser is connected.

Wiring is explicit (``DialerDeps``): the session factory, the bus, the trading calendar's ``is_trading_day``,
the wall clock, the talk scripts folder, and the care ``NotificationCaller`` whose calls' events (call ids
starting with its ``CALL_PREFIX``) are handed to it instead of the core.

Time: ``clock.time()`` (seconds; the loop clock, or a ``VirtualClock`` for accelerated runs) and ``deps.wall()``
(aware UTC datetime for records and calling windows).

Live events (typed, ``callcenter.domain.events``, through ``bus.emit`` after the facts are committed):
``AgentStateChanged``, ``ContactOpened``, ``PreviewOffered``, ``CallbackPlaced`` (``agent:<staff id>``),
``DialerBoard`` (``wallboard``), ``AttemptEnded`` (``calls``).  Commands from the screens (the hang-up button)
are rows in ``call_commands``: ``call_commands.command_loop`` claims this dialler's rows (woken by a
``CommandQueued`` nudge, else by polling) and carries them out through ``command_requested``: ``hangup`` through
``hangup_requested``, the recording's buttons through the recorder, every call control (the card's "hand to the
IVR order menu" is ``transfer_ivr`` to the ``orders`` entry) through the core, ``control_requested``.

Several diallers share one database: each heartbeats its row in ``dialer_processes`` at every sync
(``dialer.leases``) and takes over the work of a dialler whose lease ran out (its agents freed and adopted,
its open attempts closed ``lost``, their leads released); the pacers read the abandon budget from the
database (``dialer.budget``), so every process and a restarted one count the same abandons.

IVR hand-offs are inbound calls of the same core (one routing model): at every sync the engine also loads the
hand-offs waiting in the database (``services.handoff.load_waiting``, claimed for this dialler) and leases the
agent sessions opened with no campaign (so a hotline-only shift takes hand-offs too); the core routes them like
answered outbound calls, ``Connect`` moves the caller's parked channel into the agent's room, the desk contact
opens with the agent's move to talking, and the end of the call moves the agent to wrap-up (``take_handoffs``;
off for backends that cannot hold a caller, such as Twilio, whose hand-offs the carrier queues itself).

Restart: ``run`` first asks the port to ``recover`` (AMI: ``CoreShowChannels`` on each server) what a previous
process left up; the calls with our ids it reports (``Recovered``) are held until a sync finds their attempts: a
dead dialler's are adopted by the take-over (``leases.take_over_dead(alive=...)``, after its lease) and re-attached
to the core (``Synced.adopted``), so they end ``human`` with their whole talk time and their agents go to wrap-up;
those whose attempts are over are hung up. A recovered call that an agent had talked to and that ends before the
take-over is closed ``human`` by it, never ``lost``. Agent legs still in their rooms come as ``AgentJoined``.

Agent sessions opened on the screen before any campaign ran (``campaign_id`` NULL) or whose campaign ended
join the highest-priority running campaign they are assigned to at the next sync.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Protocol, TypeVar

from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.care.notify_calls import CALL_PREFIX as NOTIFY_PREFIX
from callcenter.services.dialer import core as C, rollups
from callcenter.services.dialer.core import (
    MACHINE_PROMPT,
    SAFE_HARBOUR_PROMPT,
    CallCore,
    CoreConfig,
    CoreEvent,
)
from callcenter.services.dialer.budget import load_budgets
from callcenter.services.call_commands import ClaimedCommand, command_loop
from callcenter.services.dialer import controls as K
from callcenter.services.dialer.leases import PROCESS_LEASE, adopt_attempt, heartbeat, retire, take_over_dead
from callcenter.services.dialer.hopper import (
    DEFAULT_LEASE,
    claim_leads,
    claim_one,
    finish_attempt,
    release_lead,
    renew_claims,
    rules_of,
    start_attempt,
)
from callcenter.services.dialer.campaigns import campaign_agent_ids, change_agent_state, start_due
from callcenter.services import handoff as H
from callcenter.services import phones
from callcenter.domain.campaigns import RuleError, agent_transition, in_window, on_dnc
from callcenter.services.bus import EventBus
from callcenter.services.call_recording import CallRecorder
from callcenter.services.desk import ContactFacts, open_contact
from callcenter.store.db import run_in_transaction
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession, Attempt, Callback, Campaign, DncEntry, Lead
from callcenter.ports import channel_variables as V
from callcenter.domain.masking import mask_phone
from callcenter.ports.telephony import (
    AgentJoined,
    AgentLeft,
    Answered,
    CallControls,
    Connected,
    Ended,
    Failed,
    LiveCall,
    NoServerAvailable,
    OriginateRejected,
    PhoneContact,
    Recovered,
    ServerDown,
    ServerUp,
    Telephony,
    TelephonyError,
    TelephonyEvent,
    UnknownCall,
)

__all__ = ["MACHINE_PROMPT", "SAFE_HARBOUR_PROMPT", "DialerDeps", "DialerEngine", "NotifyCalls", "default_dialer_id"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Clock(Protocol):
    def time(self) -> float: ...


class _LoopTime:
    def time(self) -> float:
        return asyncio.get_running_loop().time()


class NotifyCalls(Protocol):
    """The care ``NotificationCaller`` as the engine sees it: it takes its own calls' port events."""

    async def handle(self, event: TelephonyEvent) -> None: ...


@dataclass(frozen=True)
class DialerDeps:
    """What the engine needs from the rest of the system (built by ``callcenter.parts.dialer.dialer_deps``).

    ``sessions``: the session factory (thread-safe; every transaction gets its own session in a worker thread);
    ``bus``: where the typed live events go (``emit``) and the hang-up requests come from; ``is_trading_day``:
    the trading calendar for calling windows; ``wall``: the wall clock (aware UTC) for records and windows;
    ``scripts_dir``: the talk scripts the desk contact starts (None: the shipped ones); ``notify``: the care
    ``NotificationCaller``, which takes the port events of its own calls (ids starting with its ``CALL_PREFIX``).
    """

    sessions: sessionmaker[Session]
    bus: EventBus
    is_trading_day: Callable[[date], bool]
    wall: Callable[[], datetime]
    scripts_dir: Path | None = None
    notify: NotifyCalls | None = None
    tz: tzinfo = ZoneInfo("Asia/Shanghai")  # the local day of the abandon budget (the settings' time zone)
    process_lease: timedelta = PROCESS_LEASE  # how long this dialler's agents and calls are its own unrenewed
    recorder: CallRecorder | None = None  # records every call that reaches an agent (services.call_recording)


def default_dialer_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"[:64]


_PORT_EVENTS = (Answered, Connected, Ended, Failed, AgentJoined, AgentLeft)
_RECORDS = (C.RecordAnswered, C.RecordConnected, C.FinishAttempt, C.CompleteDisposition, C.MissCallback,
            C.HandoffStep, C.EndHandoff, C.HandoffCallback)
MAX_BURST = 200  # port events at most handled under the lock in one go (their records: one transaction)


async def _bursts(events: AsyncIterator[TelephonyEvent], limit: int) -> AsyncIterator[list[TelephonyEvent]]:
    """The port's events in bursts: whatever arrived while the previous burst was handled (at most ``limit``).
    A failure of the port's stream is raised after the events before it."""
    queue: asyncio.Queue[TelephonyEvent | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in events:
                queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    pumper = asyncio.create_task(pump())
    try:
        while True:
            first = await queue.get()
            burst = [first] if first is not None else []
            over = first is None
            while not over and len(burst) < limit and not queue.empty():
                event = queue.get_nowait()
                if event is None:
                    over = True
                else:
                    burst.append(event)
            if burst:
                yield burst
            if over:
                await pumper  # the stream's own failure, if it failed
                return
    finally:
        pumper.cancel()


class DialerEngine:
    def __init__(
        self,
        deps: DialerDeps,
        telephony: Telephony,
        *,
        dialer_id: str | None = None,
        clock: Clock | None = None,
        abandon_after_s: float = 2.0,
        sync_s: float = 1.0,
        tick_s: float = 1.0,
        wallboard_s: float = 1.0,
        auto_wrap_up_s: float | None = None,
        originate_timeout_s: float = 30.0,
        lease: timedelta = DEFAULT_LEASE,
        callback_grace: timedelta = timedelta(hours=2),
        campaign_ids: set[int] | None = None,
        progressive_floor: bool = True,
        take_handoffs: bool = True,
        handoff_wait_s: float = 120.0,
    ) -> None:
        self.deps = deps
        self.telephony = telephony
        self.dialer_id = dialer_id or default_dialer_id()
        self.clock: Clock = clock or _LoopTime()
        self.wall = deps.wall
        self.originate_timeout_s = originate_timeout_s
        self.lease = lease
        self.only_campaigns = campaign_ids
        self._beat = False  # this process has heartbeaten once (a later failed heartbeat: we were taken over)
        self.core = CallCore(CoreConfig(
            dialer_id=self.dialer_id, abandon_after_s=abandon_after_s, sync_s=sync_s, tick_s=tick_s,
            wallboard_s=wallboard_s, auto_wrap_up_s=auto_wrap_up_s, callback_grace=callback_grace,
            progressive_floor=progressive_floor, handoff_wait_s=handoff_wait_s))
        self.take_handoffs = take_handoffs
        self._next_renew = datetime.min.replace(tzinfo=timezone.utc)
        self._lock = asyncio.Lock()
        # the core's records (commands with no result) not written yet, and the live events that follow them:
        # written in the next transaction of the engine (before its own work), or by ``_flush`` at the end of a
        # burst of events / of a tick; the events are emitted once those facts are committed
        self._records: list[tuple[C.Record, datetime]] = []  # with the wall time the core made each at
        self._after_commit: list[C.Publish] = []
        self.stats = {"originated": 0, "rejected": 0, "transactions": 0}
        # calls with our ids a previous process left up on the PBX (``Recovered``), until a sync adopts or hangs
        # them up: call id -> (what the PBX showed, its server); and those of them seen ending meanwhile
        self._foreign: dict[str, tuple[LiveCall, str]] = {}
        self._foreign_ended: dict[str, datetime] = {}
        self._recovered: set[str] = set()
        self._answers: dict[int, tuple[bool, str]] = {}  # call controls: request id -> (ok, reason)

    # --- the core's state, read-only for callers ------------------------------------------------------------

    @property
    def calls(self) -> dict[str, C.Call]:
        return self.core.calls

    @property
    def agents(self) -> dict[int, C.Agent]:
        return self.core.agents

    @property
    def campaigns(self) -> dict[int, C.CampaignRun]:
        return self.core.campaigns

    def next_deadline(self) -> float:
        """The next clock time the engine wants to run at (drivers of a virtual clock use it)."""
        return self.core.next_deadline()

    # --- the two entry points: events and ticks -------------------------------------------------------------

    async def handle(self, event: TelephonyEvent) -> None:
        """One port event, its records committed before it returns."""
        await self.handle_burst((event,))

    async def handle_burst(self, events: Sequence[TelephonyEvent]) -> None:
        """Port events that arrived together, one after the other through the core (each command's result fed
        back before the next command, as ever); the records of the whole burst that need no answer go to the
        database in as few transactions as the commands in between allow (one, when no command needs one)."""
        async with self._lock:
            try:
                for event in events:
                    await self._handle_locked(event)
            except BaseException:
                await self._flush_after_failure()
                raise
            await self._flush()

    async def read_phone_states(self) -> None:
        """What the PBX says now of every agent's SIP phone (issue 18), recorded as its ContactStatus would be:
        those events only tell changes, so a phone that unregistered while no engine listened (or the whole PBX
        restarted meanwhile) would otherwise keep the word it had, and "ready" would be let through, or refused,
        on it. A port without ``phone_states`` (the simulated PBX, Twilio) has no SIP phones to read."""
        read = getattr(self.telephony, "phone_states", None)
        if not callable(read):
            return
        endpoints = await asyncio.to_thread(phones.active_endpoints, self.deps.sessions)
        if not endpoints:
            return
        try:
            states = await read(endpoints)
        except TelephonyError as exc:
            log.warning("could not read the agents' phones' states from the PBX: %s", exc)
            return
        now = self.wall()
        for endpoint, status in states.items():
            await asyncio.to_thread(phones.record_contact_status, self.deps.sessions, now, endpoint, status)

    async def _handle_locked(self, event: TelephonyEvent) -> None:
        if isinstance(event, Recovered):
            for live in event.calls:
                if live.call_id not in self.core.calls and live.call_id not in self._recovered:
                    self._recovered.add(live.call_id)  # once (run() hands it over before the reader does)
                    self._foreign[live.call_id] = (live, event.server)
            return
        if isinstance(event, PhoneContact):  # an agent's SIP phone (un)registered: the desk's "ready" reads it
            await asyncio.to_thread(phones.record_contact_status, self.deps.sessions, self.wall(), event.endpoint,
                                    event.status)
            return
        if not isinstance(event, _PORT_EVENTS):
            return  # Ringing, ServerDown/Up: nothing the core decides on
        call_id = getattr(event, "call_id", None)
        if call_id is not None and call_id not in self.core.calls and call_id in self._foreign:
            if isinstance(event, (Ended, Failed)):  # a recovered call ended before a sync adopted it
                self._foreign.pop(call_id)
                self._foreign_ended[call_id] = self.wall()
            return
        await self._feed(event)
        if self.deps.recorder is not None and isinstance(event, (Connected, Ended)):
            await self._record(event)

    async def _record(self, event: Connected | Ended) -> None:
        """The call recording follows the call: a leg from the agent's connect (a known call) to the end."""
        recorder = self.deps.recorder
        assert recorder is not None
        if isinstance(event, Ended):  # the file ends with the channel: when the PBX saw the end
            await recorder.ended(event.call_id, self.wall() - timedelta(seconds=max(0.0, self.clock.time() - event.at)))
        elif event.call_id in self.core.calls or event.call_id in self.core.inbound:  # the file starts now
            await recorder.connected(event.call_id, int(event.agent_id) if event.agent_id.isdigit() else None,
                                     self.wall())

    async def tick(self) -> None:
        async with self._lock:
            try:
                await self._feed(C.Tick())
            except BaseException:
                await self._flush_after_failure()
                raise
            await self._flush()

    async def _feed(self, event: CoreEvent) -> None:
        """One input to the core, then its commands in order, each result fed back before the next command."""
        for command in self.core.handle(event, self.clock.time(), self.wall()):
            result = await self._do(command)
            if result is not None:
                await self._feed(result)

    async def _tx(self, work: Callable[[Session], T]) -> T:
        """One transaction in a worker thread (its own session; retried on serialisation failures), the records
        not written yet first; the live events waiting for them are emitted once it has committed."""
        records, tz = tuple(self._records), self.deps.tz

        def body(s: Session) -> T:  # database only: retried as a whole
            for record, at in records:
                _write(s, record, at, tz)
            return work(s)

        self.stats["transactions"] += 1
        result = await asyncio.to_thread(run_in_transaction, self.deps.sessions, body)
        del self._records[:len(records)]
        self._emit_committed()
        return result

    async def _flush(self) -> None:
        """Write the records not written yet (one transaction) and emit the live events that waited for them."""
        if self._records:
            await self._tx(lambda s: None)
        self._emit_committed()

    async def _flush_after_failure(self) -> None:
        """The records decided before a failure are facts all the same (each was its own commit before
        batching): written if the database takes them; the failure itself is the caller's to raise."""
        try:
            await self._flush()
        except Exception:
            log.exception("dialler %s: %s record(s) could not be written after a failure", self.dialer_id,
                          len(self._records))
            self._records.clear()
            self._after_commit.clear()

    def _emit_committed(self) -> None:
        while self._after_commit and not self._records:
            self.deps.bus.emit(self._after_commit.pop(0).event)

    async def run(self, stop: asyncio.Event) -> None:
        """Real time: read port events and tick until ``stop`` is set."""
        wake = asyncio.Event()
        notify = self.deps.notify
        went_down: set[str] = set()  # servers whose ServerDown this run saw: their next ServerUp is a comeback
        reread = asyncio.Event()  # a server came back: the phones' states are read again (by the loop below)

        async def read() -> None:
            async for burst in _bursts(self.telephony.events(), MAX_BURST):
                mine: list[TelephonyEvent] = []
                for event in burst:
                    if isinstance(event, ServerDown):
                        went_down.add(event.server)
                    elif isinstance(event, ServerUp) and event.server in went_down:
                        went_down.discard(event.server)
                        reread.set()  # its ContactStatus events while we were away are lost
                    if notify is not None and str(getattr(event, "call_id", "")).startswith(NOTIFY_PREFIX):
                        if mine:
                            await self.handle_burst(mine)
                            mine = []
                        await notify.handle(event)  # an agentless notification call, not a dialler attempt
                        continue
                    mine.append(event)
                if mine:
                    await self.handle_burst(mine)
                wake.set()

        reader = asyncio.create_task(read())
        recover = getattr(self.telephony, "recover", None)
        if callable(recover):  # what a previous process left up on the PBX (Recovered, AgentJoined) comes first
            try:
                found = await recover()
            except TelephonyError as exc:
                log.warning("could not recover the calls left up on the PBX: %s", exc)
            else:  # known before the first sync (the reader sees them too: recording them twice is harmless)
                for event in found or ():
                    if isinstance(event, (Recovered, AgentJoined)):
                        await self.handle(event)
        await self.read_phone_states()
        done = asyncio.Event()  # the command loop's stop: it ends on an event, not by cancellation
        hanger = asyncio.create_task(command_loop(  # the screens' hang-ups, as rows this dialler claims
            self.deps.sessions, self.deps.bus, self.dialer_id,
            self.command_requested, done, clock=self.wall))
        try:
            while not stop.is_set():
                if reader.done():
                    reader.result()  # a crashed reader fails the runner
                    break
                if hanger.done():
                    hanger.result()
                    break
                if reread.is_set():
                    reread.clear()
                    await self.read_phone_states()
                await self.tick()
                delay = min(max(self.next_deadline() - self.clock.time(), 0.02), 0.5)
                try:
                    await asyncio.wait_for(wake.wait(), delay)
                except TimeoutError:
                    pass
                wake.clear()
        finally:
            done.set()
            reader.cancel()
            for task in (reader, hanger):
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            await self.drain_recordings()  # the files of the calls that just ended are stored before we stop
            await self.shutdown()

    async def drain_recordings(self) -> None:
        """Wait until the recordings of the calls that ended are stored (tests; the recorder does it anyway)."""
        if self.deps.recorder is not None:
            await self.deps.recorder.drain()

    async def recording_requested(self, contact_id: int, staff_id: int, action: str) -> bool:
        """The agent's recording buttons on the desk contact ``contact_id``; False when no recorded call of ours
        is theirs."""
        recorder = self.deps.recorder
        if recorder is None:
            return False
        call_id = await self._call_of_contact(contact_id, staff_id)
        if call_id is None:
            return False
        if action == "resume":
            return await recorder.resume(call_id, self.wall())
        return await recorder.pause(call_id, "pin" if action == "secure" else "agent", self.wall())

    async def _call_of_contact(self, contact_id: int, staff_id: int | None) -> str | None:
        """The port's call id of the desk contact's call when it is ours (hold ``_lock``) and, with ``staff_id``,
        that agent's; None for any agent on it (a call control: the conference's second agent, or the agent a
        supervisor monitors, names the call of another's contact)."""

        def call_of(s: Session) -> tuple[int | None, int | None]:
            contact = s.get(DeskContact, contact_id)
            if contact is None or (staff_id is not None and contact.agent_id != staff_id):
                return None, None
            return contact.attempt_id, contact.ivr_session_id

        # a read of its own: not the engine's transaction (which carries the pending records)
        attempt_id, ivr_session_id = await asyncio.to_thread(run_in_transaction, self.deps.sessions, call_of)
        if attempt_id is not None:
            call = next((c for c in self.core.calls.values() if c.attempt_id == attempt_id
                         and (staff_id is None or c.agent_id == staff_id)), None)
            return call.call_id if call is not None else None
        if ivr_session_id is not None:  # an IVR hand-off: an inbound call of ours, connected to them
            inbound = self.core.inbound.get(V.handoff_call_id(ivr_session_id))
            if inbound is None or (staff_id is not None and inbound.agent_id != staff_id):
                return None
            return inbound.call_id
        return None

    async def hangup_requested(self, contact_id: int, staff_id: int) -> bool:
        """The agent pressed hang-up on the desk contact ``contact_id``: hang its call up through the port.
        Returns False when no call of ours belongs to that contact and agent (already over, or not ours)."""
        async with self._lock:
            call_id = await self._call_of_contact(contact_id, staff_id)
            if call_id is None:
                return False
            try:
                await self.telephony.hangup(call_id)
            except TelephonyError as exc:
                log.warning("hang-up of %s failed: %s", call_id, exc)
                return False
            return True

    async def command_requested(self, cmd: ClaimedCommand) -> bool | tuple[bool, str]:
        """A ``call_commands`` row this dialler claimed: the hang-up, or a call control (``controls.py``: the
        core's answer and its reason, recorded on the row)."""
        if cmd.kind == "hangup":
            return await self.hangup_requested(cmd.contact_id, cmd.staff_id)
        if cmd.kind.startswith("record_"):  # the recording's pause / resume / secure (a pause marked "pin")
            return await self.recording_requested(cmd.contact_id, cmd.staff_id, cmd.kind.removeprefix("record_"))
        return await self.control_requested(cmd)

    async def control_requested(self, cmd: ClaimedCommand) -> tuple[bool, str]:
        """Feed a call control to the core for the call of ``cmd.contact_id`` (whoever's desk contact it is: the
        agent on the call, the conference's second agent, or the agent a supervisor monitors); returns the core's
        answer, or a refusal of the PBX."""
        args = cmd.args
        async with self._lock:
            call_id = await self._call_of_contact(cmd.contact_id, None)
            if call_id is None:
                return False, "no_live_call"
            if not isinstance(self.telephony, CallControls):
                return False, "not_supported"
            if cmd.kind in K.TARGETED_KINDS:  # the partner's state as the database has it now, not at the last sync:
                synced = await self._do(C.Sync(self.core.in_flight_leads()))  # an agent who just went ready counts
                if synced is not None:
                    await self._feed(synced)
            target = args.get("target")
            await self._feed(K.ControlRequested(cmd.id, call_id, cmd.staff_id, cmd.kind,
                                                int(target) if isinstance(target, (int, str)) and str(target).isdigit()
                                                else None, str(args.get("digits", "")), str(args.get("menu", "")),
                                                str(args.get("phone", ""))))
            return self._answers.pop(cmd.id, (False, "no_answer"))

    async def _control(self, cmd: C.Command) -> CoreEvent | None:
        """One control command through the port's ``CallControls``; a refusal comes back as ``ControlFailed``."""
        port = self.telephony
        if not isinstance(port, CallControls):
            raise TypeError("the telephony backend has no call controls")
        kind = "other"
        try:
            if isinstance(cmd, K.HoldCall):
                kind = "hold"
                await port.hold(cmd.call_id)
            elif isinstance(cmd, K.UnholdCall):
                kind = "unhold"
                await port.unhold(cmd.call_id, str(cmd.staff_id))
            elif isinstance(cmd, K.MuteAgent):
                kind = "mute" if cmd.muted else "unmute"
                await port.mute_agent(str(cmd.staff_id), cmd.muted)
            elif isinstance(cmd, K.SendDtmf):
                kind = "dtmf"
                await port.send_dtmf(cmd.call_id, cmd.digits)
            elif isinstance(cmd, K.LinkRooms):
                kind = "link"
                await port.link_rooms(str(cmd.staff_id), str(cmd.other_id))
            elif isinstance(cmd, K.UnlinkRooms):
                kind = "unlink"
                await port.unlink_rooms(str(cmd.staff_id), str(cmd.other_id))
            elif isinstance(cmd, K.ToIvr):
                kind = "to_ivr"
                await port.to_ivr(cmd.call_id, cmd.menu)
            elif isinstance(cmd, K.Monitor):
                kind = "monitor"
                await port.monitor(str(cmd.supervisor_id), cmd.phone, str(cmd.staff_id), cmd.mode)
            elif isinstance(cmd, K.StopMonitor):
                kind = "stop_monitor"
                await port.stop_monitor(str(cmd.supervisor_id))
            else:
                raise TypeError(f"not a control command {cmd!r}")
            recorder = self.deps.recorder
            if recorder is not None and isinstance(cmd, (K.HoldCall, K.UnholdCall)):  # the stretch marked "hold"
                await (recorder.held if isinstance(cmd, K.HoldCall) else recorder.retrieved)(cmd.call_id, self.wall())
        except (TelephonyError, ValueError) as exc:
            log.warning("call control %s of %s failed: %s", kind, getattr(cmd, "call_id", ""), exc)
            rid = int(getattr(cmd, "request_id", 0))
            if rid:
                self._answers[rid] = (False, "pbx_refused")
            text = f"sup{cmd.supervisor_id}" if isinstance(cmd, K.Monitor) else str(exc)[:64]
            return K.ControlFailed(rid, str(getattr(cmd, "call_id", "")), kind, text)
        return None

    async def shutdown(self) -> None:
        """Give back previewed leads and agent leases (calls in flight finish on the PBX; their claims expire)."""
        now = self.wall()
        previews = [(a.session_id, a.preview_lead_id) for a in self.agents.values() if a.preview_lead_id is not None]
        dialer_id = self.dialer_id

        def work(s: Session) -> None:
            for session_id, lead_id in previews:
                lead = s.get(Lead, lead_id)
                if lead is not None and lead.status == "in_progress" and lead.claimed_by == dialer_id:
                    release_lead(s, lead, now)
                session = s.get(AgentSession, session_id)
                if session is not None and session.state == "reserved":
                    session.preview_lead_id = None
                    change_agent_state(s, session, "release", now, reason="dialler_stopped")
            s.execute(update(AgentSession).where(AgentSession.dialer_id == dialer_id)
                      .values(dialer_id=None, lease_until=None))
            retire(s, dialer_id, now)  # our process row goes; anything still open is closed lost

        await self._tx(work)

    # --- carrying out the core's commands --------------------------------------------------------------------

    async def _do(self, cmd: C.Command) -> CoreEvent | None:
        if isinstance(cmd, C.Publish):
            if self._records or self._after_commit:  # after the facts before it are committed, in order
                self._after_commit.append(cmd)
            else:
                self.deps.bus.emit(cmd.event)
            return None
        if isinstance(cmd, C.Resume):
            return C.Resumed(cmd.phase)
        if isinstance(cmd, _RECORDS):
            self._records.append((cmd, self.wall()))  # written with the next transaction, or at the burst's end
            return None
        if isinstance(cmd, K.ControlCommand):
            await self._flush()  # the PBX acts on committed facts only
            return await self._control(cmd)
        if isinstance(cmd, K.ControlAnswer):
            self._answers.setdefault(cmd.request_id, (cmd.ok, cmd.reason))  # a PBX refusal already noted wins
            return None
        if isinstance(cmd, (C.Originate, C.Connect, C.Play, C.Hangup, C.LoginPhone, C.LogoutPhone, C.ExpectInbound)):
            await self._flush()  # the PBX acts on committed facts only (as when every record was its own commit)
            return await self._telephony(cmd)
        wall = self.wall()
        if isinstance(cmd, C.Sync):
            renew = wall >= self._next_renew
            foreign, ended = dict(self._foreign), dict(self._foreign_ended)  # the worker thread reads copies
            take_handoffs = self.take_handoffs

            def sync(s: Session) -> tuple[C.Synced, tuple[C.HandoffFacts, ...] | None]:
                synced = self._sync_tx(s, wall, cmd.lead_ids, renew, foreign, ended)
                return synced, self._handoffs_tx(s, wall) if take_handoffs else None

            synced, handoffs = await self._tx(sync)  # one transaction
            for adopted in synced.adopted:
                self._foreign.pop(adopted.call.call_id, None)
            for call_id in synced.hangups:
                self._foreign.pop(call_id, None)
            for call_id, at in ended.items():  # kept until the dead dialler's take-over has closed its attempt
                if wall - at > self.lease:
                    self._foreign_ended.pop(call_id, None)
            if handoffs is not None:
                synced = dataclasses.replace(synced, handoffs=handoffs)
            if renew and cmd.lead_ids:
                self._next_renew = wall + self.lease / 4
            return synced
        if isinstance(cmd, C.ClaimLeads):
            calls = await self._tx(lambda s: self._claim_tx(s, cmd, wall))
            return C.LeadsClaimed(cmd.campaign_id, cmd.n, calls)
        if isinstance(cmd, C.ChangeAgentState):
            scripts = self.deps.scripts_dir
            return await self._tx(lambda s: _change_agent_tx(s, cmd, wall, scripts, self.deps.tz))
        if isinstance(cmd, C.OfferPreviews):
            offers: list[C.PreviewOffer] = []
            exhausted = False
            for ref in cmd.agents:
                offer: C.PreviewOffer | None = None
                if not exhausted:
                    offer = await self._tx(partial(self._preview_tx, campaign_id=cmd.campaign_id, ref=ref, wall=wall))
                    exhausted = offer is None  # no lead left: the agents after it are not tried (rows unchanged)
                offers.append(offer or C.PreviewOffer(ref.staff_id, None, ref.expected, None))
            return C.PreviewsOffered(cmd.campaign_id, tuple(offers))
        if isinstance(cmd, C.SkipPreview):
            return await self._tx(lambda s: self._skip_tx(s, cmd, wall))
        if isinstance(cmd, C.DialPreview):
            call = await self._tx(lambda s: self._dial_preview_tx(s, cmd, wall))
            return C.PreviewDialled(cmd.staff_id, call)
        if isinstance(cmd, C.PlaceCallback):
            return await self._tx(lambda s: self._callback_tx(s, cmd, wall))
        raise TypeError(f"unknown dialler command {cmd!r}")

    async def _telephony(self, cmd: C.Command) -> CoreEvent | None:
        port = self.telephony
        if isinstance(cmd, C.Originate):
            try:
                await port.originate(cmd.call_id, cmd.number, cmd.caller_id or "", dict(cmd.variables),
                                     self.originate_timeout_s)
            except (OriginateRejected, ValueError) as exc:
                self.stats["rejected"] += 1
                lost = isinstance(exc, NoServerAvailable) or (
                    isinstance(exc, OriginateRejected) and not isinstance(exc, ValueError))
                log.warning("originate %s to %s refused: %s", cmd.call_id, mask_phone(cmd.number), exc)
                return C.OriginateRefused(cmd.call_id, "lost" if lost else "failed",
                                          isinstance(exc, NoServerAvailable), str(exc))
            except TelephonyError as exc:
                # Sent or not, the PBX never confirmed it (the connection dropped, no reply in time): the attempt
                # is "lost", which does not use up one of the lead's attempts. Never an exception that ends the
                # dialler (and with it the engine). The adapter does not re-send it.
                self.stats["unconfirmed"] = self.stats.get("unconfirmed", 0) + 1
                log.warning("originate %s to %s not confirmed (%s); recorded as lost", cmd.call_id,
                            mask_phone(cmd.number), exc)
                return C.OriginateRefused(cmd.call_id, "lost", True, str(exc))
            self.stats["originated"] += 1
            return C.OriginateAccepted(cmd.call_id)
        if isinstance(cmd, C.ExpectInbound):
            expect = getattr(port, "expect_inbound", None)  # Asterisk sees the parked channel by itself
            if callable(expect):
                await expect(cmd.call_id)
            return None
        if isinstance(cmd, C.Connect):
            try:
                await port.connect(cmd.call_id, str(cmd.staff_id))
            except UnknownCall as exc:  # the call has ended on the PBX; its end event is on its way
                log.info("connect %s to agent %s: the call is gone (%s)", cmd.call_id, cmd.staff_id, exc)
                return C.ConnectFailed(cmd.call_id, gone=True)
            except TelephonyError as exc:
                log.warning("connect %s to agent %s failed: %s", cmd.call_id, cmd.staff_id, exc)
                return C.ConnectFailed(cmd.call_id)
            return None
        if isinstance(cmd, C.Play):
            try:
                await port.play(cmd.call_id, cmd.prompt)
            except TelephonyError:
                if cmd.or_hangup:
                    try:
                        await port.hangup(cmd.call_id)
                    except TelephonyError:
                        pass
            return None
        if isinstance(cmd, C.Hangup):
            try:
                await port.hangup(cmd.call_id)
            except TelephonyError:
                pass
            return None
        if isinstance(cmd, C.LoginPhone):
            try:
                await port.agent_login(str(cmd.staff_id), cmd.phone)
            except (TelephonyError, ValueError) as exc:
                log.warning("agent %s phone login failed: %s", cmd.staff_id, exc)
                return C.PhoneLogin(cmd.staff_id, False)
            return C.PhoneLogin(cmd.staff_id, True)
        if isinstance(cmd, C.LogoutPhone):
            try:
                await port.agent_logout(str(cmd.staff_id))
            except TelephonyError:
                pass
            return None
        raise TypeError(f"not a telephony command {cmd!r}")

    # --- transaction bodies: database only, results returned -------------------------------------------------

    def _sync_tx(self, s: Session, now: datetime, lead_ids: tuple[int, ...], renew: bool,
                 foreign: dict[str, tuple[LiveCall, str]] | None = None,
                 ended: dict[str, datetime] | None = None) -> C.Synced:
        """The campaigns we run, our agent sessions (taking over sessions whose lease ran out: the lease and
        takeover of agent sessions between dialler processes), our claims renewed, the callbacks due; the calls
        a previous process left up on the PBX (``foreign``) adopted when their attempts are ours or a dead
        dialler's, hung up when their attempts are over."""
        foreign = foreign or {}
        if not heartbeat(s, self.dialer_id, now, self.deps.process_lease) and self._beat:
            log.warning("dialler %s: its lease had run out and another dialler took its work over", self.dialer_id)
        self._beat = True
        # a dead dialler's agents, calls and leads, after its lease; its calls still up on the PBX are adopted
        taken = take_over_dead(s, self.dialer_id, now, alive=set(foreign), ended=ended)
        if taken.dialers:
            log.warning("took over %s dead dialler(s): %s agent sessions, %s open attempts closed, %s adopted "
                        "(still up on the PBX), %s leads", len(taken.dialers), len(taken.agent_sessions),
                        len(taken.attempts), len(taken.adopted), len(taken.leads))
        adopted: list[C.AdoptedCall] = []
        hangups: list[str] = []
        if foreign:
            rows = {a.call_id: a for a in s.scalars(select(Attempt).where(Attempt.call_id.in_(list(foreign))))}
            for call_id, (live, server) in foreign.items():
                attempt = rows.get(call_id)
                if attempt is None or attempt.ended_at is not None:
                    hangups.append(call_id)  # nobody will record it: it must not stay up unowned
                    continue
                if attempt.id not in taken.adopted and attempt.dialer_id != self.dialer_id:
                    continue  # a live dialler's call (or a dead one's whose lease has not run out yet)
                if attempt.id not in taken.adopted:
                    adopt_attempt(s, attempt, self.dialer_id, now, self.lease)
                lead = s.get(Lead, attempt.lead_id)
                if lead is None:
                    continue
                room = int(live.agent_id) if live.agent_id is not None and live.agent_id.isdigit() else None
                adopted.append(C.AdoptedCall(_new_call(attempt, lead, callback_id=attempt.callback_id), server,
                                             attempt.answered_at, attempt.connected_at, room, attempt.amd))
            if adopted:
                log.warning("re-attached %s call(s) left up on the PBX by a previous dialler process", len(adopted))
        start_due(s, now)
        q = select(Campaign).where(Campaign.state.in_(("running", "paused")))
        campaigns = [c for c in s.scalars(q) if self.only_campaigns is None or c.id in self.only_campaigns]
        mine = [c.id for c in campaigns]
        _adopt_agents(s, [c for c in campaigns if c.state == "running"])
        s.execute(update(AgentSession).where(
            AgentSession.ended_at.is_(None), AgentSession.campaign_id.in_(mine), self._leasable(now),
        ).values(dialer_id=self.dialer_id, lease_until=now + self.lease))
        sessions = list(s.scalars(select(AgentSession).where(
            AgentSession.dialer_id == self.dialer_id, AgentSession.ended_at.is_(None))))
        if lead_ids and renew:
            renew_claims(s, self.dialer_id, list(lead_ids), now + self.lease)
        running = [c.id for c in campaigns if c.state == "running"]
        callbacks = list(s.scalars(select(Callback).where(
            Callback.status == "pending", Callback.due_at <= now, Callback.campaign_id.in_(running))
            .order_by(Callback.due_at, Callback.id).limit(50))) if running else []
        budgets = load_budgets(s, running, now, self.deps.tz)
        logged_in = frozenset(s.scalars(select(AgentSession.staff_id).where(AgentSession.ended_at.is_(None))))
        return C.Synced(
            tuple(C.CampaignFacts(c.id, c.state, c.dial_mode, c.caller_id or "", c.amd_policy, c.leave_message,
                                  c.ratio, c.target_abandon, budgets.get(c.id)) for c in campaigns),
            tuple(C.AgentFacts(r.staff_id, r.id, r.campaign_id, r.phone, r.state, r.state_since, r.preview_lead_id,
                               r.preview_action) for r in sessions),
            tuple(C.CallbackFacts(cb.id, cb.campaign_id, cb.lead_id, cb.due_at, cb.agent_only, cb.owner_id)
                  for cb in callbacks),
            tuple(adopted), tuple(hangups), logged_in)

    def _leasable(self, now: datetime) -> ColumnElement[bool]:
        """Agent sessions to lease to us at a sync: nobody's, or whose lease ran out, or ours with less than
        three quarters of the lease left (renewed every quarter of it, not every row at every sync)."""
        return or_(AgentSession.dialer_id.is_(None), AgentSession.lease_until < now,
                   and_(AgentSession.dialer_id == self.dialer_id,
                        or_(AgentSession.lease_until.is_(None), AgentSession.lease_until < now + self.lease * 3 / 4)))

    def _handoffs_tx(self, s: Session, now: datetime) -> tuple[C.HandoffFacts, ...]:
        """The IVR hand-offs waiting for an agent (claimed for us), and the agent sessions opened with no
        campaign leased to us (the next sync reads them as ours: they take hand-offs)."""
        s.execute(update(AgentSession).where(
            AgentSession.ended_at.is_(None), AgentSession.campaign_id.is_(None), self._leasable(now),
        ).values(dialer_id=self.dialer_id, lease_until=now + self.lease))
        return H.load_waiting(s, self.dialer_id, now)

    def _claim_tx(self, s: Session, cmd: C.ClaimLeads, wall: datetime) -> tuple[C.NewCall, ...]:
        campaign = s.get(Campaign, cmd.campaign_id)
        if campaign is None or campaign.state != "running":
            return ()
        out = []
        for lead in claim_leads(s, campaign, self.dialer_id, cmd.n, wall, self.deps.is_trading_day,
                                lease=self.lease):
            attempt = start_attempt(s, lead, campaign, self.dialer_id, wall, mode=campaign.dial_mode)
            out.append(_new_call(attempt, lead))
        return tuple(out)

    def _preview_tx(self, s: Session, campaign_id: int, ref: C.AgentRef, wall: datetime) -> C.PreviewOffer | None:
        """Claim a lead and reserve the agent for it; None when no lead is left (nothing changed)."""
        session = s.get(AgentSession, ref.session_id)
        if session is None or session.ended_at is not None:
            return C.PreviewOffer(ref.staff_id, None, None, None)
        if session.state != ref.expected:
            return C.PreviewOffer(ref.staff_id, None, session.state, session.state_since)
        campaign = s.get(Campaign, campaign_id)
        leads = claim_leads(s, campaign, self.dialer_id, 1, wall, self.deps.is_trading_day,
                            lease=self.lease) if campaign is not None else []
        if not leads:
            return None
        lead = leads[0]
        session.preview_lead_id = lead.id
        session.preview_action = None
        change_agent_state(s, session, "reserve", wall, reason="preview")
        return C.PreviewOffer(ref.staff_id, C.LeadFacts(lead.id, lead.client_id, lead.name, lead.phone,
                                                        lead.attempts + 1), session.state, session.state_since)

    def _skip_tx(self, s: Session, cmd: C.SkipPreview, wall: datetime) -> C.AgentChanged:
        session = s.get(AgentSession, cmd.session_id)
        if session is None or session.ended_at is not None:
            return C.AgentChanged(cmd.staff_id, "release", False, None, None)
        if session.state != "reserved":
            return C.AgentChanged(cmd.staff_id, "release", False, session.state, session.state_since)
        lead = s.get(Lead, cmd.lead_id)
        campaign = s.get(Campaign, cmd.campaign_id)
        if lead is not None and campaign is not None and lead.claimed_by == self.dialer_id:
            release_lead(s, lead, wall, at=wall + rules_of(campaign).delay_for("skipped"))
        session.preview_lead_id = None
        session.preview_action = None
        change_agent_state(s, session, "release", wall, reason="preview_skip")
        return C.AgentChanged(cmd.staff_id, "release", True, session.state, session.state_since, "preview_skip")

    def _dial_preview_tx(self, s: Session, cmd: C.DialPreview, wall: datetime) -> C.NewCall | None:
        row = s.get(AgentSession, cmd.session_id)
        lead = s.get(Lead, cmd.lead_id)
        campaign = s.get(Campaign, cmd.campaign_id)
        if row is not None:
            row.preview_lead_id = None
            row.preview_action = None
        if lead is None or campaign is None or lead.claimed_by != self.dialer_id or lead.status != "in_progress":
            return None
        attempt = start_attempt(s, lead, campaign, self.dialer_id, wall, mode="preview", agent_id=cmd.staff_id)
        if row is not None:
            row.attempt_id = attempt.id
        return _new_call(attempt, lead, agent_id=cmd.staff_id)

    def _callback_tx(self, s: Session, cmd: C.PlaceCallback, wall: datetime) -> C.CallbackResult:
        cb = cmd.callback
        session = s.get(AgentSession, cmd.session_id)
        if session is None or session.ended_at is not None:
            return C.CallbackResult(cmd.staff_id, cb.id, None, None, None)
        unchanged = C.CallbackResult(cmd.staff_id, cb.id, None, session.state, session.state_since)
        if session.state != cmd.expected:
            return unchanged
        row = s.get(Callback, cb.id)
        campaign = s.get(Campaign, cb.campaign_id) if cb.campaign_id is not None else None
        if row is None or row.status != "pending" or campaign is None or row.lead_id is None:
            return unchanged
        dnc = [(d.phone, d.campaign_id) for d in s.scalars(select(DncEntry).where(DncEntry.phone == row.phone))]
        lead_row = s.get(Lead, row.lead_id)
        if lead_row is None or on_dnc(row.phone, campaign.id, dnc) or lead_row.status == "dnc":
            row.status = "missed"
            return unchanged
        if not in_window(wall, lead_row.timezone, rules_of(campaign).window, self.deps.is_trading_day):
            return unchanged  # try again when the window opens (within the grace)
        lead = claim_one(s, lead_row.id, self.dialer_id, wall, self.lease)
        if lead is None:
            return unchanged
        attempt = start_attempt(s, lead, campaign, self.dialer_id, wall, mode="callback", agent_id=cmd.staff_id,
                                callback_id=row.id)
        row.status = "placed"
        row.placed_at = wall
        row.attempt_id = attempt.id
        change_agent_state(s, session, "reserve", wall, reason="callback", attempt_id=attempt.id)
        return C.CallbackResult(cmd.staff_id, cb.id, _new_call(attempt, lead, agent_id=cmd.staff_id, callback_id=row.id),
                                session.state, session.state_since)


def _new_call(attempt: Attempt, lead: Lead, *, agent_id: int | None = None,
              callback_id: int | None = None) -> C.NewCall:
    return C.NewCall(attempt.call_id or V.attempt_call_id(attempt.id), attempt.id, attempt.campaign_id, lead.id,
                     lead.client_id, lead.phone, attempt.attempt_no, agent_id, callback_id)


def _adopt_agents(s: Session, running: list[Campaign]) -> None:
    """Sessions opened on the agent screen with no running campaign (none was running at login, or theirs
    has ended) join the highest-priority running campaign of ours they are assigned to."""
    if not running:
        return
    live = select(Campaign.id).where(Campaign.state.in_(("running", "paused")))
    homeless = list(s.scalars(select(AgentSession).where(
        AgentSession.ended_at.is_(None), AgentSession.state.in_(("ready", "paused")),
        or_(AgentSession.campaign_id.is_(None), AgentSession.campaign_id.not_in(live)))))
    if not homeless:
        return
    order = sorted(running, key=lambda c: (-c.priority, c.id))
    members = {c.id: campaign_agent_ids(s, c.id) for c in order}
    for session in homeless:
        cid = next((c.id for c in order if session.staff_id in members[c.id]), None)
        if cid is not None:
            session.campaign_id = cid
            session.dialer_id, session.lease_until = None, None


def _write(s: Session, record: C.Record, wall: datetime, tz: tzinfo) -> None:
    """One record of the call core in the caller's transaction."""
    if isinstance(record, C.RecordAnswered):
        s.execute(update(Attempt).where(Attempt.id == record.attempt_id)
                  .values(answered_at=wall, amd=record.amd, amd_cause=record.amd_cause))
    elif isinstance(record, C.RecordConnected):
        s.execute(update(Attempt).where(Attempt.id == record.attempt_id)
                  # a transfer's second connect keeps the first: the attempt reached an agent then
                  .values(connected_at=func.coalesce(Attempt.connected_at, wall), agent_id=record.staff_id))
    elif isinstance(record, C.FinishAttempt):
        attempt = s.get(Attempt, record.attempt_id)
        if attempt is None:
            raise LookupError(f"attempt {record.attempt_id} is gone")
        finish_attempt(s, attempt, str(record.outcome), wall, lead_outcome=record.lead_outcome, cause=record.cause,
                       cause_text=record.cause_text, talk_s=record.talk_s, abandoned=record.abandoned, tz=tz)
        if record.callback_id is not None:
            s.execute(update(Callback).where(Callback.id == record.callback_id)
                      .values(status=record.callback_status))
    elif isinstance(record, C.CompleteDisposition):
        done = s.scalars(select(Attempt).where(Attempt.call_id == record.call_id, Attempt.disposition.is_(None))).first()
        if done is not None:
            done.disposition = "completed"
            rollups.move_disposition(s, done, None, tz)  # the reports' rollup (a closed attempt's share moves)
    elif isinstance(record, C.MissCallback):
        s.execute(update(Callback).where(Callback.id == record.callback_id, Callback.status == "pending")
                  .values(status="missed"))
    elif isinstance(record, C.HandoffStep):
        H.record_step(s, record.ivr_session_id, record.step, wall, staff_id=record.staff_id)
    elif isinstance(record, C.EndHandoff):
        H.end_handoff(s, record.ivr_session_id, record.reason, wall, record.talk_s)
    elif isinstance(record, C.HandoffCallback):
        H.book_callback(s, record.ivr_session_id, record.client_id, record.caller, wall)
    else:
        raise TypeError(f"not a record {record!r}")


HANDED_OVER = ("transferred", "to_ivr", "conference_end")


def _change_agent_tx(s: Session, cmd: C.ChangeAgentState, wall: datetime, scripts_dir: Path | None,
                     tz: tzinfo) -> C.AgentChanged:
    """The records, the agent's change when its row is still as the core saw it, and the desk contact."""
    for record in cmd.records:
        _write(s, record, wall, tz)
    session = s.get(AgentSession, cmd.session_id)
    if session is None or session.ended_at is not None:
        return C.AgentChanged(cmd.staff_id, cmd.event, False, None, None, cmd.reason, cmd.attempt_id)
    applied = False
    if session.state == cmd.expected:
        try:
            agent_transition(session.state, cmd.event)
        except RuleError:
            pass
        else:
            change_agent_state(s, session, cmd.event, wall, reason=cmd.reason, attempt_id=cmd.attempt_id)
            applied = True
    if cmd.event == "hangup" and cmd.reason in HANDED_OVER:  # the agent let the call go (call controls): their
        # card shows the call over at once, as when the customer hangs up
        s.execute(update(DeskContact).where(DeskContact.agent_id == cmd.staff_id, DeskContact.hung_up_at.is_(None),
                                            DeskContact.ended_at.is_(None)).values(hung_up_at=wall))
    contact_id = None
    if isinstance(cmd.contact, C.OpenInboundContact):
        contact_id = open_contact(s, cmd.staff_id, ContactFacts(
            client_id=cmd.contact.client_id, ivr_session_id=cmd.contact.ivr_session_id), wall, scripts_dir)
    elif cmd.contact is not None:
        c = cmd.contact
        contact_id = open_contact(s, cmd.staff_id, ContactFacts(
            client_id=c.client_id, attempt_id=c.attempt_id, lead_id=c.lead_id, campaign_id=c.campaign_id,
            attempt_no=c.attempt_no), wall, scripts_dir)
    return C.AgentChanged(cmd.staff_id, cmd.event, applied, session.state, session.state_since, cmd.reason,
                          cmd.attempt_id, contact_id)
