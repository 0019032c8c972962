"""Use cases of the outbound dialler, one transaction each (web screens, CLI and the engine call these).

Campaigns: create / edit / assign / schedule / start / pause / resume / stop; every change of a campaign's
state goes through ``apply_campaign_action`` (the one table is ``domain.campaigns.CAMPAIGN_TRANSITIONS``).
Agents: login / ready / pause / logout / disposition / preview choice.  Every agent state change is a
row in ``agent_state_changes`` (``change_agent_state``, shared with the engine).
Also: do-not-call requests and callbacks.

Live events go to ``core.bus`` (``emit_threadsafe``, typed events of ``callcenter.domain.events``, so they reach
every engine process): ``AgentStateChanged`` (the agent's screens and the wall board) on every change of an
agent's state made here, ``CampaignChanged`` (the wall board) on every change of a campaign's state.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from callcenter.services.deps import Deps
from callcenter.domain.campaigns import (
    CALLING_DAYS,
    DEFAULT_RETRY_MINUTES,
    CampaignRefused,
    RuleError,
    Window,
    agent_transition,
    campaign_transition,
    editable,
    next_window_open,
    zone,
)
from callcenter.services.dialer import rollups
from callcenter.services.dialer.budget import DEFAULT_TZ
from callcenter.services.dialer.hopper import release_lead
from callcenter.domain.events import AgentStateChanged, CampaignChanged
from callcenter.i18n import has, t
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models.core import Staff
from callcenter.store.models.dialer import (
    CAMPAIGN_KINDS,
    DIAL_MODES,
    AgentSession,
    AgentStateChange,
    Attempt,
    Callback,
    Campaign,
    CampaignAgent,
    CampaignGroup,
    DncEntry,
    Lead,
)
from callcenter.ports.telephony import agent_phone

EDITABLE_FIELDS = (
    "name", "kind", "script_id", "dial_mode", "ratio", "target_abandon", "caller_id", "window_start",
    "window_end", "days", "timezone", "max_attempts", "retry_delays", "recycle", "amd_policy",
    "leave_message", "priority",
)


class DialerError(RuleError):
    """A use case refused: ``code`` names the rule, ``sentence(lang)`` says why (``campaigns.error.<code>`` in
    the locale files when there is one, else the message)."""

    def __init__(self, message: str, code: str = "refused", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params

    def sentence(self, lang: str = "zh-CN") -> str:
        key = f"campaigns.error.{self.code}"
        if not has(key, lang):
            return str(self)
        params = dict(self.params)
        if "state" in params:
            params["state"] = t(f"campaigns.state.{params['state']}", lang)
        return t(key, lang, **params)


def _refuse(code: str, **params: Any) -> DialerError:
    error = DialerError("", code, **params)
    error.args = (error.sentence("en"),)
    return error


NAME_MAX = 128
MAX_ATTEMPTS = 20


# a campaign's answering-machine detection: "off" (none: every answer is a person), or on with what AMD's
# NOTSURE means -- "human" (never hang up on a person) or "machine"; on a machine, ``leave_message`` plays
# cc/leave-message, else the call is hung up
AMD_POLICIES = ("off", "human", "machine")


def _check_fields(fields: dict[str, Any], script_ids: Collection[str] | None = None) -> None:
    """The one check of a campaign's settings (pages, CLI, demo): ``DialerError`` with a code and a sentence.
    ``script_ids``: the talk scripts that exist (checked when given)."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise _refuse("unknown_field", fields=", ".join(sorted(unknown)))
    if "name" in fields:
        fields["name"] = str(fields["name"]).strip()
        if not fields["name"] or len(fields["name"]) > NAME_MAX:
            raise _refuse("bad_name", max=NAME_MAX)
    if "kind" in fields and fields["kind"] not in CAMPAIGN_KINDS:
        raise _refuse("bad_kind", allowed=", ".join(CAMPAIGN_KINDS))
    if "dial_mode" in fields and fields["dial_mode"] not in DIAL_MODES:
        raise _refuse("bad_dial_mode", allowed=", ".join(DIAL_MODES))
    if "amd_policy" in fields and fields["amd_policy"] not in AMD_POLICIES:
        raise _refuse("bad_amd_policy", allowed=", ".join(AMD_POLICIES))
    if "days" in fields and fields["days"] not in CALLING_DAYS:
        raise _refuse("bad_days", allowed=", ".join(CALLING_DAYS))
    if "timezone" in fields:
        try:
            zone(fields["timezone"])
        except RuleError:
            raise _refuse("bad_timezone", value=str(fields["timezone"])[:64]) from None
    if "target_abandon" in fields and not 0 < float(fields["target_abandon"]) < 0.5:
        raise _refuse("bad_target_abandon")
    if "ratio" in fields and float(fields["ratio"]) < 1.0:
        raise _refuse("bad_ratio")
    if "max_attempts" in fields and not 1 <= int(fields["max_attempts"]) <= MAX_ATTEMPTS:
        raise _refuse("bad_max_attempts", max=MAX_ATTEMPTS)
    if "retry_delays" in fields:
        delays = fields["retry_delays"]
        if not isinstance(delays, dict) or any(
            k not in DEFAULT_RETRY_MINUTES or float(v) < 0 for k, v in delays.items()
        ):
            raise _refuse("bad_retry_delays", allowed=", ".join(DEFAULT_RETRY_MINUTES))
    if "script_id" in fields:
        script = str(fields["script_id"])
        if not script.replace("_", "").isalnum() or (script_ids is not None and script not in script_ids):
            raise _refuse("bad_script", value=script[:64])
    for key in ("window_start", "window_end"):
        if key in fields and isinstance(fields[key], str):
            try:
                fields[key] = time.fromisoformat(fields[key])
            except ValueError:
                raise _refuse("bad_window") from None


