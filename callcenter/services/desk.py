"""Agent desk use cases not in the dialler: the agent's status, the screen pop (call card), walking the talk
script, notes, disposition, callback booking, do-not-call request and hang-up.

Every use case runs in one transaction and returns plain data; the web layer renders it. Live events are
published by the caller (the web layer) on ``core.bus`` after the transaction commits.

Agent states, dispositions, callbacks and do-not-call entries go through the dialler's use cases
(``callcenter.services.dialer.campaigns``) and its agent state machine, so a session opened on the screen is the dialler's
session: the running engine leases it and routes calls to the agent once they are ready.

Access: an agent sees the clients of their own service group AND the client of a call routed to them (a
``DeskContact`` that is theirs); a supervisor sees their groups; admin sees all. Every card opened is
audit-logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.deps import Deps
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.dialer.budget import DEFAULT_TZ
from callcenter.services.dialer.leads import InvalidPhone, normalise_phone
from callcenter.domain.campaigns import RuleError
from callcenter.domain.masking import mask_phone
from callcenter.services.scripts import (
    AgentInfo,
    CampaignInfo,
    ClientInfo,
    CompanyInfo,
    EventInfo,
    Holding,
    Script,
    ScriptContext,
    ScriptRun,
    load_all,
    render_step,
)
from callcenter.domain.scripts.model import KINDS, OUTCOMES
from callcenter.services.access import may_read, staff_actor
from callcenter.services.clients import client_summary
from callcenter.services import phones
from callcenter.shipped import shipped_dir
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, Client, ServiceGroup, Staff
from callcenter.store.models.desk import ClientAssetSnapshot, DeskContact
from callcenter.store.models.dialer import AgentSession, Attempt, Callback, Campaign, Lead
from callcenter.store.models.ivr import IvrSession

SCRIPTS_DIR = shipped_dir("scripts_templates")  # the shipped scripts; callers pass settings.scripts_path
PHONE_CHOICES = ("webrtc", "sip")  # at login: which of the agent's phones they sit at (services.phones)
DESK_STATES = ("ready", "paused", "wrap_up", "logged_out")
PAUSE_REASONS = ("break", "meal", "training", "meeting", "admin")
CAMPAIGN_KIND_TO_SCRIPT_KIND = {"former_clients": "win_back", "cold_leads": "cold_call", "dormant": "dormant",
                                "reminder": "reminder", "callback": "other"}


# --- dispositions and pause codes (the admin's ``desk_codes``, per campaign kind) ----------------------------

def campaign_kind(s: Session, campaign_id: int | None) -> str | None:
    """The kind of campaign ``campaign_id`` (None: no campaign, an inbound call, or a campaign gone)."""
    if campaign_id is None:
        return None
    camp = s.get(Campaign, campaign_id)
    return camp.kind if camp is not None else None


def _builtin(code_type: str, lang: str) -> list[tuple[str, str]]:
    from callcenter.i18n import t

    if code_type == "disposition":
        return [(o, t(f"web.disposition.{o}", lang)) for o in OUTCOMES]
    return [(r, t(f"web.reason.{r}", lang)) for r in PAUSE_REASONS]


def desk_codes(s: Session, code_type: str, kind: str | None, lang: str) -> list[tuple[str, str]]:
    """(code, label) an agent may choose on a call of campaign kind ``kind`` (None: inbound / no campaign): the
    administrators' active codes for that kind and for every kind (``admin.codes_for``), else, when none is
    configured, the built-in ones (the scripts' outcomes, ``PAUSE_REASONS``)."""
    from callcenter.services.admin import codes_for

    rows = codes_for(s, code_type, kind)
    if not rows:
        return _builtin(code_type, lang)
    return [(c.code, c.label(lang)) for c in rows]


def code_labels(s: Session, code_type: str, lang: str) -> dict[str, str]:
    """Every code of ``code_type`` ever configured (any kind, disabled ones too) with its label, over the built-in
    ones: to name a code already recorded (a contact's history, today's figures, the wall board)."""
    from callcenter.store.models import DeskCode

    labels = dict(_builtin(code_type, lang))
    for c in s.execute(select(DeskCode).where(DeskCode.code_type == code_type)
                       .order_by(DeskCode.campaign_kind.desc(), DeskCode.id)).scalars():
        labels[c.code] = c.label_en if lang == "en" and c.label_en else c.label_zh
    return labels


def pause_codes_known(s: Session) -> frozenset[str]:
    """The codes that are pause reasons a person chose (built-in or configured), not the dialler's own
    (``login`` ...), which screens do not show."""
    from callcenter.store.models import DeskCode

    return frozenset(PAUSE_REASONS) | frozenset(s.execute(select(DeskCode.code).where(
        DeskCode.code_type == "pause")).scalars())


def current_kind(s: Session, staff_id: int) -> str | None:
    """The campaign kind that decides the agent's codes now: their open contact's campaign, else the campaign
    their session works."""
    contact = _open_contact(s, staff_id)
    if contact is not None:
        return campaign_kind(s, contact.campaign_id)
    sess = _open_session(s, staff_id)
    return campaign_kind(s, sess.campaign_id) if sess is not None else None


class DeskError(Exception):
    """A refused desk action; ``code`` keys ``web.errors.<code>``; ``status`` is the HTTP status to answer."""

    def __init__(self, code: str, status: int = 409) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


@lru_cache(maxsize=4)
def _catalogue(directory: str) -> dict[str, Script]:
    return load_all(directory)


def scripts(directory: Path | None = None) -> dict[str, Script]:
    """The talk scripts in ``directory`` (settings.scripts_path; default: the shipped ones), loaded once."""
    return _catalogue(str(directory or SCRIPTS_DIR))


# --- status ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentStatus:
    state: str
    reason: str
    since: datetime
    contact_id: int | None
    campaign_id: int | None


def _open_session(s: Session, staff_id: int) -> AgentSession | None:
    return s.execute(select(AgentSession).where(AgentSession.staff_id == staff_id, AgentSession.ended_at.is_(None))
                     .order_by(AgentSession.id.desc()).limit(1)).scalar_one_or_none()


def _open_contact(s: Session, staff_id: int) -> DeskContact | None:
    return s.execute(select(DeskContact).where(DeskContact.agent_id == staff_id, DeskContact.ended_at.is_(None))
                     .order_by(DeskContact.id.desc()).limit(1)).scalar_one_or_none()


def status(s: Session, staff_id: int, now: datetime) -> AgentStatus:
    sess = _open_session(s, staff_id)
    contact = _open_contact(s, staff_id)
    if sess is None:
        return AgentStatus("logged_out", "", now, contact.id if contact else None, None)
    # the dialler's own reasons (login, ...) are not shown
    reason = sess.reason if sess.state == "paused" and sess.reason in pause_codes_known(s) else ""
    return AgentStatus(sess.state, reason, sess.state_since, contact.id if contact else None, sess.campaign_id)


def open_contact_brief(s: Session, staff_id: int) -> dict[str, Any] | None:
    """The agent's open desk contact (what ``GET /api/desk/status`` shows), or None."""
    contact = _open_contact(s, staff_id)
    if contact is None:
        return None
    held, muted = call_control_state(s, contact) if contact.hung_up_at is None else (False, False)
    return {"id": contact.id, "client_id": contact.client_id, "campaign_id": contact.campaign_id,
            "since": contact.started_at, "direction": contact.direction, "hung_up": contact.hung_up_at is not None,
            "on_hold": held, "muted": muted}


#: what a call control the call core carried out (``done``) leaves: (held, muted); None keeps the value as it was
_CONTROL_EFFECT: dict[str, tuple[bool | None, bool | None]] = {
    "hold": (True, None), "resume": (False, None), "consult": (True, None), "conference": (False, None),
    "consult_cancel": (False, None), "consult_complete": (False, None), "mute": (None, True),
    "unmute": (None, False), "transfer": (False, False), "transfer_ivr": (False, False),
}


def fold_controls(kinds: list[str]) -> tuple[bool, bool]:
    """(on hold, agent muted) after the call core carried out ``kinds`` in that order (the call core's own
    bookkeeping: ``dialer.core`` ``_control``)."""
    held = muted = False
    for k in kinds:
        h, m = _CONTROL_EFFECT.get(k, (None, None))
        held = held if h is None else h
        muted = muted if m is None else m
    return held, muted


def call_control_state(s: Session, contact: DeskContact) -> tuple[bool, bool]:
    """Whether the live call of ``contact`` is on hold and the agent muted, from the call commands its call core
    carried out (``call_commands`` rows ``done``), not from any browser: a reloaded screen shows it."""
    from callcenter.store.models.commands import CallCommand

    kinds = list(s.execute(select(CallCommand.kind).where(CallCommand.contact_id == contact.id,
                                                          CallCommand.state == "done",
                                                          CallCommand.kind.in_(list(_CONTROL_EFFECT)))
                           .order_by(CallCommand.done_at, CallCommand.id)).scalars())
    return fold_controls(kinds)


def _apply(s: Session, sess: AgentSession, event: str, now: datetime, reason: str = "",
           attempt_id: int | None = None) -> None:
    """One agent event by the dialler's state machine; a refused move is a 409 for the screen."""
    try:
        dialer.change_agent_state(s, sess, event, now, reason=reason, attempt_id=attempt_id)
    except RuleError:
        raise DeskError("bad_state_change") from None


def set_state(core: Deps, staff_id: int, to: str, reason: str = "", phone: str = "") -> AgentStatus:
    """Ready / paused (with a reason) / logged out, from the agent's own status bar, through the dialler's
    agent use cases (login on the first press). Talking and wrap-up are entered by calls; an agent with an open
    call card cannot go ready before setting the disposition."""
    if to not in ("ready", "paused", "logged_out"):
        raise DeskError("bad_state", 422)
    if to == "paused" and not reason:
        raise DeskError("bad_reason", 422)

    def current(s: Session) -> tuple[AgentSession | None, bool, set[str]]:
        allowed = {c for c, _ in desk_codes(s, "pause", current_kind(s, staff_id), "zh-CN")} if to == "paused" else set()
        return _open_session(s, staff_id), _open_contact(s, staff_id) is not None, allowed

    sess, busy, allowed = run_in_transaction(core.sessions, current)
    if to == "paused" and reason not in allowed:  # the pause codes configured for this campaign kind
        raise DeskError("bad_reason", 422)
    if busy and to == "ready":
        raise DeskError("finish_call_first")
    if phone in PHONE_CHOICES:  # issue 18: the browser softphone or the agent's desk SIP phone, by its endpoint
        try:
            phone = run_in_transaction(core.sessions, lambda s: phones.dial_string(s, staff_id, phone))
        except phones.PhoneRefused:
            raise DeskError("no_such_phone", 422) from None
    if to == "logged_out" and sess is not None and (busy or sess.state in ("reserved", "talking")):
        raise DeskError("on_a_call" if sess.state in ("reserved", "talking") else "finish_call_first")
    try:
        if sess is None and to != "logged_out":
            try:  # the phone the agent sits at: what they said now, else their extension (dialer.agent_login)
                dialer.agent_login(core, staff_id, phone=phone)
            except dialer.DialerError as exc:
                if exc.code in ("no_phone", "bad_phone"):
                    raise DeskError(exc.code, 422) from None
                raise
            sess_state, sess_reason = "paused", "login"
        elif sess is None:
            sess_state, sess_reason = "logged_out", ""
        else:
            sess_state, sess_reason = sess.state, sess.reason
        if to == "ready" and sess_state != "ready":
            if not phone_ready(core, staff_id):
                raise DeskError("phone_not_registered")
            dialer.agent_ready(core, staff_id)
        elif to == "paused" and (sess_state, sess_reason) != ("paused", reason):
            dialer.agent_pause(core, staff_id, reason)
        elif to == "logged_out" and sess_state != "logged_out":
            dialer.agent_logout(core, staff_id)
    except RuleError:
        raise DeskError("bad_state_change") from None
    return run_in_transaction(core.sessions, lambda s: status(s, staff_id, core.clock()))


def phone_registered(s: Session, staff_id: int, now: datetime) -> bool | None:
    """Is the phone the agent sits at registered? None: not logged in, or not one of our PJSIP endpoints."""
    sess = _open_session(s, staff_id)
    return None if sess is None else phones.registered(s, sess.phone, now)


def phone_ready(core: Deps, staff_id: int) -> bool:
    """May the agent go ready as far as their phone goes? Not while the phone they sit at (one of our PJSIP
    endpoints) is not registered, by the page's latest report or Asterisk's ContactStatus (issue 18)."""
    return run_in_transaction(core.sessions, lambda s: phone_registered(s, staff_id, core.clock()) is not False)


# --- screen pop -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContactFacts:
    """What the use case that connects a call knows about it: an outbound attempt (dialler, callback,
    preview) or an IVR hand-off (``ivr_session_id``)."""

    client_id: int | None = None
    attempt_id: int | None = None
    lead_id: int | None = None
    campaign_id: int | None = None
    attempt_no: int = 1
    ivr_session_id: int | None = None


def open_contact(s: Session, staff_id: int, facts: ContactFacts, now: datetime,
                 scripts_dir: Path | None = None) -> int:
    """The agent's desk contact for a call that has just reached them, inside the caller's transaction
    (idempotent per attempt / IVR session): the contact is what grants the agent access to the client and
    what the screen (``GET /api/desk/status``) shows, whether or not a browser is connected. The agent is moved
    to ``talking`` if the connecting use case has not done so yet. Returns the contact's id."""
    # an open one only: an agent who left a conference (card closed) and later takes the call by transfer gets a
    # new card for their new part of it
    q = select(DeskContact).where(DeskContact.agent_id == staff_id, DeskContact.ended_at.is_(None))
    if facts.attempt_id is not None:
        q = q.where(DeskContact.attempt_id == facts.attempt_id)
    elif facts.ivr_session_id is not None:
        q = q.where(DeskContact.ivr_session_id == facts.ivr_session_id)
    else:
        raise DeskError("bad_event", 422)
    found = s.execute(q.limit(1)).scalar_one_or_none()
    if found is not None:
        return found.id
    script_id = ""
    if facts.campaign_id is not None:
        camp = s.get(Campaign, facts.campaign_id)
        script_id = camp.script_id if camp else ""
    catalogue = scripts(scripts_dir)
    contact = DeskContact(agent_id=staff_id, client_id=facts.client_id,
                          direction="outbound" if facts.attempt_id is not None else "inbound",
                          attempt_id=facts.attempt_id, lead_id=facts.lead_id, campaign_id=facts.campaign_id,
                          attempt_no=facts.attempt_no or 1, ivr_session_id=facts.ivr_session_id, started_at=now,
                          script_id=script_id if script_id in catalogue else "")
    if contact.script_id:
        contact.script_state = json.dumps(ScriptRun.start(catalogue[contact.script_id]).to_dict(),
                                          ensure_ascii=False)
    s.add(contact)
    sess = _open_session(s, staff_id)
    if sess is not None and sess.state != "talking":  # the dialler (or the IVR hand-off) connected it already
        if sess.state == "ready":
            _apply(s, sess, "reserve", now, "route", facts.attempt_id)
        if sess.state == "reserved":
            _apply(s, sess, "connect", now, "call", facts.attempt_id)
    s.flush()
    return contact.id


def contact_from_event(sessions: sessionmaker[Session], staff_id: int, event: dict[str, Any],
                       now: datetime, scripts_dir: Path | None = None) -> int:
    """``open_contact`` for a ``call_connected``-shaped payload, in its own transaction (legacy callers)."""
    facts = ContactFacts(client_id=_int(event.get("client_id")), attempt_id=_int(event.get("attempt_id")),
                         lead_id=_int(event.get("lead_id")), campaign_id=_int(event.get("campaign_id")),
                         attempt_no=_int(event.get("attempt_no")) or 1,
                         ivr_session_id=_int(event.get("ivr_session_id")))
    return run_in_transaction(sessions, lambda s: open_contact(s, staff_id, facts, now, scripts_dir))


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _contact_for(s: Session, principal: Principal, contact_id: int) -> DeskContact:
    contact = s.get(DeskContact, contact_id)
    if contact is None:
        raise DeskError("not_found", 404)
    if contact.agent_id != principal.staff_id:  # another agent's call: their supervisor (or admin) may look in
        client = s.get(Client, contact.client_id) if contact.client_id else None
        # a lead's call (no client record): only admin, as before
        allowed = may_read(staff_actor(principal), client) if client is not None else principal.role == "admin"
        if principal.role == "agent" or not allowed:
            raise DeskError("not_found", 404)
    return contact


def _month_change(s: Session, client_id: int, total_fen: int, now: datetime, tz: ZoneInfo) -> int | None:
    local = now.astimezone(tz).date()
    prev = (local.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    base = s.execute(select(ClientAssetSnapshot.assets_fen).where(ClientAssetSnapshot.client_id == client_id,
                                                                  ClientAssetSnapshot.month == prev)).scalar()
    return None if base is None else total_fen - int(base)


def company_info(settings: Any) -> CompanyInfo:
    """The brokerage as talk scripts name it, from the settings (company_name, company_name_en, company_hotline)."""
    return CompanyInfo(name=settings.company_name, name_en=settings.company_name_en, hotline=settings.company_hotline)


def card(sessions: sessionmaker[Session], principal: Principal, contact_id: int, now: datetime, tz: ZoneInfo,
         lang: str, company: CompanyInfo | None = None, scripts_dir: Path | None = None) -> dict[str, Any]:
    """Everything the call card shows (audit-logged): client summary, month change, last 5 contacts, the IVR
    summary, service group, campaign, attempt number, the script step rendered for this client, and the client's
    open orders and today's trades (read only)."""

    def work(s: Session) -> dict[str, Any]:
        contact = _contact_for(s, principal, contact_id)
        data: dict[str, Any] = {"contact_id": contact.id, "direction": contact.direction,
                                "attempt_no": contact.attempt_no, "started_at": contact.started_at.isoformat(),
                                "hung_up": contact.hung_up_at is not None, "ended": contact.ended_at is not None,
                                "note": contact.note, "disposition": contact.disposition, "client": None,
                                "campaign": None, "group": None, "ivr": None, "history": [], "script": None,
                                "month_change_fen": None, "lead": None, "orders": None, "appointments": None}
        held, muted = call_control_state(s, contact) if contact.hung_up_at is None else (False, False)
        data["on_hold"], data["muted"] = held, muted
        client = s.get(Client, contact.client_id) if contact.client_id else None
        if client is not None:
            summary = client_summary(s, client)
            s.add(AuditLog(at=now, staff_id=principal.staff_id, action="desk_open_client", client_id=client.id,
                           detail=f"contact {contact.id}"))
            data["client"] = summary
            total_fen = int(Decimal(str(summary["total_assets"])) * 100)
            data["total_assets_fen"] = total_fen
            data["month_change_fen"] = _month_change(s, client.id, total_fen, now, tz)
            group = s.get(ServiceGroup, client.service_group_id) if client.service_group_id else None
            data["group"] = group.name if group else None
            history = s.execute(select(DeskContact, Staff.display_name).join(Staff, Staff.id == DeskContact.agent_id)
                                .where(DeskContact.client_id == client.id, DeskContact.id != contact.id,
                                       DeskContact.ended_at.is_not(None))
                                .order_by(DeskContact.started_at.desc(), DeskContact.id.desc()).limit(5)).all()
            data["history"] = [{"contact_id": c.id, "at": c.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), "agent": name,
                                "direction": c.direction, "disposition": c.disposition, "note": c.note[:120]}
                               for c, name in history]
            data["orders"] = _orders_read_only(s, client.id, now, tz)
            data["appointments"] = _appointments_of(s, client.id, now, tz, lang)
        elif contact.lead_id is not None:
            lead = s.get(Lead, contact.lead_id)
            if lead is not None:
                data["lead"] = {"name": lead.name, "phone": mask_phone(lead.phone)}
        if contact.campaign_id is not None:
            camp = s.get(Campaign, contact.campaign_id)
            data["campaign"] = camp.name if camp else None
        data["ivr"] = _ivr_summary(s, contact, client, now)
        if contact.script_id:
            data["script"] = _script_view(s, contact, client, principal, lang, now, tz, company, scripts_dir)
        return data

    return run_in_transaction(sessions, work)


@lru_cache(maxsize=1)
def _instrument_names() -> dict[str, str]:
    from callcenter.adapters.trading_exchange import load_instruments

    return {x.instrument.code: x.instrument.name for x in load_instruments()}


def _orders_read_only(s: Session, client_id: int, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The client's open orders and today's trades, for reading only: agents never place orders for a client
    (全权委托 is forbidden); the card sends the client to the hotline's order menu instead."""
    from callcenter.store.models import Order, Trade

    names = _instrument_names()
    today = now.astimezone(tz).date()
    open_orders = s.execute(select(Order).where(Order.client_id == client_id,
                                                Order.status.in_(("queued", "pending", "open", "partial")))
                            .order_by(Order.id.desc()).limit(10)).scalars()
    trades = s.execute(select(Trade).join(Order, Order.id == Trade.order_id)
                       .where(Order.client_id == client_id, Trade.trade_date == today)
                       .order_by(Trade.exec_id.desc()).limit(10)).scalars()
    return {
        "open": [{"code": o.code, "name": names.get(o.code, o.code), "side": o.side, "quantity": o.quantity,
                  "price": _yuan(o.price_li // 10), "filled": o.filled_qty, "status": o.status} for o in open_orders],
        "trades": [{"at": t_.at.astimezone(tz).strftime("%H:%M"), "code": t_.code, "name": names.get(t_.code, t_.code),
                    "side": t_.side, "quantity": t_.quantity, "price": _yuan(t_.price_li // 10)} for t_ in trades],
    }


def _appointments_of(s: Session, client_id: int, now: datetime, tz: ZoneInfo, lang: str) -> list[dict[str, Any]]:
    """The client's upcoming booked appointments (预约服务), for the card."""
    from callcenter.services.appointments import slot_label
    from callcenter.store.models import Appointment

    rows = s.execute(select(Appointment).where(Appointment.client_id == client_id, Appointment.status == "booked",
                                               Appointment.slot_start >= now)
                     .order_by(Appointment.slot_start).limit(10)).scalars()
    return [{"id": a.id, "kind": a.kind, "slot": slot_label(a.slot_start, tz, lang), "channel": a.channel,
             "note": a.note[:120]} for a in rows]


def _ivr_summary(s: Session, contact: DeskContact, client: Client | None, now: datetime) -> dict[str, Any] | None:
    """What the client just did in the IVR: the hand-off session, or their IVR session of the last hour."""
    row = None
    if contact.ivr_session_id is not None:
        row = s.get(IvrSession, contact.ivr_session_id)
    elif client is not None:
        row = s.execute(select(IvrSession).where(IvrSession.client_id == client.id,
                                                 IvrSession.started_at >= now - timedelta(hours=1))
                        .order_by(IvrSession.started_at.desc()).limit(1)).scalar_one_or_none()
    if row is None:
        return None
    return {"summary": row.summary, "at": row.started_at.isoformat(), "handed_off": row.handed_off,
            "transfers": row.transfer_refs}


def script_context(s: Session, client: Client | None, agent: Staff | None, campaign: Campaign | None,
                   lead: Lead | None, now: datetime, tz: ZoneInfo, company: CompanyInfo | None = None) -> ScriptContext:
    from callcenter.services.clients import account_balances, holdings
    from callcenter.services.names import split_name, surname_latin

    agent_group = s.get(ServiceGroup, agent.service_group_id) if agent and agent.service_group_id else None
    if client is not None:
        accts = account_balances(s, client.id)
        hold = holdings(s, client.id)
        total = sum(a.total_assets_fen for a in accts)
        change = _month_change(s, client.id, total, now, tz) or 0
        group = s.get(ServiceGroup, client.service_group_id) if client.service_group_id else None
        last = s.execute(select(DeskContact.started_at).where(DeskContact.client_id == client.id,
                                                              DeskContact.ended_at.is_not(None))
                         .order_by(DeskContact.started_at.desc()).limit(1)).scalar()
        today = now.astimezone(tz).date()
        info = ClientInfo(
            name=client.name, surname=split_name(client.name)[0], honorific="女士" if client.gender == "F" else "先生",
            honorific_en="Ms" if client.gender == "F" else "Mr", surname_latin=surname_latin(client.name),
            branch=client.branch,
            service_group=group.name if group else "",
            account_tail=accts[0].account_masked[-4:] if accts else "",
            total_assets=_yuan(total), month_change=_yuan(change),
            holdings=[Holding(h.code, h.name, h.quantity, _yuan(h.market_value_fen), _yuan(h.cost_fen)) for h in hold[:10]],
            status=client.status, closed_date=client.closed_on, closed_reason=client.closed_reason or None,
            dormant_days=(today - client.last_trade_on).days if client.last_trade_on else None,
            last_trade_date=client.last_trade_on, last_contact_date=last.astimezone(tz).date() if last else None,
            birthday=client.birthday)
    else:
        name = lead.name if lead and lead.name else "客户"
        extra = lead.extra if lead and isinstance(lead.extra, dict) else {}
        met = extra.get("met_date")
        female = str(extra.get("gender", "")).upper() == "F"
        info = ClientInfo(name=name, surname=split_name(name)[0], honorific="女士" if female else "先生",
                          honorific_en="Ms" if female else "Mr", surname_latin=surname_latin(name), status="prospect",
                          branch=agent_group.branch if agent_group else "",
                          service_group=agent_group.name if agent_group else "",
                          met_at=extra.get("met_at"), met_date=date.fromisoformat(met) if isinstance(met, str) else None)
    agent_info = AgentInfo(name=agent.display_name if agent else "", surname=split_name(agent.display_name)[0] if agent else "",
                           group=agent_group.name if agent_group else "")
    kind = CAMPAIGN_KIND_TO_SCRIPT_KIND.get(campaign.kind, "other") if campaign else "other"
    camp = CampaignInfo(name=campaign.name if campaign else "", kind=kind if kind in KINDS else "other")
    return ScriptContext(client=info, agent=agent_info, company=company or ScriptContext.sample().company,
                         campaign=camp, event=_reminder_event(s, lead) if camp.kind == "reminder" else None)


#: a care event's kind (store) -> the talk script's event kind (callcenter.domain.scripts.context.EventInfo)
_SCRIPT_EVENT_KINDS = {"rights_issue": "rights_issue", "placing": "placing", "warrant_last_trading": "warrant_expiry",
                       "warrant_exercise": "warrant_expiry"}


def _reminder_event(s: Session, lead: Lead | None) -> EventInfo | None:
    """What a reminder call is about: the care event of the lead's call-back (care hand-over puts its id in the
    lead's ``extra``)."""
    from callcenter.store.models.care import CareCallback, CareEvent

    extra = lead.extra if lead and isinstance(lead.extra, dict) else {}
    cb = s.get(CareCallback, extra["care_callback_id"]) if isinstance(extra.get("care_callback_id"), int) else None
    ev = s.get(CareEvent, cb.event_id) if cb is not None and cb.event_id else None
    if ev is None:
        return None
    return EventInfo(kind=_SCRIPT_EVENT_KINDS.get(ev.kind, "other"), security_code=ev.code,
                     security_name=ev.security_name or ev.code, last_trading_date=ev.event_date,
                     expiry_date=ev.event_date if ev.kind.startswith("warrant") else None,
                     start_date=ev.start_date, end_date=ev.end_date,
                     price=Decimal(ev.price).quantize(Decimal("0.01")) if ev.price is not None else None,
                     ratio=ev.ratio or None)


def _yuan(fen: int) -> Decimal:
    return (Decimal(int(fen)) / 100).quantize(Decimal("0.01"))


def _script_view(s: Session, contact: DeskContact, client: Client | None, principal: Principal, lang: str,
                 now: datetime, tz: ZoneInfo, company: CompanyInfo | None = None,
                 scripts_dir: Path | None = None) -> dict[str, Any]:
    script = scripts(scripts_dir)[contact.script_id]
    run = ScriptRun.from_dict(json.loads(contact.script_state), script) if contact.script_state else ScriptRun.start(script)
    ctx = script_context(s, client, s.get(Staff, contact.agent_id),
                         s.get(Campaign, contact.campaign_id) if contact.campaign_id else None,
                         s.get(Lead, contact.lead_id) if contact.lead_id else None, now, tz, company)
    step = render_step(script, run.current, ctx, lang, html=True)
    return {"id": script.id, "title": script.title.get("en" if lang == "en" else "zh"), "step": step,
            "path": run.path(), "values": run.values, "finished": run.finished, "can_back": bool(run.history)}


def _own_open_contact(s: Session, principal: Principal, contact_id: int) -> DeskContact:
    return _own_open_contact_of(s, principal.staff_id, contact_id)


def open_contact_of(s: Session, staff_id: int, contact_id: int) -> DeskContact:
    """The agent's own open contact (``DeskError`` 404 when not theirs, 409 when closed)."""
    return _own_open_contact_of(s, staff_id, contact_id)


def _own_open_contact_of(s: Session, staff_id: int, contact_id: int) -> DeskContact:
    contact = s.get(DeskContact, contact_id)
    if contact is None or contact.agent_id != staff_id:
        raise DeskError("not_found", 404)
    if contact.ended_at is not None:
        raise DeskError("contact_closed")
    return contact


def script_move(sessions: sessionmaker[Session], principal: Principal, contact_id: int, action: str,
                answer: str = "", captured: dict[str, Any] | None = None, scripts_dir: Path | None = None) -> str:
    """``answer`` (the client's answer key, with captured values), ``back``, or ``finish`` at a terminal step.
    Returns the current step id. Raises ScriptRun's RunError / CaptureError on a refused move."""

    def work(s: Session) -> str:
        contact = _own_open_contact(s, principal, contact_id)
        if not contact.script_id:
            raise DeskError("no_script")
        script = scripts(scripts_dir)[contact.script_id]
        run = ScriptRun.from_dict(json.loads(contact.script_state), script) if contact.script_state else ScriptRun.start(script)
        if action == "answer":
            run.answer(answer, captured)
        elif action == "back":
            run.back()
        elif action == "finish":
            run.finish(captured)
        else:
            raise DeskError("bad_action", 422)
        contact.script_state = json.dumps(run.to_dict(), ensure_ascii=False)
        return run.current

    return run_in_transaction(sessions, work)


def save_note(sessions: sessionmaker[Session], principal: Principal, contact_id: int, note: str) -> None:
    def work(s: Session) -> None:
        _own_open_contact(s, principal, contact_id).note = note[:4000]

    run_in_transaction(sessions, work)


def hang_up_in(s: Session, staff_id: int, contact_id: int, now: datetime) -> tuple[DeskContact, bool]:
    """The agent ends the call, inside the caller's transaction; the card stays for the after-call work
    (wrap-up). Returns the contact and whether the call was live until now (False: hung up already). The
    dialler is told through a call command (``callcenter.services.call_commands.request_hangup``)."""
    contact = _own_open_contact_of(s, staff_id, contact_id)
    if contact.hung_up_at is not None:
        return contact, False
    contact.hung_up_at = now
    sess = _open_session(s, staff_id)
    if sess is not None and sess.state == "talking":
        _apply(s, sess, "hangup", now, "agent_hangup", contact.attempt_id)
    return contact, True


@dataclass(frozen=True)
class CallbackRequest:
    due_at: datetime
    agent_only: bool
    note: str = ""


def dispose_in(s: Session, staff_id: int, contact_id: int, disposition: str, now: datetime, *,
               note: str | None = None, callback: CallbackRequest | None = None, dnc: bool = False,
               dnc_reason: str = "client_request", tz: ZoneInfo | None = None) -> dict[str, Any]:
    """Close the contact with ``disposition`` (one of ``desk_codes`` for its campaign kind), record the note, optionally book a
    callback (agent-only or anyone) and a do-not-call entry for the number, inside the caller's transaction. A
    dialler call's attempt gets the disposition, notes and script run through the dialler's
    ``record_disposition``, the callback through ``book_callback`` and the DNC entry through ``add_dnc``; the
    agent stays in wrap-up (ready again through the status bar). ``result["live"]`` tells whether the call was
    still up (the caller queues its hang-up: ``call_commands.queue_hangup``)."""
    if callback is not None and callback.due_at <= now:
        raise DeskError("callback_in_past", 422)
    contact = _own_open_contact_of(s, staff_id, contact_id)
    # only the dispositions configured for this call's campaign kind (admin's desk codes, else the built-in ones)
    if disposition not in {c for c, _ in desk_codes(s, "disposition", campaign_kind(s, contact.campaign_id), "zh-CN")}:
        raise DeskError("bad_disposition", 422)
    if note is not None:
        contact.note = note[:4000]
    live = contact.hung_up_at is None
    contact.disposition = disposition
    contact.complaint = disposition == "complaint"
    contact.ended_at = now
    contact.hung_up_at = contact.hung_up_at or now
    sess = _open_session(s, staff_id)
    if sess is not None and sess.state == "talking":
        _apply(s, sess, "hangup", now, disposition[:32], contact.attempt_id)
    attempt = s.get(Attempt, contact.attempt_id) if contact.attempt_id else None
    lead = s.get(Lead, contact.lead_id) if contact.lead_id else None
    client = s.get(Client, contact.client_id) if contact.client_id else None
    phone = attempt.phone if attempt else lead.phone if lead else client.mobile if client else ""
    script_run = json.loads(contact.script_state) if contact.script_state else None
    if attempt is not None and attempt.agent_id != staff_id:
        # a call transferred away or a conference left: the attempt's disposition is for the agent who has the
        # call now; this agent's card closes, and their hang-up would not be theirs to send (call controls)
        attempt, live = None, False
    try:
        if attempt is not None:
            dialer.record_disposition_in(s, staff_id, attempt.id, disposition, now, notes=contact.note,
                                         script_run=script_run, then="wrap_up", tz=tz or DEFAULT_TZ)
        result: dict[str, Any] = {"contact_id": contact.id, "callback_id": None, "dnc_id": None, "live": live,
                                  "attempt_id": contact.attempt_id}
        wants_dnc = dnc or disposition == "do_not_call"
        if wants_dnc and phone:
            try:
                e164 = normalise_phone(phone)
            except InvalidPhone:
                e164 = phone
            result["dnc_id"] = dialer.add_dnc_in(s, e164, now, reason=dnc_reason, added_by=staff_id)
        if wants_dnc and lead is not None:
            lead.status = "dnc"
        if callback is not None and not wants_dnc:
            if lead is not None:
                result["callback_id"] = dialer.book_callback_in(
                    s, now, due_at=callback.due_at, lead_id=lead.id, agent_only=callback.agent_only,
                    owner_id=staff_id, note=callback.note[:500], created_by=staff_id)
            else:  # an inbound client with no lead: a callback for whoever (or this agent) is free then
                cb = Callback(campaign_id=contact.campaign_id, lead_id=None, client_id=contact.client_id,
                              phone=phone, due_at=callback.due_at, agent_only=callback.agent_only,
                              owner_id=staff_id, status="pending", note=callback.note[:500],
                              created_by=staff_id, created_at=now)
                s.add(cb)
                s.flush()
                result["callback_id"] = cb.id
    except dialer.DialerError:
        raise DeskError("dialer_refused") from None
    return result


def open_callbacks(s: Session, staff_id: int, now: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """Pending callbacks this agent should place: their own, and anyone-callbacks."""
    rows = s.execute(select(Callback).where(Callback.status == "pending",
                                            (Callback.owner_id == staff_id) | (Callback.agent_only.is_(False)))
                     .order_by(Callback.due_at).limit(limit)).scalars().all()
    out = []
    for c in rows:
        lead = s.get(Lead, c.lead_id) if c.lead_id else None
        client_id = c.client_id or (lead.client_id if lead is not None else None)
        client = s.get(Client, client_id) if client_id else None
        out.append({"id": c.id, "due_at": c.due_at, "agent_only": c.agent_only, "phone": mask_phone(c.phone),
                    "note": c.note, "overdue": c.due_at < now, "client_id": client_id,
                    "name": client.name if client is not None else (lead.name if lead is not None else "") or ""})
    return out


def dial_callback_now(s: Session, staff_id: int, callback_id: int, now: datetime,
                      is_trading_day: Any) -> dict[str, Any]:
    """"Call this callback now" from the desk's callbacks list, inside the caller's transaction: the callback
    (the agent's own, or an anyone-callback) becomes due now and the agent's own, the agent's session works its
    campaign, and the dialler places it to them at its next round once they are ready (``dialer.core``
    ``_place_callback``, which checks the DNC list and the calling window again). Refused with a ``DeskError``
    when it is not pending, not placeable by the dialler (no lead, campaign not running), on the do-not-call
    list, outside the campaign's calling hours, or the agent is on a call or not assigned to the campaign.
    Audit-logged. Returns ``{"callback_id", "campaign_id", "state"}`` (the agent's state before)."""
    from callcenter.domain.campaigns import in_window, on_dnc
    from callcenter.services.dialer.hopper import rules_of
    from callcenter.store.models.dialer import DncEntry

    cb = s.get(Callback, callback_id)
    if cb is None or (cb.agent_only and cb.owner_id != staff_id):
        raise DeskError("not_found", 404)
    if cb.status != "pending":
        raise DeskError("callback_not_pending")
    campaign = s.get(Campaign, cb.campaign_id) if cb.campaign_id is not None else None
    lead = s.get(Lead, cb.lead_id) if cb.lead_id is not None else None
    if campaign is None or lead is None:
        raise DeskError("callback_no_lead")
    if campaign.state != "running":
        raise DeskError("campaign_not_running")
    dnc = [(d.phone, d.campaign_id) for d in s.scalars(select(DncEntry).where(DncEntry.phone == cb.phone))]
    if lead.status == "dnc" or on_dnc(cb.phone, campaign.id, dnc):
        raise DeskError("on_dnc")
    if not in_window(now, lead.timezone, rules_of(campaign).window, is_trading_day):
        raise DeskError("outside_calling_hours")
    sess = _open_session(s, staff_id)
    if sess is None:
        raise DeskError("log_in_first")
    if sess.state in ("reserved", "talking") or _open_contact(s, staff_id) is not None:
        raise DeskError("finish_call_first")
    if staff_id not in dialer.campaign_agent_ids(s, campaign.id):
        raise DeskError("not_in_campaign")
    before = {"due_at": cb.due_at.isoformat(), "agent_only": cb.agent_only, "owner_id": cb.owner_id}
    cb.due_at, cb.agent_only, cb.owner_id = now, True, staff_id
    sess.campaign_id = campaign.id
    s.add(AuditLog(at=now, staff_id=staff_id, action="callback_dial_now", client_id=lead.client_id,
                   detail=json.dumps({"callback_id": cb.id, "campaign_id": campaign.id, "before": before},
                                     ensure_ascii=False, sort_keys=True)))
    return {"callback_id": cb.id, "campaign_id": campaign.id, "state": sess.state}


def manual_dial(s: Session, principal: Principal, now: datetime, is_trading_day: Any, *,
                client_id: int | None = None, phone: str = "") -> dict[str, Any]:
    """The agent dials a client (one they may read) or a number by hand, inside the caller's transaction: the
    number becomes a lead of the campaign the agent's session works (else the first running campaign they are
    assigned to) and a callback due now and theirs, which ``dial_callback_now``'s checks (do-not-call list,
    calling hours, the agent's state) and the dialler then place like any callback. Returns what
    ``dial_callback_now`` returns."""
    from callcenter.services.access import actor_for

    staff_id = principal.staff_id
    client = None
    if client_id is not None:
        client = s.get(Client, client_id)
        if client is None or not may_read(actor_for(s, principal), client):
            raise DeskError("not_found", 404)
        phone = client.mobile
    try:
        e164 = normalise_phone(phone)
    except InvalidPhone:
        raise DeskError("bad_number", 422) from None
    sess = _open_session(s, staff_id)
    if sess is None:
        raise DeskError("log_in_first")
    campaign = s.get(Campaign, sess.campaign_id) if sess.campaign_id is not None else None
    if campaign is None or campaign.state != "running":
        running = s.scalars(select(Campaign).where(Campaign.state == "running")
                            .order_by(Campaign.priority.desc(), Campaign.id)).all()
        campaign = next((c for c in running if staff_id in dialer.campaign_agent_ids(s, c.id)), None)
    if campaign is None:
        raise DeskError("no_campaign_to_dial")
    lead = s.execute(select(Lead).where(Lead.campaign_id == campaign.id, Lead.phone == e164)
                     .order_by(Lead.id).limit(1)).scalar_one_or_none()
    if lead is None:  # "done" until the dialler claims it for this call: the hopper never dials it by itself
        lead = Lead(campaign_id=campaign.id, client_id=client.id if client is not None else None,
                    name=client.name if client is not None else "", phone=e164, status="done", extra={"manual": True},
                    created_at=now, updated_at=now)
        s.add(lead)
        s.flush()
    elif lead.status == "dnc":
        raise DeskError("on_dnc")
    cb = Callback(campaign_id=campaign.id, lead_id=lead.id, client_id=lead.client_id, phone=e164, due_at=now,
                  agent_only=True, owner_id=staff_id, status="pending", note="", created_by=staff_id, created_at=now)
    s.add(cb)
    s.flush()
    return dial_callback_now(s, staff_id, cb.id, now, is_trading_day)


def booked_callbacks(s: Session, actor: Any, now: datetime, *, owner_id: int | None = None,
                     limit: int = 500) -> list[dict[str, Any]]:
    """The callbacks agents booked and the dialler has still to place, by due time, as a supervisor sees them
    (``domain.access.may_watch_agent``: those owned by agents of their groups, and the anyone-callbacks of their
    groups' clients; an admin all), optionally of one agent. Numbers masked."""
    from callcenter.domain.access import may_watch_agent

    rows = s.execute(select(Callback).where(Callback.status == "pending").order_by(Callback.due_at, Callback.id)
                     .limit(limit)).scalars().all()
    staff = {st.id: st for st in s.execute(select(Staff).where(Staff.id.in_(
        sorted({c.owner_id for c in rows if c.owner_id is not None})))).scalars()} if rows else {}
    campaigns = {cid: name for cid, name in s.execute(select(Campaign.id, Campaign.name))} if rows else {}
    out = []
    for c in rows:
        lead = s.get(Lead, c.lead_id) if c.lead_id else None
        client_id = c.client_id or (lead.client_id if lead is not None else None)
        client = s.get(Client, client_id) if client_id else None
        owner = staff.get(c.owner_id) if c.owner_id is not None else None
        group = owner.service_group_id if owner is not None and c.agent_only else (
            client.service_group_id if client is not None else None)
        if not may_watch_agent(actor, group):
            continue
        if owner_id is not None and c.owner_id != owner_id:
            continue
        out.append({"id": c.id, "due_at": c.due_at, "overdue": c.due_at < now, "agent_only": c.agent_only,
                    "owner_id": c.owner_id, "owner": owner.display_name if owner is not None else "",
                    "name": client.name if client is not None else (lead.name if lead is not None else ""),
                    "phone": mask_phone(c.phone), "campaign": campaigns.get(c.campaign_id, "") if c.campaign_id else "",
                    "note": c.note})
    return out


def my_day(s: Session, staff_id: int, now: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The agent's own figures since local midnight: calls taken, talk time, appointments, dispositions by code,
    callbacks still due today (what the desk's "今日" panel shows)."""
    midnight = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tz)
    contacts = s.execute(select(DeskContact.started_at, DeskContact.hung_up_at, DeskContact.ended_at,
                                DeskContact.disposition)
                         .where(DeskContact.agent_id == staff_id, DeskContact.started_at >= midnight)).all()
    talk = 0
    dispositions: dict[str, int] = {}
    for started, hung_up, ended, disposition in contacts:
        end = hung_up or ended
        if end is not None:
            talk += max(0, int((end - started).total_seconds()))
        if disposition:
            dispositions[disposition] = dispositions.get(disposition, 0) + 1
    due = s.execute(select(func.count(Callback.id)).where(
        Callback.status == "pending", Callback.owner_id == staff_id,
        Callback.due_at < midnight + timedelta(days=1))).scalar_one()
    return {"since": midnight, "calls": len(contacts), "talk_seconds": talk,
            "appointments": dispositions.get("appointment_booked", 0), "dispositions": dispositions,
            "callbacks_due": int(due)}


def preview_of(s: Session, staff_id: int) -> dict[str, Any] | None:
    """The lead the dialler shows this agent in preview mode (masked number), or None."""
    sess = _open_session(s, staff_id)
    if sess is None or sess.preview_lead_id is None or sess.state != "reserved":
        return None
    lead = s.get(Lead, sess.preview_lead_id)
    if lead is None:
        return None
    camp = s.get(Campaign, lead.campaign_id)
    client = s.get(Client, lead.client_id) if lead.client_id else None
    return {"lead_id": lead.id, "name": lead.name or (client.name if client else ""), "phone": mask_phone(lead.phone),
            "campaign": camp.name if camp else "", "attempt_no": lead.attempts + 1,
            "pending": sess.preview_action is not None}
