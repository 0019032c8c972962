"""Asterisk backend of the telephony port, over panoramisk's ``Manager``.

- ``AmiClient``: one Asterisk server.  ``AmiPool``: several, originates spread by least in-flight.
- Login is ours (not panoramisk's auto-login) so a refused login raises ``AmiLoginError`` and
  the client stops retrying: no crash loop.
- panoramisk's own reconnect is disabled (``_Manager.connection_lost``); our supervisor task
  reconnects with exponential backoff, then reconciles with ``CoreShowChannels``.
- ``recover`` (the engine calls it at start; every reconnect does it too) takes over what a previous
  engine process left up: calls with our attempt ids (``Recovered``) and agent legs in their rooms
  (``AgentJoined``); agent legs outside their room are hung up, so the next login cannot collide.
- Actions pending when the socket drops fail at once with ``AmiDisconnected``, and panoramisk's
  "awaiting actions" queue is emptied so NOTHING is re-sent after a reconnect (an Originate
  sent twice would dial the customer twice).
- Originate is sent with ``Async: true``, ``ChannelId`` = our call id, and ``as_list=False``: the
  awaited result is the immediate "queued" reply, and the later ``OriginateResponse`` (same
  ActionID) reaches our event handler instead of being folded into the action's result.
- Notification calls: ``play_menu`` plays the message in ``[cc-notify-menu]`` (keys: ``UserEvent NotifyDigit``
  -> ``DigitPressed``); ``reassign`` (the client pressed 0) sends the channel to ``[cc-handoff-wait]`` under
  the hand-off's call id, where the call core takes it as an IVR hand-off.
- Every message goes through the pure ``CallTracker`` (ami_events.py); a message that breaks the
  mapping is logged (masked) and skipped, never crashing the reader.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from callcenter.domain.masking import mask_phone
from callcenter.ports import channel_variables as V
from callcenter.adapters.telephony.ami_events import CallTracker, headers
from callcenter.adapters.telephony.ami_frames import FrameParser, Malformed
from callcenter.ports.recordings import read_wav_if_closed
from callcenter.ports.telephony import (
    MONITOR_MODES,
    AgentJoined,
    MonitorMode,
    EventStream,
    NoServerAvailable,
    OriginateRejected,
    TelephonyError,
    TelephonyEvent,
    check_dial_string,
    check_dtmf,
    check_id,
    check_menu,
    check_prompt,
    check_text,
    dial_string,
    check_originate,
)

log = logging.getLogger(__name__)


class AmiError(TelephonyError):
    pass


class AmiLoginError(AmiError):
    """Asterisk refused our username/secret. Not retried by the client: fix the settings (the engine's
    supervisor restarts the dialler with backoff)."""


class AmiUnreachable(AmiError):
    """No Asterisk server could be reached at start (refused, timed out, no route)."""


class AmiDisconnected(AmiError):
    """The connection dropped (or was not up) while an action was pending."""


class AmiNotConnected(AmiDisconnected):
    """Nothing was written: there was no connection to write the action to."""


class AmiTimeout(AmiError):
    """The action was written but no reply came within the action timeout."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error``."""


@dataclass(frozen=True)
class AmiServer:
    host: str
    port: int
    username: str
    secret: str = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class AmiOptions:
    dial_template: str = "PJSIP/{number}@trunk"  # Channel of an outbound Originate
    outbound_context: str = V.CONTEXT_OUTBOUND
    outbound_amd_context: str = "cc-outbound-amd"
    amd: bool = False  # answered calls run AMD() and report through UserEvent CallAnswered
    agent_login_context: str = V.CONTEXT_AGENT_LOGIN
    agent_join_context: str = V.CONTEXT_AGENT_JOIN
    play_context: str = V.CONTEXT_PLAY
    notify_menu_context: str = V.CONTEXT_NOTIFY_MENU
    hotline_context: str = V.CONTEXT_HOTLINE  # where a caller an agent hands to the IVR goes (to_ivr)
    handoff_wait_context: str = V.CONTEXT_HANDOFF_WAIT  # where a notification call handed to an agent waits
    agent_ring_timeout_s: float = 30.0  # an agent phone that does not answer its login in time: AgentLeft
    action_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    heartbeat_s: float = 20.0  # Ping interval; 0 disables
    tick_s: float = 1.0  # settle lost OriginateResponses / overdue attempts; 0 disables
    settle_grace_s: float = 5.0
    # call controls (config/asterisk/extensions.conf): the customer on hold, linked rooms, monitors, the IVR
    hold_context: str = "cc-hold"
    link_context: str = "cc-room-link"  # Local/<other>@cc-room-link: its other half joins the agent's room
    link_room_context: str = "cc-room-link-a"
    monitor_context: str = "cc-monitor-{mode}"  # Local/<agent>-<supervisor>@cc-monitor-<mode>: ChanSpy / the room
    # call recording: the folder the dialplan's MixMonitor writes to (CC_RECORDINGS_DIR) as this process reads
    # it (a shared mount, or the same path on one host). Empty: the engine keeps no audio of Asterisk calls.
    recordings_dir: str = ""
    recording_file_wait_s: float = 10.0  # how long a finished recording's file may take to be closed


_SECRETS = re.compile(r"(?im)^(secret|key|variable|callerid):[^\r\n]*")
_DIGITS = re.compile(r"\d{7,}")
_ENDPOINT = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # a PJSIP endpoint name we write (pjsip_agents.conf)


def mask(text: str) -> str:
    """Logs never carry secrets, variables or full phone numbers."""
    text = _SECRETS.sub(lambda m: f"{m.group(1)}: ***", text)
    return _DIGITS.sub(lambda m: mask_phone(m.group(0)), text)