def _check_window(c: Campaign) -> None:
    try:
        Window(c.window_start, c.window_end, c.days)
    except RuleError:
        raise _refuse("bad_window") from None


def check_schedule_time(core: Deps, at: datetime) -> None:
    """A one-off schedule must lie in the future: one in the past would never fire (``schedule_in_past``)."""
    if at.tzinfo is None:
        raise _refuse("bad_schedule")
    now = core.clock()
    if at <= now:
        raise _refuse("schedule_in_past", at=at.astimezone(zone(core.settings.timezone)).strftime("%Y-%m-%d %H:%M"))


def calling_hours_hint(core: Deps, c: Campaign) -> datetime | None:
    """For a running campaign outside its calling hours: when it next opens (aware, the campaign's zone), so the
    screens can say "not in calling hours, starts 09:00"; None when it is calling now (or not running)."""
    if c.state != "running":
        return None
    now = core.clock()
    window = Window(c.window_start, c.window_end, c.days)
    opening = next_window_open(now, c.timezone or core.settings.timezone, window, core.calendar.is_trading_day)
    if opening is None or opening <= now:
        return None
    return opening.astimezone(zone(c.timezone or core.settings.timezone))


# --- campaigns ------------------------------------------------------------------------------------


def create_campaign(
    core: Deps, *, name: str, kind: str, script_id: str, created_by: int | None = None,
    script_ids: Collection[str] | None = None, group_ids: Iterable[int] = (), **fields: Any
) -> int:
    """A new campaign in ``draft`` (``group_ids``: the service groups whose agents take its calls)."""
    fields = dict(fields, name=name, kind=kind, script_id=script_id)
    _check_fields(fields, script_ids)
    now = core.clock()

    def work(s: Session) -> int:
        c = Campaign(created_by=created_by, created_at=now, updated_at=now, state="draft",
                     **{"retry_delays": {}, **fields})
        for key, value in (("dial_mode", "progressive"), ("ratio", 2.0), ("target_abandon", 0.03),
                           ("caller_id", ""), ("window_start", time(9, 0)), ("window_end", time(20, 0)),
                           ("days", "working"), ("timezone", core.settings.timezone), ("max_attempts", 3),
                           ("recycle", False), ("amd_policy", "human"), ("leave_message", False), ("priority", 0)):
            if getattr(c, key) is None:
                setattr(c, key, value)
        _check_window(c)
        s.add(c)
        s.flush()
        for gid in sorted(set(group_ids)):
            s.add(CampaignGroup(campaign_id=c.id, service_group_id=gid))
        return c.id

    return run_in_transaction(core.sessions, work)


def _campaign(s: Session, campaign_id: int, lock: bool = True) -> Campaign:
    q = select(Campaign).where(Campaign.id == campaign_id)
    if lock and dialect_name(s) == "postgresql":
        q = q.with_for_update()
    c = s.scalars(q).first()
    if c is None:
        raise _refuse("not_found", id=campaign_id)
    return c


def edit_campaign(core: Deps, campaign_id: int, *, script_ids: Collection[str] | None = None,
                  group_ids: Iterable[int] | None = None, **fields: Any) -> None:
    """Change settings of a campaign that is not running (``editable``); ``group_ids`` replaces its groups."""
    _check_fields(fields, script_ids)
    now = core.clock()

    def work(s: Session) -> None:
        c = _campaign(s, campaign_id)
        if not editable(c.state):
            raise _refuse("not_editable", state=c.state)
        if group_ids is not None:
            c.groups = [CampaignGroup(campaign_id=c.id, service_group_id=g) for g in sorted(set(group_ids))]
        for key, value in fields.items():
            setattr(c, key, value)
        _check_window(c)
        c.updated_at = now

    run_in_transaction(core.sessions, work)


def assign_campaign(core: Deps, campaign_id: int, *, group_ids: Iterable[int] = (), staff_ids: Iterable[int] = ()) -> None:
    """Replace the campaign's assigned service groups and agents."""

    def work(s: Session) -> None:
        c = _campaign(s, campaign_id)
        c.groups = [CampaignGroup(campaign_id=c.id, service_group_id=g) for g in sorted(set(group_ids))]
        c.agents = [CampaignAgent(campaign_id=c.id, staff_id=a) for a in sorted(set(staff_ids))]
        c.updated_at = core.clock()

    run_in_transaction(core.sessions, work)


def apply_campaign_action(c: Campaign, action: str, now: datetime, at: datetime | None = None) -> str:
    """THE writer of a campaign's state (in the caller's transaction): checks ``action`` against the one
    table (``domain.campaigns.CAMPAIGN_TRANSITIONS``, ``CampaignRefused`` when not allowed) and stamps the
    times. Web pages, CLI, scheduler and dialler all come here."""
    before = c.state
    c.state = campaign_transition(before, action)
    if c.state == before and action != "schedule":
        return c.state  # already there: nothing changes
    c.updated_at = now
    if action == "schedule":
        c.scheduled_at = at or now
    if action == "unschedule":
        c.scheduled_at = None
    if c.state == "running" and c.started_at is None:
        c.started_at = now
    if c.state == "finished":
        c.finished_at = now
    return c.state


def refused_sentence(exc: CampaignRefused, lang: str = "zh-CN") -> str:
    """What a person reads when the life-cycle refuses an action (pages and CLI)."""
    return t("campaigns.refused", lang, state=t(f"campaigns.state.{exc.state}", lang),
             action=t(f"campaigns.action.{exc.action}", lang))


def campaign_action(core: Deps, campaign_id: int, action: str, at: datetime | None = None) -> str:
    """Apply ``action`` (schedule / unschedule / start / pause / resume / stop) in one transaction and tell the
    wall board; returns the new state."""
    now = core.clock()
    state = run_in_transaction(core.sessions, lambda s: apply_campaign_action(_campaign(s, campaign_id), action, now, at))
    core.bus.emit_threadsafe(CampaignChanged(campaign_id=campaign_id, state=state))
    return state