class _Manager(Manager):
    """panoramisk Manager without its fixed-delay auto-reconnect and without re-sending actions."""

    pinger: asyncio.Handle | None  # set by panoramisk (keep-alive ping timer)

    def __init__(self, owner: "AmiClient", **config: Any) -> None:
        super().__init__(**config)
        self._owner = owner

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.awaiting_actions.clear()  # never re-send (above all never an Originate)
        self._owner._on_connection_lost(exc)


class _SafeProtocol(AMIProtocol):
    """panoramisk's protocol with our framing (``ami_frames``): a malformed frame is skipped and logged
    (masked), and reading goes on at the next frame boundary, so the message after it is never lost."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.frames = FrameParser()
        self.malformed = 0

    def close(self) -> None:
        # The client fails its pending actions itself (AmiClient._fail_pending) and never re-sends them:
        # panoramisk's close would queue them for re-sending and log each one whole (variables, numbers).
        self.responses.clear()
        super().close()

    def data_received(self, data: bytes) -> None:
        for frame in self.frames.feed(data):
            if isinstance(frame, Malformed):
                self.malformed += 1
                log.warning("AMI: malformed frame skipped (%s): %r", frame.why,
                            mask(frame.raw.decode("utf8", "replace")))
                continue
            if getattr(self, "version", None) is None and self.frames.banner is not None:
                self.version = self.frames.banner
            message = Message(frame.headers, frame.content)
            try:
                self.handle_message(message)
            except Exception as exc:  # one message that trips panoramisk must not stop the reader
                log.warning("AMI: message skipped (%s): %s", type(exc).__name__, mask(repr(dict(message))[:300]))


class AmiClient:
    """Telephony port on one Asterisk server. Publishes into ``stream`` (its own unless given)."""

    def __init__(
        self,
        server: AmiServer,
        options: AmiOptions | None = None,
        *,
        stream: EventStream | None = None,
    ) -> None:
        self.server = server
        self.options = options or AmiOptions()
        self.stream = stream or EventStream()
        self.tracker = CallTracker(server.name, settle_grace_s=self.options.settle_grace_s)
        self.login_error: AmiLoginError | None = None
        self.last_error: BaseException | None = None  # why the last connection attempt failed
        self.messages_seen = 0  # AMI messages (events and responses) read from the server
        self.connections = 0
        self._manager: _Manager | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._up = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self.gave_up = asyncio.Event()  # set when the client stopped trying (its login was refused)
        self._supervisor: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        # Callables given every AMI message as a plain dict, after the call tracker (e.g. queue events for
        # the screen pop of IVR hand-offs). They must not block; a failing observer is logged and skipped.
        self.observers: list[Callable[[dict[str, Any]], None]] = []
        self.recover_on_connect = False  # set by ``recover`` while not connected: recover at the next login
        self._rooms: dict[str, str] = {}  # call id -> the agent whose room it was last moved into (recording)
        self._legs: dict[str, tuple[str, str]] = {}  # recording name -> (call id, agent id) of its file

    # --- life ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    @property
    def name(self) -> str:
        return self.server.name

    def in_flight(self) -> int:
        return len(self.tracker.in_flight())

    async def start(self) -> None:
        """Connect and log in. Raises ``AmiLoginError`` on refused credentials; if the server is
        unreachable, returns and keeps trying in the background."""
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"ami:{self.name}")
        await asyncio.shield(self._first)

    async def aclose(self) -> None:
        self._closing = True
        if self.connected:
            try:
                await self._send({"Action": "Logoff"}, timeout=2.0)
            except AmiError:
                pass
        if self._manager is not None:
            self._manager.close()
        for task in [self._supervisor, *self._helpers]:
            if task is not None and not task.done():
                task.cancel()
        for task in [self._supervisor, *self._helpers]:
            if task is not None:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._up.clear()  # closed by us: not connected any more (panoramisk does not call back on close)
        self._fail_pending()
        self.stream.close()

    def events(self) -> AsyncIterator[TelephonyEvent]:
        return self.stream.__aiter__()

    async def __aenter__(self) -> "AmiClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _supervise(self) -> None:
        delay = self.options.backoff_initial_s
        failures = 0  # connection attempts failed since the last good one (one log line per outage)
        while not self._closing:
            starting = self._first is not None and not self._first.done()
            try:
                await self._connect_once()
            except AmiLoginError as exc:
                if not starting:  # at start the caller reports it (one clear line, from the runtime)
                    log.error("AMI %s: login refused on reconnect (check ami_username / ami_secret); this server "
                              "is left out until the dialler restarts", self.name)
                self.login_error = exc
                self._settle_first(exc)
                self.gave_up.set()
                return
            except (OSError, asyncio.TimeoutError, AmiError) as exc:
                if self._closing:
                    return  # aclose() closed the connection under us: nothing to report or retry
                self.last_error = exc
                if not starting and failures == 0:
                    log.warning("AMI %s: reconnect failed (%s); retrying with backoff up to %g s", self.name,
                                describe_connect_error(exc), self.options.backoff_max_s)
                failures += 1
                self._settle_first(None)
                await asyncio.sleep(delay)
                delay = min(max(delay * 2, 0.05), self.options.backoff_max_s)
                continue
            if self.connections > 1:
                log.info("AMI %s: reconnected", self.name)
            failures = 0
            self.last_error = None
            delay = self.options.backoff_initial_s
            self._settle_first(None)
            helpers = [asyncio.create_task(self._ticker()), asyncio.create_task(self._heartbeat())]
            try:
                await self._lost.wait()
            finally:
                for task in helpers:
                    task.cancel()
                for task in helpers:
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
            if not self._closing:
                await asyncio.sleep(self.options.backoff_initial_s)

    def _settle_first(self, exc: BaseException | None) -> None:
        if self._first is not None and not self._first.done():
            if exc is None:
                self._first.set_result(None)
            else:
                self._first.set_exception(exc)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        manager = _Manager(
            self,
            host=self.server.host,
            port=self.server.port,
            loop=loop,
            protocol_factory=_SafeProtocol,
            ping_delay=10**9,
            ping_interval=10**9,
        )
        manager.register_event("*", self._on_message)
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(_SafeProtocol, self.server.host, self.server.port),
            self.options.connect_timeout_s,
        )
        done: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        done.set_result((transport, protocol))
        self._lost.clear()
        manager.connection_made(done)  # wires protocol <-> manager; no auto-login (no username)
        if manager.pinger is not None:
            manager.pinger.cancel()
            manager.pinger = None
        self._manager = manager
        self.connections += 1
        try:
            reply = await self._send(
                {"Action": "Login", "Username": self.server.username, "Secret": self.server.secret, "Events": "on"},
                ready=False,
            )
        except AmiError:
            manager.close()  # no half-open socket left behind
            raise
        if reply.get("Response") != "Success":
            manager.close()
            raise AmiLoginError(f"AMI login refused by {self.name} ({reply.get('Message') or 'refused'}; "
                                "check ami_username / ami_secret)")
        self._up.set()
        if self.connections > 1 or self.tracker.needs_reconcile() or self.recover_on_connect:
            # after every REconnect (and a first connect after ``recover`` was asked for): settle what died while
            # we were away and take over what a previous engine process left up
            await self.reconcile(recover=True)
        self._publish(self.tracker.connected(loop.time()))  # ServerUp once the state is reconciled

    def _on_connection_lost(self, exc: Any) -> None:
        now = asyncio.get_running_loop().time()
        was_up = self._up.is_set()
        if was_up and not self._closing:
            why = ("Asterisk shut down" if isinstance(exc, Message) else
                   "closed by Asterisk" if exc is None else describe_connect_error(exc))
            log.warning("AMI %s: connection lost (%s); reconnecting", self.name, why)
        self._up.clear()
        self._fail_pending()
        if isinstance(exc, Message) and str(exc.get("Event", "")).lower() == "shutdown":
            self._feed(exc)  # panoramisk calls us before dispatching Shutdown: apply it first
        if was_up or self.tracker.up:
            self._publish(self.tracker.connection_lost(now))
        self._lost.set()

    def _fail_pending(self) -> None:
        for fut in list(self._pending):
            if not fut.done():
                fut.set_exception(AmiDisconnected(f"AMI {self.name}: connection lost"))
                fut.exception()  # mark retrieved: the caller may already be gone
        self._pending.clear()

    # --- messages ---------------------------------------------------------------------------------

    def _on_message(self, manager: Manager, message: Message) -> None:
        self._feed(message)

    def _feed(self, message: Mapping[str, Any]) -> None:
        self.messages_seen += 1
        now = asyncio.get_running_loop().time()
        try:
            events = self.tracker.feed(message, now)
        except Exception:  # never let one odd message kill the reader
            log.exception("AMI %s: message skipped: %s", self.name, mask(repr(dict(message))[:300]))
            return
        self._publish(events)
        for observe in self.observers:
            try:
                observe(dict(message))
            except Exception:  # an observer's bug must not kill the reader
                log.exception("AMI %s: observer failed", self.name)

    def _publish(self, events: Iterable[TelephonyEvent]) -> None:
        for event in events:
            self.stream.publish(event)

    async def _ticker(self) -> None:
        if self.options.tick_s <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.options.tick_s)
            now = loop.time()
            self._publish(self.tracker.tick(now))
            overdue = self.tracker.overdue(now)
            if overdue:
                self.tracker.mark_unverified(overdue)
                try:
                    await self.reconcile()
                except (AmiError, asyncio.TimeoutError):
                    pass

    async def _heartbeat(self) -> None:
        if self.options.heartbeat_s <= 0:
            return
        while True:
            await asyncio.sleep(self.options.heartbeat_s)
            try:
                await self._send({"Action": "Ping"})
            except AmiTimeout:
                log.warning("AMI %s: no answer to Ping; dropping the connection", self.name)
                if self._manager is not None and self._manager.protocol is not None:
                    self._manager.protocol.transport.abort()
                return
            except AmiError:
                return

    # --- actions ------------------------------------------------------------------------------------

    def _action(self, fields: Mapping[str, Any], as_list: bool | None) -> Action:
        action = Action(dict(fields))
        action.as_list = as_list
        return action

    async def _send(
        self,
        fields: Mapping[str, Any],
        *,
        as_list: bool | None = None,
        timeout: float | None = None,
        ready: bool = True,
    ) -> Any:
        """Send one action and await its reply (a Message, or a list for EventList actions)."""
        manager = self._manager
        if manager is None or manager.protocol is None or manager.protocol.closed or (ready and not self.connected):
            raise AmiNotConnected(f"AMI {self.name}: not connected")
        action = self._action(fields, as_list)
        future = manager.send_action(action, as_list=as_list)
        self._pending.add(future)
        limit = timeout or self.options.action_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            raise AmiTimeout(f"AMI {self.name}: no reply to {fields.get('Action')} within {limit:g} s") from None
        finally:
            self._pending.discard(future)

    async def query(self, action: str, **fields: str) -> list[dict[str, Any]]:
        """Run a list action (CoreShowChannels, Status...) and return its events as plain dicts."""
        for value in fields.values():
            check_text(value)
        reply = await self._send({"Action": check_id(action, "action"), **fields}, as_list=True)
        messages = reply if isinstance(reply, list) else [reply]
        if messages and messages[0].get("Response") == "Error":
            raise AmiActionError(f"{action}: {messages[0].get('Message', '')}")
        return [dict(m.items()) for m in messages if "Event" in m and not str(m["Event"]).endswith("Complete")]

    async def reconcile(self, *, recover: bool = False) -> set[str]:
        return (await self._reconcile(recover))[0]

    async def _reconcile(self, recover: bool) -> tuple[set[str], list[TelephonyEvent]]:
        """Ask which channels are alive; unverified calls that are gone get their terminal event. With
        ``recover``, also take over what this process did not place (see ``recover``)."""
        channels = await self.query("CoreShowChannels")
        now = asyncio.get_running_loop().time()
        self._publish(self.tracker.reconcile(channels, now))
        events: list[TelephonyEvent] = []
        if recover:
            self.recover_on_connect = False
            events, orphans = self.tracker.recover(channels, now)
            self._publish(events)
            for channel in orphans:  # a previous process's agent leg outside its room: the next login would collide
                log.warning("AMI %s: hanging up an agent leg left by a previous engine process", self.name)
                try:
                    _ok(await self._send({"Action": "Hangup", "Channel": channel, "Cause": "16"}), "Hangup")
                except AmiError as exc:
                    log.warning("AMI %s: hang-up of the orphaned agent leg failed: %s", self.name, exc)
        return {headers(c).get("uniqueid", "") for c in channels}, events

    async def recover(self) -> list[TelephonyEvent]:
        """At engine start: take over the calls with our attempt ids and the agent legs a previous engine process
        left up on this server (``Recovered``, ``AgentJoined``; orphaned legs outside their room are hung up).
        The events are published and returned (the caller need not wait for its reader to see them). When not
        connected now, it is done at the next login."""
        if not self.connected:
            self.recover_on_connect = True
            return []
        try:
            return (await self._reconcile(True))[1]
        except AmiError as exc:
            self.recover_on_connect = True
            log.warning("AMI %s: could not list the channels to recover (%s); retried at the next login", self.name, exc)
            return []

    async def phone_states(self, endpoints: Sequence[str]) -> dict[str, str]:
        """Asterisk's word now on agents' SIP phones (issue 18): ``Reachable`` when the endpoint has a contact it
        can reach, ``Unavailable`` when it has none (unregistered, or its qualify went unanswered); an endpoint
        whose state Asterisk cannot tell is left out. ContactStatus events only tell changes, so the engine reads
        this at start. ``Getvar`` of ``DEVICE_STATE(PJSIP/<endpoint>)``: the call account's own write class (the
        PJSIPShow* actions need "system")."""
        out: dict[str, str] = {}
        for endpoint in endpoints:
            if not _ENDPOINT.fullmatch(endpoint):
                continue
            reply = await self._send({"Action": "Getvar", "Variable": f"DEVICE_STATE(PJSIP/{endpoint})"},
                                     as_list=False)
            if reply.get("Response") != "Success":
                continue
            state = str(reply.get("Value", "")).strip().upper()
            if state in ("UNAVAILABLE", "INVALID"):
                out[endpoint] = "Unavailable"
            elif state in ("NOT_INUSE", "INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"):
                out[endpoint] = "Reachable"
        return out

    async def originate(
        self,
        call_id: str,
        number: str,
        caller_id: str,
        variables: Mapping[str, str],
        timeout_s: float,
    ) -> None:
        variables = check_originate(call_id, number, caller_id, {**variables, V.CC_CALL_ID: call_id})
        if not 1 <= timeout_s <= 300:
            raise ValueError("timeout_s must be between 1 and 300 seconds")
        if not self.connected:
            raise NoServerAvailable(call_id, f"AMI {self.name} is not connected")
        amd = variables[V.CC_AMD] == "1" if V.CC_AMD in variables else self.options.amd  # per campaign
        action_id = f"cc-orig-{call_id}-{next(self._ids)}"
        fields = {
            "Action": "Originate",
            "ActionID": action_id,
            "Channel": dial_string(self.options.dial_template, number),
            "Context": self.options.outbound_amd_context if amd else self.options.outbound_context,
            "Exten": "s",
            "Priority": "1",
            "Timeout": str(int(timeout_s * 1000)),
            "CallerID": caller_id,
            "Async": "true",
            "ChannelId": call_id,
            "Variable": [f"{k}={v}" for k, v in variables.items()],
        }
        loop = asyncio.get_running_loop()
        # Tracked BEFORE the write: Newchannel etc. can arrive before the "queued" reply.
        self.tracker.track(call_id, loop.time(), timeout_s, expect_amd=amd, action_id=action_id)
        try:
            reply = await self._send(fields, as_list=False)
        except AmiNotConnected:
            self.tracker.forget(call_id)  # nothing was written: Asterisk never heard of this call
            raise NoServerAvailable(call_id, f"AMI {self.name} is not connected") from None
        except (AmiDisconnected, AmiTimeout):
            # Written, but whether Asterisk got it we cannot know: keep it tracked as unverified, reconcile
            # settles it. It is NOT re-sent. The caller gets the error (for the dialler: an outcome "lost").
            self.tracker.mark_unverified([call_id])
            raise
        if reply.get("Response") != "Success":
            self.tracker.forget(call_id)
            raise OriginateRejected(call_id, str(reply.get("Message") or "refused"))
        log.info("AMI %s: originate %s to %s queued", self.name, call_id, mask_phone(number))

    def _call_channel(self, call_id: str) -> str:
        channel = self.tracker.channel_of(check_id(call_id))
        if channel is None:
            raise TelephonyError(f"call {call_id} has no live channel on {self.name}")
        return channel

    async def connect(self, call_id: str, agent_id: str) -> None:
        check_id(agent_id, "agent id")
        self._rooms[call_id] = agent_id
        if len(self._rooms) > 10_000:  # calls long over: keep the map bounded
            for old in [c for c in self._rooms if not self.tracker.is_live(c)]:
                self._rooms.pop(old, None)
        reply = await self._send(
            {
                "Action": "Redirect",
                "Channel": self._call_channel(call_id),
                "Context": self.options.agent_join_context,
                "Exten": agent_id,
                "Priority": "1",
            }
        )
        _ok(reply, "Redirect")

    async def play(self, call_id: str, prompt: str, context: str | None = None) -> None:
        """Send the call to the play context; the prompt name goes first, via a channel variable."""
        channel = self._call_channel(call_id)
        check_prompt(prompt)
        _ok(await self._send({"Action": "Setvar", "Channel": channel, "Variable": V.CC_PROMPT, "Value": prompt}), "Setvar")
        _ok(
            await self._send(
                {"Action": "Redirect", "Channel": channel, "Context": context or self.options.play_context, "Exten": "s",
                 "Priority": "1"}
            ),
            "Redirect",
        )

    async def play_menu(self, call_id: str, prompt: str) -> None:
        """A notification's message with a one-key menu ([cc-notify-menu]: Read() takes a key pressed while it
        plays); the key comes back as ``UserEvent: NotifyDigit``, reported as ``DigitPressed``."""
        await self.play(call_id, prompt, self.options.notify_menu_context)
    async def reassign(self, call_id: str, new_call_id: str) -> None:
        """The call goes on under ``new_call_id`` (a notification call whose client pressed 0, handed to the call
        core as a hand-off ``cc-h<id>``): ``CC_CALL_ID`` is set to it and the channel is sent to wait in
        ``[cc-handoff-wait]``, as an IVR hand-off's caller, whose ``HandoffWaiting`` reports it ``Answered`` there
        (parked: the core Redirects it into a ready agent's room, or plays the sorry prompt)."""
        check_id(new_call_id)
        channel = self._call_channel(call_id)
        if not self.tracker.reassign(call_id, new_call_id):
            raise TelephonyError(f"call {call_id} is not an answered call on {self.name}")
        _ok(await self._send({"Action": "Setvar", "Channel": channel, "Variable": V.CC_CALL_ID,
                              "Value": new_call_id}), "Setvar")
        _ok(await self._send({"Action": "Redirect", "Channel": channel, "Context": self.options.handoff_wait_context,
                              "Exten": "s", "Priority": "1"}), "Redirect")

    async def hangup(self, call_id: str) -> None:
        if not self.tracker.is_live(check_id(call_id)):
            return  # already over: nothing to do
        channel = self.tracker.channel_of(call_id)
        if channel is None:
            raise TelephonyError(f"call {call_id} has no channel yet on {self.name}")
        _ok(await self._send({"Action": "Hangup", "Channel": channel, "Cause": "16"}, as_list=None), "Hangup")

    # --- call recording: MixMonitor on the customer's channel (it hears the agent's room) -------------------
    # The shipped dialplan starts MixMonitor as the call joins an agent's room (the Redirect of ``connect`` is the
    # one action per call): <CC_RECORDINGS_DIR>/<call id>-<agent id>.wav. The MixMonitor action itself needs the
    # AMI "system" privilege (its Command runs a shell), which the engine's user is not given; MixMonitorMute and
    # StopMixMonitor need "call" only.

    def _recording_path(self, call_id: str, agent_id: str) -> str:
        folder = self.options.recordings_dir
        if not folder:
            raise TelephonyError("recording is not configured (asterisk_recordings_dir)")
        return os.path.join(folder, f"{check_id(call_id)}-{check_id(agent_id, 'agent id')}.wav")

    async def record_start(self, call_id: str, name: str) -> None:
        """The recording of the call's leg in the agent's room it was last moved into (started by the dialplan),
        known from now on as ``name``."""
        agent_id = self._rooms.get(check_id(call_id))
        if agent_id is None:
            raise TelephonyError(f"call {call_id} was not moved into an agent's room here")
        self._recording_path(call_id, agent_id)
        self._legs[name] = (call_id, agent_id)

    async def record_mute(self, call_id: str, muted: bool) -> None:
        """``MixMonitorMute`` both directions: Asterisk writes silence while muted (the span keeps its length)."""
        _ok(await self._send({"Action": "MixMonitorMute", "Channel": self._call_channel(call_id), "Direction": "both",
                              "State": "1" if muted else "0"}), "MixMonitorMute")

    async def record_stop(self, call_id: str) -> None:
        """``StopMixMonitor`` while the channel is up (the agent hangs up, or the call moves on: the dialplan's
        next room starts the next leg itself, so a leg no longer current is not stopped here)."""
        if not self.tracker.is_live(check_id(call_id)):
            return  # the channel is gone: MixMonitor ended with it
        legs = [agent for (call, agent) in self._legs.values() if call == call_id]
        if legs and legs[-1] != self._rooms.get(call_id):
            return  # the call is in another room now: its dialplan ended this leg and began the next
        channel = self.tracker.channel_of(call_id)
        if channel is None:
            return
        reply = await self._send({"Action": "StopMixMonitor", "Channel": channel})
        if reply.get("Response") == "Error":  # hung up meanwhile: nothing to stop
            log.debug("AMI %s: StopMixMonitor %s: %s", self.name, call_id, reply.get("Message", ""))

    async def record_audio(self, call_id: str, name: str) -> bytes | None:
        """The finished file, once Asterisk has closed it (its WAV header counts every byte written); None
        when it never appears or never completes within ``recording_file_wait_s``."""
        leg = self._legs.pop(name, None)
        if leg is None or leg[0] != call_id:
            return None
        path = self._recording_path(*leg)
        deadline = asyncio.get_running_loop().time() + self.options.recording_file_wait_s
        while True:
            data = await asyncio.to_thread(read_wav_if_closed, path)
            if data is not None:
                return data
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.2)  # Asterisk closes the file on its own thread after the hang-up

    async def agent_login(self, agent_id: str, phone: str) -> None:
        check_id(agent_id, "agent id")
        check_dial_string(phone)
        if self.tracker.agent_joined(agent_id):  # its leg is in the room already (e.g. left by a previous process):
            # a second Originate would collide with its ChannelId; the phone is up, say so again
            self._publish([AgentJoined(agent_id, asyncio.get_running_loop().time(), server=self.name)])
            return
        leg = self.tracker.track_agent(agent_id)
        reply = await self._send(
            {
                "Action": "Originate",
                "Channel": phone,
                "Context": self.options.agent_login_context,
                "Exten": agent_id,
                "Priority": "1",
                "Async": "true",
                "Timeout": str(int(self.options.agent_ring_timeout_s * 1000)),
                "ChannelId": leg,
                "OtherChannelId": f"{leg}2",
                "Variable": f"{V.CC_AGENT_ID}={agent_id}",
            },
            as_list=False,
        )
        if reply.get("Response") != "Success":
            self.tracker.forget_agent(agent_id)
            raise OriginateRejected(leg, str(reply.get("Message") or "refused"))

    async def agent_logout(self, agent_id: str) -> None:
        check_id(agent_id, "agent id")
        channel = self.tracker.agent_channel(agent_id)
        if channel is None:
            return
        _ok(await self._send({"Action": "Hangup", "Channel": channel}), "Hangup")

    # --- live-call controls (the port's CallControls; dialplan in config/asterisk/extensions.conf) ----------

    async def hold(self, call_id: str) -> None:
        """The customer leaves the agent's room for ``[cc-hold]`` (music on hold): nothing said in the room
        reaches them."""
        channel = self._call_channel(call_id)
        _ok(await self._send({"Action": "Redirect", "Channel": channel, "Context": self.options.hold_context,
                              "Exten": "s", "Priority": "1"}), "Redirect")

    async def unhold(self, call_id: str, agent_id: str) -> None:
        await self.connect(call_id, agent_id)  # back into the room (the tracker reports no second Connected)

    async def mute_agent(self, agent_id: str, muted: bool) -> None:
        check_id(agent_id, "agent id")
        channel = self.tracker.agent_channel(agent_id)
        if channel is None:
            raise TelephonyError(f"agent {agent_id} has no leg on {self.name}")
        action = "ConfbridgeMute" if muted else "ConfbridgeUnmute"
        _ok(await self._send({"Action": action, "Conference": f"agent-{agent_id}", "Channel": channel}), action)

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        channel = self._call_channel(call_id)
        for digit in check_dtmf(digits):
            _ok(await self._send({"Action": "PlayDTMF", "Channel": channel, "Digit": digit, "Duration": "250"}),
                "PlayDTMF")

    async def link_rooms(self, agent_id: str, other_agent_id: str) -> None:
        """A Local channel pair: one half joins ``agent-<agent_id>``, the other ``agent-<other_agent_id>``."""
        check_id(agent_id, "agent id")
        check_id(other_agent_id, "agent id")
        reply = await self._send({"Action": "Originate", "Channel": f"Local/{other_agent_id}@{self.options.link_context}/n",
                                  "Context": self.options.link_room_context, "Exten": agent_id, "Priority": "1",
                                  "Async": "true", "Timeout": "10000"}, as_list=False)
        if reply.get("Response") != "Success":
            raise TelephonyError(f"link of rooms {agent_id} and {other_agent_id} refused: {reply.get('Message', '')}")

    async def unlink_rooms(self, agent_id: str, other_agent_id: str) -> None:
        check_id(agent_id, "agent id")
        check_id(other_agent_id, "agent id")
        for other in (other_agent_id, agent_id):  # the link is named by the room its second half joined
            reply = await self._send({"Action": "Hangup", "Channel": f"/^Local.{other}@{self.options.link_context}-/",
                                      "Cause": "16"}, as_list=None)
            first = reply[0] if isinstance(reply, list) and reply else reply
            if getattr(first, "get", None) is not None and first.get("Response") == "Success":
                return

    async def to_ivr(self, call_id: str, menu: str) -> None:
        """Hand the caller back to the hotline IVR at ``menu``: CC_HANDOFF cleared (a previous IVR run may have set
        it), CC_IVR_ENTRY set (the dialplan passes it to the FastAGI: "orders" starts at the order menu after the
        login), then Redirect to the hotline context; the call has left the agent (``Ended``, "to_ivr") and is no
        longer ours (its later Hangup is not reported)."""
        channel = self._call_channel(call_id)
        check_menu(menu)
        for name, value in ((V.CC_HANDOFF, ""), (V.CC_IVR_ENTRY, menu)):
            _ok(await self._send({"Action": "Setvar", "Channel": channel, "Variable": name, "Value": value}), "Setvar")
        _ok(await self._send({"Action": "Redirect", "Channel": channel, "Context": self.options.hotline_context,
                              "Exten": "s", "Priority": "1"}), "Redirect")
        self._publish(self.tracker.left_for_ivr(call_id, asyncio.get_running_loop().time()))

    async def monitor(self, supervisor_id: str, phone: str, agent_id: str, mode: MonitorMode) -> None:
        """Dial the supervisor's phone bridged to a Local channel in ``[cc-monitor-<mode>]``: ChanSpy on the agent's
        leg for listen and whisper (options q, w), the agent's room itself for barge (heard by all in it)."""
        check_id(supervisor_id, "supervisor id")
        check_id(agent_id, "agent id")
        check_dial_string(phone)
        if mode not in MONITOR_MODES:
            raise ValueError(f"unknown monitor mode {mode!r}")
        context = self.options.monitor_context.format(mode=mode)
        reply = await self._send({"Action": "Originate", "Channel": f"Local/{agent_id}-{supervisor_id}@{context}/n",
                                  "Application": "Dial", "Data": phone, "Async": "true", "Timeout": "30000"},
                                 as_list=False)
        if reply.get("Response") != "Success":
            raise TelephonyError(f"monitor of agent {agent_id} refused: {reply.get('Message', '')}")

    async def stop_monitor(self, supervisor_id: str) -> None:
        check_id(supervisor_id, "supervisor id")
        await self._send({"Action": "Hangup", "Channel": f"/^Local.[0-9]+-{supervisor_id}@cc-monitor-/",
                          "Cause": "16"}, as_list=None)