def schedule_campaign(core: Deps, campaign_id: int, at: datetime) -> str:
    return campaign_action(core, campaign_id, "schedule", at)


def plan_start(core: Deps, campaign_id: int, at: datetime) -> str:
    """A start job is being scheduled for ``at``: a campaign not started yet becomes ``scheduled`` at that time;
    a started one (running or paused) keeps its state — the job resumes it when it fires; a finished one is
    refused (``CampaignRefused``). Returns the state."""
    now = core.clock()

    def work(s: Session) -> str:
        c = _campaign(s, campaign_id)
        if c.state in ("running", "paused"):
            return c.state
        return apply_campaign_action(c, "schedule", now, at)

    state = run_in_transaction(core.sessions, work)
    core.bus.emit_threadsafe(CampaignChanged(campaign_id=campaign_id, state=state))
    return state


def start_campaign(core: Deps, campaign_id: int) -> str:
    return campaign_action(core, campaign_id, "start")


def pause_campaign(core: Deps, campaign_id: int) -> str:
    return campaign_action(core, campaign_id, "pause")


def resume_campaign(core: Deps, campaign_id: int) -> str:
    return campaign_action(core, campaign_id, "resume")


def stop_campaign(core: Deps, campaign_id: int) -> str:
    return campaign_action(core, campaign_id, "stop")


def recycle_leads(core: Deps, campaign_id: int, *, max_passes: int = 3) -> int:
    """Give a campaign's exhausted leads another pass (its attempts start again), when the campaign allows
    recycling. Never a lead that reached a final contact or is on a do-not-call list, and at most
    ``max_passes`` passes per lead (counted in ``extra["recycled"]``). Returns how many leads came back."""
    now = core.clock()

    def work(s: Session) -> int:
        c = _campaign(s, campaign_id)
        if not c.recycle:
            raise DialerError(f"campaign {campaign_id} does not allow recycling")
        if c.state == "finished":
            raise DialerError(f"campaign {campaign_id} is finished")
        dnc = set(s.scalars(select(DncEntry.phone).where(
            (DncEntry.campaign_id.is_(None)) | (DncEntry.campaign_id == campaign_id))))
        count = 0
        for lead in s.scalars(select(Lead).where(Lead.campaign_id == campaign_id, Lead.status == "exhausted")):
            passes = int((lead.extra or {}).get("recycled", 0))
            if lead.phone in dnc or passes >= max_passes:
                continue
            lead.extra = {**(lead.extra or {}), "recycled": passes + 1}
            lead.status, lead.attempts, lead.next_attempt_at = "retry", 0, now
            lead.claimed_by, lead.claimed_until, lead.updated_at = None, None, now
            count += 1
        return count

    return run_in_transaction(core.sessions, work)


def start_due(s: Session, now: datetime) -> list[int]:
    """Scheduled campaigns whose start time has come go running (in the caller's transaction)."""
    q = select(Campaign).where(Campaign.state == "scheduled", Campaign.scheduled_at <= now)
    if dialect_name(s) == "postgresql":
        q = q.with_for_update(skip_locked=True)
    started = []
    for c in s.scalars(q):
        apply_campaign_action(c, "start", now)
        started.append(c.id)
    return started


def start_due_campaigns(core: Deps, now: datetime) -> list[int]:
    """Scheduled campaigns whose start time has come go running (the dialler does this at every sync)."""
    return run_in_transaction(core.sessions, lambda s: start_due(s, now))


def campaign_agent_ids(s: Session, campaign_id: int) -> set[int]:
    """Agents assigned by name or through a service group."""
    ids = set(s.scalars(select(CampaignAgent.staff_id).where(CampaignAgent.campaign_id == campaign_id)))
    groups = list(s.scalars(select(CampaignGroup.service_group_id).where(CampaignGroup.campaign_id == campaign_id)))
    if groups:
        ids |= set(s.scalars(select(Staff.id).where(Staff.service_group_id.in_(groups), Staff.active.is_(True))))
    return ids


# --- do not call ----------------------------------------------------------------------------------


def add_dnc(core: Deps, phone: str, *, campaign_id: int | None = None, reason: str = "", added_by: int | None = None) -> int:
    """Put a number on the global (``campaign_id`` None) or a campaign's DNC list; its open leads become ``dnc``."""
    from callcenter.services.dialer.leads import normalise_phone

    e164 = normalise_phone(phone)
    now = core.clock()
    return run_in_transaction(core.sessions, lambda s: add_dnc_in(s, e164, now, campaign_id=campaign_id,
                                                                  reason=reason, added_by=added_by))


def add_dnc_in(s: Session, e164: str, now: datetime, *, campaign_id: int | None = None, reason: str = "",
               added_by: int | None = None) -> int:
    """``add_dnc`` inside the caller's transaction (``e164`` already normalised)."""
    entry = DncEntry(phone=e164, campaign_id=campaign_id, reason=reason[:64], added_by=added_by, at=now)
    s.add(entry)
    q = update(Lead).where(Lead.phone == e164, Lead.status.in_(("new", "retry", "in_progress")))
    if campaign_id is not None:
        q = q.where(Lead.campaign_id == campaign_id)
    s.execute(q.values(status="dnc", updated_at=now))
    s.execute(update(Callback).where(Callback.phone == e164, Callback.status == "pending").values(status="missed"))
    s.flush()
    return entry.id


# --- agents ---------------------------------------------------------------------------------------


def open_session(s: Session, staff_id: int, lock: bool = True) -> AgentSession | None:
    q = select(AgentSession).where(AgentSession.staff_id == staff_id, AgentSession.ended_at.is_(None))
    if lock and dialect_name(s) == "postgresql":
        q = q.with_for_update()
    return s.scalars(q.order_by(AgentSession.id.desc())).first()


def change_agent_state(
    s: Session, session: AgentSession, event: str, now: datetime, *, reason: str = "", attempt_id: int | None = None,
) -> AgentStateChange:
    """Apply one agent event by the pure state machine and record the change (raises RuleError if not allowed)."""
    new = agent_transition(session.state, event)
    change = AgentStateChange(session_id=session.id, staff_id=session.staff_id, from_state=session.state,
                              to_state=new, reason=reason[:32], attempt_id=attempt_id, at=now)
    s.add(change)
    session.state = new
    session.reason = reason[:32] if new == "paused" else ""
    session.state_since = now
    if new in ("reserved", "talking", "wrap_up"):
        if attempt_id is not None:
            session.attempt_id = attempt_id
    else:
        session.attempt_id = None
    if new == "logged_out":
        session.ended_at = now
        session.dialer_id = None
    return change


def _agent_event(core: Deps, staff_id: int, event: str, reason: str = "") -> str:
    now = core.clock()

    def work(s: Session) -> tuple[str, int | None]:
        session = open_session(s, staff_id)
        if session is None:
            raise DialerError("agent is not logged in to the dialler")
        if event in ("pause", "logout") and session.preview_lead_id is not None:
            lead = s.get(Lead, session.preview_lead_id)
            if lead is not None and lead.status == "in_progress":
                release_lead(s, lead, now)
            session.preview_lead_id = None
            session.preview_action = None
            if session.state == "reserved":
                change_agent_state(s, session, "release", now, reason="preview_released")
        change_agent_state(s, session, event, now, reason=reason)
        return session.state, session.attempt_id

    state, attempt_id = run_in_transaction(core.sessions, work)
    core.bus.emit_threadsafe(AgentStateChanged(staff_id=staff_id, state=state, reason=reason, attempt_id=attempt_id))
    return state