def _ok(reply: Any, what: str) -> None:
    first = reply[0] if isinstance(reply, list) and reply else reply
    if getattr(first, "get", None) is None or first.get("Response") not in ("Success", "Goodbye"):
        message = first.get("Message", "") if hasattr(first, "get") else ""
        raise AmiActionError(f"{what} refused: {message}")


def describe_connect_error(exc: BaseException | None) -> str:
    """A short reason for logs and /healthz: "Connection refused", "no answer in time"..."""
    if exc is None:
        return "not connected"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no answer in time"
    if isinstance(exc, OSError):
        if exc.errno:
            return os.strerror(exc.errno)  # "Connection refused", "No route to host"...
        return str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


class AmiPool:
    """Several Asterisk servers behind one port. Attempts go to the connected server with the
    fewest calls in flight; when one server goes away the others carry on.

    Calls stay on the server that placed them. An agent's room lives on one server: every event says
    which (``server``), the dialler routes a call only to an agent whose phone is on the call's server,
    and ``connect`` refuses a call and an agent on different servers (never a Redirect into an empty
    room). Route agents with ``agent_login``'s ``server`` argument, or give each server its own agents.
    """

    def __init__(self, servers: Iterable[AmiServer], options: AmiOptions | None = None) -> None:
        self.stream = EventStream()
        self.clients = [AmiClient(s, options, stream=self.stream) for s in servers]
        if not self.clients:
            raise ValueError("AmiPool needs at least one server")
        self._calls: dict[str, AmiClient] = {}
        self._agents: dict[str, AmiClient] = {}
        self._monitors: dict[str, AmiClient] = {}  # supervisor -> the server their monitor runs on

    def add_observer(self, observe: Callable[[dict[str, Any]], None]) -> None:
        """Give ``observe`` every AMI message of every server (see AmiClient.observers)."""
        for client in self.clients:
            client.observers.append(observe)

    async def start(self) -> None:
        """Start every server; a server that refuses us or cannot be reached is left out (an unreachable one
        keeps being retried in the background). Fails, with every client closed, when no server is up:
        ``AmiLoginError`` when a server refused our login, else ``AmiUnreachable``."""
        results = await asyncio.gather(*(c.start() for c in self.clients), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in errors:
            if not isinstance(r, AmiLoginError):
                await self.aclose()
                raise r
        if any(c.connected for c in self.clients):
            return
        await self.aclose()
        if errors:
            raise errors[0]
        reasons = "; ".join(f"{c.name}: {describe_connect_error(c.last_error)}" for c in self.clients)
        raise AmiUnreachable(f"Asterisk unreachable ({reasons})")

    @property
    def connected(self) -> bool:
        return any(c.connected for c in self.clients)

    async def wait_given_up(self) -> AmiLoginError:
        """Returns (with the first login error) once every server has refused our login, e.g. after the
        secret was changed on Asterisk: then only a restart of the dialler, with backoff, can help."""
        await asyncio.gather(*(c.gave_up.wait() for c in self.clients))
        return next(c.login_error for c in self.clients if c.login_error is not None)

    def problem(self) -> str | None:
        """None when every server is up; else one sentence naming the servers that are down (for /healthz)."""
        down = [c for c in self.clients if not c.connected]
        if not down:
            return None
        parts = []
        for c in down:
            if c.login_error is not None:
                parts.append(f"{c.name} refused the AMI login")
            elif c.last_error is not None:
                parts.append(f"{c.name} unreachable ({describe_connect_error(c.last_error)})")
            else:
                parts.append(f"{c.name} not connected")
        return "Asterisk " + "; ".join(parts)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
        self.stream.close()

    def events(self) -> AsyncIterator[TelephonyEvent]:
        return self.stream.__aiter__()

    def _client_of(self, call_id: str) -> AmiClient:
        client = self._calls.get(call_id)
        if client is None:  # an inbound call (IVR hand-off): on the server whose dialplan reported it
            client = next((c for c in self.clients if c.tracker.is_live(call_id)), None)
            if client is not None:
                self._calls[call_id] = client
        if client is None or not client.tracker.is_live(call_id):
            self._calls.pop(call_id, None)
            # a call recovered from a previous engine process is known to its server's tracker only
            client = next((c for c in self.clients if c.tracker.is_live(call_id)), None)
            if client is None:
                raise TelephonyError(f"unknown call {call_id}")
            self._calls[call_id] = client
        return client

    def _agent_client(self, agent_id: str) -> AmiClient | None:
        client = self._agents.get(agent_id)
        if client is not None and client.tracker.has_agent(agent_id):
            return client
        return next((c for c in self.clients if c.tracker.has_agent(agent_id)), client)

    async def phone_states(self, endpoints: Sequence[str]) -> dict[str, str]:
        """``AmiClient.phone_states`` over the connected servers: ``Reachable`` where any server can reach the
        phone, ``Unavailable`` where every server that answered says so."""
        out: dict[str, str] = {}
        for client in self.clients:
            if not client.connected:
                continue
            try:
                states = await client.phone_states(endpoints)
            except AmiError as exc:
                log.warning("AMI %s: could not read the phones' states (%s)", client.name, exc)
                continue
            for endpoint, state in states.items():
                if out.get(endpoint) != "Reachable":
                    out[endpoint] = state
        return out

    async def recover(self) -> list[TelephonyEvent]:
        """``AmiClient.recover`` on every server (one not connected now recovers at its next login)."""
        found = await asyncio.gather(*(c.recover() for c in self.clients))
        return [event for events in found for event in events]

    async def originate(
        self, call_id: str, number: str, caller_id: str, variables: Mapping[str, str], timeout_s: float
    ) -> None:
        candidates = sorted((c for c in self.clients if c.connected), key=lambda c: c.in_flight())
        if not candidates:
            raise NoServerAvailable(call_id, "no Asterisk server is connected")
        for client in candidates:
            try:
                await client.originate(call_id, number, caller_id, variables, timeout_s)
            except NoServerAvailable:
                continue  # went down before anything was written: safe to try the next one
            self._calls[call_id] = client
            if len(self._calls) > 4 * sum(c.in_flight() + 1 for c in self.clients):
                self._calls = {k: v for k, v in self._calls.items() if v.tracker.is_live(k)}
            return
        raise NoServerAvailable(call_id, "no Asterisk server is connected")

    async def connect(self, call_id: str, agent_id: str) -> None:
        client = self._client_of(call_id)
        room = self._agent_client(agent_id)
        if room is not None and room is not client:  # never Redirect into an empty room on the call's server
            raise TelephonyError(f"call {call_id} is on {client.name}, agent {agent_id}'s phone on {room.name}")
        await client.connect(call_id, agent_id)

    async def hangup(self, call_id: str) -> None:
        try:
            client = self._client_of(call_id)
        except TelephonyError:
            return  # already over
        await client.hangup(call_id)

    async def play(self, call_id: str, prompt: str) -> None:
        await self._client_of(call_id).play(call_id, prompt)

    async def play_menu(self, call_id: str, prompt: str) -> None:
        await self._client_of(call_id).play_menu(call_id, prompt)
    async def record_start(self, call_id: str, name: str) -> None:
        await self._client_of(call_id).record_start(call_id, name)

    async def record_mute(self, call_id: str, muted: bool) -> None:
        await self._client_of(call_id).record_mute(call_id, muted)

    async def record_stop(self, call_id: str) -> None:
        try:
            client = self._client_of(call_id)
        except TelephonyError:
            return  # over: MixMonitor ended with the channel
        await client.record_stop(call_id)

    async def record_audio(self, call_id: str, name: str) -> bytes | None:
        client = next((c for c in self.clients if name in c._legs), None)  # the server that recorded it
        return await client.record_audio(call_id, name) if client is not None else None

    async def reassign(self, call_id: str, new_call_id: str) -> None:
        client = self._client_of(call_id)
        await client.reassign(call_id, new_call_id)
        self._calls.pop(call_id, None)
        self._calls[new_call_id] = client

    async def agent_login(self, agent_id: str, phone: str, server: str | None = None) -> None:
        pool = [c for c in self.clients if c.connected and (server is None or c.name == server)]
        joined = next((c for c in pool if c.tracker.agent_joined(agent_id)), None)
        if joined is not None:  # its leg is in its room there already (left up by a previous process)
            pool = [joined]
        if not pool:
            raise NoServerAvailable(agent_id, "no Asterisk server is connected")
        client = min(pool, key=lambda c: sum(1 for a in self._agents.values() if a is c))
        await client.agent_login(agent_id, phone)
        self._agents[agent_id] = client

    async def agent_logout(self, agent_id: str) -> None:
        client = self._agent_client(agent_id)
        self._agents.pop(agent_id, None)
        if client is not None:
            await client.agent_logout(agent_id)


    # --- live-call controls: on the server of the call (or of the agent's room) --------------------------------

    async def hold(self, call_id: str) -> None:
        await self._client_of(call_id).hold(call_id)

    async def unhold(self, call_id: str, agent_id: str) -> None:
        await self.connect(call_id, agent_id)

    def _room_client(self, agent_id: str) -> AmiClient:
        client = self._agent_client(agent_id)
        if client is None:
            raise TelephonyError(f"agent {agent_id} has no room on any server")
        return client

    async def mute_agent(self, agent_id: str, muted: bool) -> None:
        await self._room_client(agent_id).mute_agent(agent_id, muted)

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        await self._client_of(call_id).send_dtmf(call_id, digits)

    async def link_rooms(self, agent_id: str, other_agent_id: str) -> None:
        client, other = self._room_client(agent_id), self._room_client(other_agent_id)
        if client is not other:
            raise TelephonyError(f"agents {agent_id} and {other_agent_id} sit on different servers")
        await client.link_rooms(agent_id, other_agent_id)

    async def unlink_rooms(self, agent_id: str, other_agent_id: str) -> None:
        await self._room_client(agent_id).unlink_rooms(agent_id, other_agent_id)

    async def to_ivr(self, call_id: str, menu: str) -> None:
        await self._client_of(call_id).to_ivr(call_id, menu)

    async def monitor(self, supervisor_id: str, phone: str, agent_id: str, mode: MonitorMode) -> None:
        client = self._room_client(agent_id)
        self._monitors[supervisor_id] = client
        await client.monitor(supervisor_id, phone, agent_id, mode)

    async def stop_monitor(self, supervisor_id: str) -> None:
        client = self._monitors.pop(supervisor_id, None)
        if client is not None:
            await client.stop_monitor(supervisor_id)


def servers_from_settings(settings: Any) -> list[AmiServer]:
    """``Settings.ami_servers`` ("host:port" list) + username/secret -> server list."""
    out = []
    for entry in settings.ami_servers:
        host, _, port = entry.rpartition(":")
        out.append(AmiServer(host, int(port), settings.ami_username, settings.ami_secret.get_secret_value()))
    return out