def agent_login(core: Deps, staff_id: int, *, phone: str = "", campaign_id: int | None = None) -> int:
    """Open a dialler session (state ``paused``/``login`` until the agent goes ready); returns its id.

    ``campaign_id`` None: the highest-priority running campaign the agent is assigned to (if any).
    ``phone``: the phone the agent sits at (an extension, or a dial string), else the staff member's extension,
    both through ``agent_phone_template`` (``telephony.port.agent_phone``). With neither, the simulated PBX
    takes ``Local/<staff id>@cc-agents`` (it rings nothing); a real PBX refuses the login (``no_phone``).
    """
    now = core.clock()

    def work(s: Session) -> int:
        staff = s.get(Staff, staff_id)
        if staff is None or not staff.active:
            raise DialerError("unknown or inactive staff member")
        existing = open_session(s, staff_id)
        if existing is not None:
            return existing.id
        cid = campaign_id
        if cid is None:
            running = s.scalars(select(Campaign).where(Campaign.state == "running")
                                .order_by(Campaign.priority.desc(), Campaign.id)).all()
            cid = next((c.id for c in running if staff_id in campaign_agent_ids(s, c.id)), None)
        elif staff_id not in campaign_agent_ids(s, cid):
            raise DialerError("agent is not assigned to this campaign")
        try:
            dial = agent_phone(core.settings.agent_phone_template, given=phone, extension=staff.extension,
                               staff_id=staff_id)
        except ValueError:
            raise DialerError("not a phone extension or dial string", code="bad_phone") from None
        if dial is None:
            if core.settings.telephony_backend != "simulated":
                raise DialerError("no phone: give an extension at login or have an admin set one", code="no_phone")
            dial = f"Local/{staff_id}@cc-agents"
        session = AgentSession(staff_id=staff_id, campaign_id=cid, phone=dial,
                               state="logged_out", reason="", state_since=now, started_at=now)
        s.add(session)
        s.flush()
        change_agent_state(s, session, "login", now, reason="login")
        return session.id

    return run_in_transaction(core.sessions, work)


def agent_ready(core: Deps, staff_id: int) -> str:
    return _agent_event(core, staff_id, "ready")


def agent_pause(core: Deps, staff_id: int, reason: str) -> str:
    if not reason:
        raise DialerError("a pause needs a reason")
    return _agent_event(core, staff_id, "pause", reason)


def agent_logout(core: Deps, staff_id: int) -> str:
    return _agent_event(core, staff_id, "logout", "logout")


def agent_state(core: Deps, staff_id: int) -> dict[str, Any] | None:
    def work(s: Session) -> dict[str, Any] | None:
        session = open_session(s, staff_id, lock=False)
        if session is None:
            return None
        return {"session_id": session.id, "state": session.state, "reason": session.reason,
                "since": session.state_since.isoformat(), "campaign_id": session.campaign_id,
                "attempt_id": session.attempt_id, "preview_lead_id": session.preview_lead_id}

    return run_in_transaction(core.sessions, work)


def record_disposition(
    core: Deps, staff_id: int, attempt_id: int, disposition: str, *, notes: str = "",
    script_run: dict[str, Any] | None = None, then: str = "ready", pause_reason: str = "",
) -> None:
    """The agent's wrap-up: disposition, notes and the script run saved on the attempt; then ready (or paused,
    or ``then="wrap_up"``: stay in wrap-up until the agent goes ready from the screen).

    A ``dnc`` disposition puts the number on the campaign's DNC list; ``retry`` sends the lead back to the hopper.
    """
    now = core.clock()
    state = run_in_transaction(core.sessions, lambda s: record_disposition_in(
        s, staff_id, attempt_id, disposition, now, notes=notes, script_run=script_run, then=then,
        pause_reason=pause_reason, tz=core.settings.tz))
    core.bus.emit_threadsafe(AgentStateChanged(staff_id=staff_id, state=state, reason="disposition"))


def record_disposition_in(
    s: Session, staff_id: int, attempt_id: int, disposition: str, now: datetime, *, notes: str = "",
    script_run: dict[str, Any] | None = None, then: str = "ready", pause_reason: str = "", tz: tzinfo = DEFAULT_TZ,
) -> str:
    """``record_disposition`` inside the caller's transaction; returns the agent's state (no live event).
    ``tz``: the settings time zone (the reports' rollup is by local day)."""
    if not disposition or len(disposition) > 32:
        raise DialerError("disposition must be 1-32 characters")
    attempt = s.get(Attempt, attempt_id)
    if attempt is None or attempt.agent_id != staff_id:
        raise DialerError("this call was not yours")
    before = attempt.disposition
    attempt.disposition = disposition
    rollups.move_disposition(s, attempt, before, tz)
    attempt.notes = notes
    attempt.script_run = script_run
    lead = s.get(Lead, attempt.lead_id)
    if lead is not None and attempt.ended_at is not None:
        if disposition == "dnc":
            s.add(DncEntry(phone=lead.phone, campaign_id=lead.campaign_id, reason="disposition",
                           added_by=staff_id, at=now))
            lead.status = "dnc"
        elif disposition == "retry" and lead.status == "done":
            lead.status = "retry"
            lead.next_attempt_at = now
        lead.updated_at = now
    session = open_session(s, staff_id)
    if session is not None and session.state == "wrap_up" and session.attempt_id == attempt_id:
        if then == "pause":
            change_agent_state(s, session, "pause", now, reason=pause_reason or "after_call")
        elif then != "wrap_up":
            change_agent_state(s, session, "ready", now, reason="disposition")
    return session.state if session is not None else "logged_out"


def preview_choice(core: Deps, staff_id: int, action: str) -> None:
    """Preview mode: the agent dials (``dial``) or skips (``skip``) the lead shown; the dialler carries it out."""
    if action not in ("dial", "skip"):
        raise DialerError("preview action is dial or skip")

    def work(s: Session) -> None:
        session = open_session(s, staff_id)
        if session is None or session.preview_lead_id is None or session.state != "reserved":
            raise DialerError("no lead is being previewed")
        session.preview_action = action

    run_in_transaction(core.sessions, work)


# --- callbacks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackRequest:
    due_at: datetime
    agent_only: bool = False
    owner_id: int | None = None
    note: str = ""


def book_callback(
    core: Deps, *, due_at: datetime, attempt_id: int | None = None, lead_id: int | None = None,
    agent_only: bool = False, owner_id: int | None = None, note: str = "", created_by: int | None = None,
) -> int:
    """Book a call back of a lead (directly or through one of its attempts) at ``due_at`` (aware datetime)."""
    now = core.clock()
    return run_in_transaction(core.sessions, lambda s: book_callback_in(
        s, now, due_at=due_at, attempt_id=attempt_id, lead_id=lead_id, agent_only=agent_only, owner_id=owner_id,
        note=note, created_by=created_by))


def book_callback_in(
    s: Session, now: datetime, *, due_at: datetime, attempt_id: int | None = None, lead_id: int | None = None,
    agent_only: bool = False, owner_id: int | None = None, note: str = "", created_by: int | None = None,
) -> int:
    """``book_callback`` inside the caller's transaction."""
    if due_at.tzinfo is None:
        raise DialerError("due time must carry a time zone")
    if agent_only and owner_id is None:
        raise DialerError("an agent-only callback needs its agent")
    lid = lead_id
    if attempt_id is not None:
        attempt = s.get(Attempt, attempt_id)
        if attempt is None:
            raise DialerError(f"no attempt {attempt_id}")
        lid = attempt.lead_id
    lead = s.get(Lead, lid) if lid is not None else None
    if lead is None:
        raise DialerError("a callback needs a lead")
    cb = Callback(campaign_id=lead.campaign_id, lead_id=lead.id, client_id=lead.client_id, phone=lead.phone,
                  due_at=due_at, agent_only=agent_only, owner_id=owner_id, status="pending", note=note,
                  created_by=created_by or owner_id, created_at=now)
    s.add(cb)
    s.flush()
    return cb.id
