"""The agent screen: the page, the call card fragment, and the JSON actions its script posts (with the
session cookie and the X-CSRF-Token header). Agents only; every card opened is audit-logged."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from callcenter.domain.campaigns import RuleError
from callcenter.services.dialer import campaigns as dialer
from callcenter.domain.events import AgentStateChanged, CommandQueued, Disposed
from callcenter.services.scripts import CaptureError, RunError
from callcenter.services import call_commands, desk, phones
from callcenter.ports import channel_variables as V
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import read_only, run_in_transaction
from callcenter.store.models.desk import DeskContact
from callcenter.web.deps import require_roles
from callcenter.web.errors import ApiError
from callcenter.web.pages.common import lang_of, render, roles, tz_of
from callcenter.i18n import t
from callcenter.web.text import MultilineText, Text

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/desk", tags=["desk"])

# The desk: agents, and supervisors who sit at it to take escalated and transferred calls (their own calls only)
DESK_ROLES = ("agent", "supervisor")
AgentDep = Depends(require_roles(*DESK_ROLES))
ContactId = Path(ge=1, le=2**31 - 1)


def _publish_state(request: Request, staff_id: int, st: desk.AgentStatus) -> None:
    """One ``AgentStateChanged`` (the agent's screens and the wall board) after the change committed."""
    request.app.state.core.bus.emit(AgentStateChanged(staff_id=staff_id, state=st.state, reason=st.reason,
                                                      since=st.since.isoformat()))


def _raise(exc: Exception) -> None:
    if isinstance(exc, desk.DeskError):
        raise ApiError(exc.status, exc.code) from None
    if isinstance(exc, CaptureError):
        raise ApiError(422, "capture_invalid", message=", ".join(f"{k}: {v}" for k, v in sorted(exc.errors.items())))
    if isinstance(exc, RunError):
        raise ApiError(409, "script_" + exc.code, message=exc.code)
    raise exc


@pages.get("/agent", response_class=HTMLResponse)
async def agent_page(request: Request, principal: Principal = roles(*DESK_ROLES)) -> Response:
    core = request.app.state.core
    now = core.clock()

    lang = lang_of(request)

    def load(s: Any) -> tuple[desk.AgentStatus, list[dict[str, Any]], dict[str, Any] | None, list[tuple[str, str]],
                              dict[str, str], dict[str, str], dict[str, str]]:
        return (desk.status(s, principal.staff_id, now), desk.open_callbacks(s, principal.staff_id, now),
                desk.preview_of(s, principal.staff_id),
                desk.desk_codes(s, "pause", desk.current_kind(s, principal.staff_id), lang),
                desk.code_labels(s, "pause", lang), desk.code_labels(s, "disposition", lang),
                phones.phones_of(s, principal.staff_id))

    st, callbacks, preview_lead, pauses, pause_labels, disp_labels, my_phones = await anyio.to_thread.run_sync(
        run_in_transaction, core.sessions, load)
    return render(request, "agent.html", principal, status=st, callbacks=callbacks, now=now, tz=tz_of(request),
                  pauses=pauses, pause_labels=pause_labels, disp_labels=disp_labels, preview=preview_lead,
                  shortcuts=SHORTCUTS, wrap_up_limit_s=core.settings.wrap_up_limit_s, phones=my_phones,
                  softphone=bool(core.settings.softphone_ws_url) and "webrtc" in my_phones)


# The desk's keyboard shortcuts (agent.js binds the same keys; the help overlay lists them): key, action.
SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("r", "ready"), ("p", "pause"), ("h", "hang_up"), ("n", "notes"), ("d", "dispose"), ("1-9", "answer"),
    ("?", "help"), ("Esc", "close"),
)


@pages.get("/agent/contacts/{contact_id}/card", response_class=HTMLResponse)
async def card_fragment(request: Request, contact_id: int = ContactId, principal: Principal = roles(*DESK_ROLES)) -> Response:
    core = request.app.state.core
    lang = lang_of(request)
    try:
        data = await anyio.to_thread.run_sync(desk.card, core.sessions, principal, contact_id, core.clock(),
                                              tz_of(request), lang, desk.company_info(core.settings),
                                              core.settings.scripts_path)
    except desk.DeskError as exc:
        _raise(exc)
    if core.recordings is not None and data["history"]:  # issue 14: play the recorded calls this agent may hear
        from callcenter.services.access import staff_actor

        ids = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, lambda s: core.recordings.playable_ids(
            s, staff_actor(principal), [h["contact_id"] for h in data["history"]]))
        for h in data["history"]:
            h["recording_id"] = ids.get(h["contact_id"])
    from callcenter.domain.appointments import KINDS
    from callcenter.services.appointments import slot_label

    def codes(s: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:  # this call's campaign kind's dispositions
        contact = s.get(DeskContact, contact_id)
        kind = desk.campaign_kind(s, contact.campaign_id) if contact is not None else None
        return desk.desk_codes(s, "disposition", kind, lang), desk.code_labels(s, "disposition", lang)

    outcomes, disp_labels = await anyio.to_thread.run_sync(read_only, core.sessions, codes)

    slots: dict[str, list[tuple[str, str]]] = {}
    if data["client"] is not None and core.appointments is not None:  # 预约服务: the next free slots per kind
        def free(kind: str) -> list[datetime]:
            return list(core.appointments.free_slots(kind, limit=8))

        for kind in KINDS:
            slots[kind] = [(x.isoformat(), slot_label(x, core.appointments.tz, lang))
                           for x in await anyio.to_thread.run_sync(free, kind)]
    return render(request, "_card.html", principal, c=data, outcomes=outcomes, disp_labels=disp_labels,
                  appt_slots=slots)


class StateIn(BaseModel):
    state: Literal["ready", "paused", "logged_out"]
    reason: Text = Field(default="", max_length=32)
    phone: Text = Field(default="", max_length=64)  # at login: the extension or dial string the agent sits at


class StateOut(BaseModel):
    state: str
    reason: str
    since: datetime
    contact_id: int | None


@api.post("/state", response_model=StateOut, responses={401: {}, 403: {}, 409: {}, 422: {}})
async def set_state(body: StateIn, request: Request, principal: Principal = AgentDep) -> StateOut:
    core = request.app.state.core
    try:
        st = await anyio.to_thread.run_sync(lambda: desk.set_state(core, principal.staff_id, body.state, body.reason,
                                                                    body.phone))
    except desk.DeskError as exc:
        _raise(exc)
    _publish_state(request, principal.staff_id, st)
    return StateOut(state=st.state, reason=st.reason, since=st.since, contact_id=st.contact_id)


class OpenContactOut(BaseModel):
    id: int
    client_id: int | None
    campaign_id: int | None
    since: datetime = Field(description="When the call reached the agent (the contact's start)")
    direction: Literal["outbound", "inbound"]
    hung_up: bool = Field(description="The call is over; the card waits for the disposition")
    on_hold: bool = Field(False, description="The client is on hold (as the call core carried out the controls)")
    muted: bool = Field(False, description="The agent's microphone is muted (as the call core carried it out)")


class CodeOut(BaseModel):
    code: str
    label: str = Field(description="In the viewer's language")


class StatusOut(BaseModel):
    state: str = Field(description="ready / paused / reserved / talking / wrap_up / logged_out")
    reason: str = Field(description="The pause code (break, meal, ... or one an administrator configured), else empty")
    reason_label: str = Field("", description="The pause code's label in the viewer's language")
    since: datetime
    contact: OpenContactOut | None = Field(description="The agent's open desk contact (a call or its wrap-up)")
    wrap_up_limit_s: float = Field(0.0, description="The dialler ends a wrap-up by itself after this long "
                                                    "(the setting wrap_up_limit_s); 0: only the agent ends it")
    pause_codes: list[CodeOut] = Field(default_factory=list,
                                       description="The pause codes the agent may choose now (their call's or "
                                                   "campaign's kind; the administrators' desk codes)")
    phone_registered: bool | None = Field(None, description="Is the phone the agent sits at registered (one of "
                                          "their PJSIP endpoints: the softphone page's report or Asterisk's)? "
                                          "None: not logged in, or a dial string the engine cannot check")


@api.get("/status", response_model=StatusOut, responses={401: {}, 403: {}})
async def get_status(request: Request, principal: Principal = AgentDep) -> StatusOut:
    """The agent's own state and open desk contact, read from the database: what the screen shows on load and
    after every reconnection of its live stream (a call routed while no browser was open is here too)."""
    core = request.app.state.core
    return await anyio.to_thread.run_sync(read_only, core.sessions, lambda s: status_out(
        s, principal.staff_id, core.clock(), core.settings.wrap_up_limit_s, lang_of(request)))


class TodayOut(BaseModel):
    since: datetime
    calls: int
    talk_seconds: int
    appointments: int
    dispositions: dict[str, int]
    callbacks_due: int


@api.get("/today", response_model=TodayOut, responses={401: {}, 403: {}})
async def get_today(request: Request, principal: Principal = AgentDep) -> TodayOut:
    """The agent's own figures today (calls, talk time, appointments, dispositions, callbacks due)."""
    core = request.app.state.core
    data = await anyio.to_thread.run_sync(read_only, core.sessions, lambda s: desk.my_day(
        s, principal.staff_id, core.clock(), tz_of(request)))
    return TodayOut(**data)


class CallbackOut(BaseModel):
    id: int
    due_at: datetime
    agent_only: bool
    phone: str
    note: str
    overdue: bool
    client_id: int | None = Field(None, description="The client to call back (for the desk to open), if known")
    name: str = Field("", description="The client's or the lead's name")


@api.get("/callbacks", response_model=list[CallbackOut], responses={401: {}, 403: {}})
async def get_callbacks(request: Request, principal: Principal = AgentDep) -> list[CallbackOut]:
    """The callbacks this agent should place, by due time (the desk refreshes its list from here)."""
    core = request.app.state.core
    rows = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, lambda s: desk.open_callbacks(
        s, principal.staff_id, core.clock(), limit=50))
    return [CallbackOut(**r) for r in rows]


class DialNowOut(BaseModel):
    callback_id: int
    campaign_id: int
    state: str = Field(description="The agent's state now (ready: the dialler places the callback to them)")


@api.post("/callbacks/{callback_id}/dial", response_model=DialNowOut,
          responses={401: {}, 403: {}, 404: {}, 409: {}})
async def dial_callback_now(request: Request, callback_id: int = Path(ge=1, le=2**31 - 1),
                            principal: Principal = AgentDep) -> DialNowOut:
    """Call this callback now: it becomes due now and the agent's own, the agent goes ready for its campaign,
    and the dialler places it to them (the do-not-call list and the calling hours checked here and again by the
    dialler); audit-logged."""
    core = request.app.state.core
    now = core.clock()

    def work(s: Any) -> dict[str, Any]:
        return desk.dial_callback_now(s, principal.staff_id, callback_id, now, core.calendar.is_trading_day)

    return await _dial_then_ready(request, principal, work)


async def _dial_then_ready(request: Request, principal: Principal, work: Any) -> DialNowOut:
    """A callback made due now for this agent (``work(s)``, one transaction), then the agent ready for it."""
    core = request.app.state.core
    try:
        result = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)
    except desk.DeskError as exc:
        _raise(exc)
    if result["state"] != "ready":
        try:
            await anyio.to_thread.run_sync(dialer.agent_ready, core, principal.staff_id)
        except RuleError:
            raise ApiError(409, "bad_state_change") from None
    st = await anyio.to_thread.run_sync(run_in_transaction, core.sessions,
                                        lambda s: desk.status(s, principal.staff_id, core.clock()))
    _publish_state(request, principal.staff_id, st)
    return DialNowOut(callback_id=result["callback_id"], campaign_id=result["campaign_id"], state=st.state)


class ManualDialIn(BaseModel):
    client_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="A client the agent may read")
    phone: Text = Field(default="", max_length=32, description="Else a number (mobile, or landline with area code)")


@api.post("/dial", response_model=DialNowOut, responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def manual_dial(body: ManualDialIn, request: Request, principal: Principal = AgentDep) -> DialNowOut:
    """Dial a client or a number by hand: through the campaign the agent works, checked against the do-not-call
    list and its calling hours; the dialler places it to the agent (who goes ready for it); audit-logged."""
    core = request.app.state.core
    now = core.clock()
    if body.client_id is None and not body.phone:
        raise ApiError(422, "bad_number")

    def work(s: Any) -> dict[str, Any]:
        return desk.manual_dial(s, principal, now, core.calendar.is_trading_day, client_id=body.client_id,
                                phone=body.phone)

    return await _dial_then_ready(request, principal, work)


def status_out(s: Any, staff_id: int, now: datetime, wrap_up_limit_s: float = 0.0, lang: str = "zh-CN") -> StatusOut:
    st = desk.status(s, staff_id, now)
    brief = desk.open_contact_brief(s, staff_id)
    pauses = desk.desk_codes(s, "pause", desk.current_kind(s, staff_id), lang)
    label = desk.code_labels(s, "pause", lang).get(st.reason, "") if st.reason else ""
    return StatusOut(state=st.state, reason=st.reason, reason_label=label, since=st.since,
                     contact=OpenContactOut(**brief) if brief is not None else None, wrap_up_limit_s=wrap_up_limit_s,
                     pause_codes=[CodeOut(code=c, label=lbl) for c, lbl in pauses],
                     phone_registered=desk.phone_registered(s, staff_id, now))


# --- the agent's phone (issue 18) ---------------------------------------------------------------------------

class SoftphoneOut(BaseModel):
    ws_url: str = Field(description="Asterisk's SIP-over-WebSocket address (WSS)")
    uri: str = Field(description="The softphone's SIP address (sip:<endpoint>@<domain>)")
    user: str
    realm: str
    ha1: str = Field(description="The digest HA1 MD5(user:realm:password): what JsSIP authenticates with")
    endpoint: str
    report_every_s: float = Field(description="How often the page reports its registration")


class PhoneOut(BaseModel):
    phones: dict[str, str] = Field(description="The kinds of phone the agent may sit at (webrtc, sip) -> endpoint")
    softphone: SoftphoneOut | None = Field(description="The browser softphone's registration, if the agent has one")
    registered: bool | None = Field(description="As in GET /api/desk/status: phone_registered")


@api.get("/phone", response_model=PhoneOut, responses={401: {}, 403: {}})
async def get_phone(request: Request, response: Response, principal: Principal = AgentDep) -> PhoneOut:
    """The agent's phones, and what the browser softphone registers with (no password: the digest's HA1)."""
    core = request.app.state.core
    response.headers["Cache-Control"] = "no-store"
    soft = await anyio.to_thread.run_sync(phones.softphone_config, core, principal.staff_id)

    def load(s: Any) -> tuple[dict[str, str], bool | None]:
        return phones.phones_of(s, principal.staff_id), desk.phone_registered(s, principal.staff_id, core.clock())

    mine, registered = await anyio.to_thread.run_sync(read_only, core.sessions, load)
    return PhoneOut(phones=mine, softphone=SoftphoneOut(**soft) if soft else None, registered=registered)


class RegistrationIn(BaseModel):
    kind: Literal["webrtc", "sip"] = "webrtc"
    registered: bool


class RegistrationOut(BaseModel):
    registered: bool


@api.post("/phone/registration", response_model=RegistrationOut, responses={401: {}, 403: {}, 422: {}})
async def report_registration(body: RegistrationIn, request: Request, principal: Principal = AgentDep) -> RegistrationOut:
    """The softphone page's word on its registration: sent on every change and every ``report_every_s`` while it
    holds; the desk counts the phone as registered for ``phone_report_stale_s`` after the last "yes"."""
    core = request.app.state.core
    try:
        done = await anyio.to_thread.run_sync(phones.report_registration, core, principal.staff_id, body.kind,
                                              body.registered)
    except phones.PhoneRefused as exc:
        raise ApiError(422, exc.code) from None
    return RegistrationOut(registered=done)


class OkOut(BaseModel):
    ok: bool = True
    step: str | None = None
    callback_id: int | None = None
    dnc_id: int | None = None


class PreviewIn(BaseModel):
    action: Literal["dial", "skip"]


@api.post("/preview", response_model=OkOut, responses={401: {}, 403: {}, 409: {}, 422: {}})
async def preview(body: PreviewIn, request: Request, principal: Principal = AgentDep) -> OkOut:
    """Preview mode: dial or skip the lead the dialler shows this agent (it carries the choice out)."""
    core = request.app.state.core
    try:
        await anyio.to_thread.run_sync(lambda: dialer.preview_choice(core, principal.staff_id, body.action))
    except dialer.DialerError as exc:
        raise ApiError(409, "no_preview", message=str(exc)) from None
    return OkOut()


class ScriptIn(BaseModel):
    action: Literal["answer", "back", "finish"]
    answer: Text = Field(default="", max_length=64)
    captured: dict[Text, MultilineText | int | bool | None] = Field(default_factory=dict, max_length=50)


@api.post("/contacts/{contact_id}/script", response_model=OkOut, responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def script_move(body: ScriptIn, request: Request, contact_id: int = ContactId,
                      principal: Principal = AgentDep) -> OkOut:
    core = request.app.state.core
    try:
        step = await anyio.to_thread.run_sync(lambda: desk.script_move(core.sessions, principal, contact_id, body.action,
                                                                       body.answer, dict(body.captured),
                                                                       core.settings.scripts_path))
    except (desk.DeskError, RunError, CaptureError) as exc:
        _raise(exc)
    return OkOut(step=step)


class NoteIn(BaseModel):
    note: MultilineText = Field(max_length=4000)


@api.post("/contacts/{contact_id}/note", response_model=OkOut, responses={401: {}, 403: {}, 404: {}, 409: {}})
async def save_note(body: NoteIn, request: Request, contact_id: int = ContactId, principal: Principal = AgentDep) -> OkOut:
    core = request.app.state.core
    try:
        await anyio.to_thread.run_sync(lambda: desk.save_note(core.sessions, principal, contact_id, body.note))
    except desk.DeskError as exc:
        _raise(exc)
    return OkOut()


async def _queue_from_desk(request: Request, principal: Principal, request_command: Any,
                           *, required: bool, state_changes: bool = True) -> None:
    """One desk action that leaves the call (hang-up, hand to the IVR): the desk's bookkeeping and the command for
    the dialler that owns the call in one transaction (``request_command(s, now)``: the row, or None when the
    call is over); the dialler is nudged (``CommandQueued``) and otherwise finds it at its next poll. With
    ``required`` a call already over is a 409; with ``state_changes`` the agent's state is published after it
    (not for the recording's pause / resume, which leave the agent as they were)."""
    core = request.app.state.core
    now = core.clock()

    def work(s: Any) -> tuple[tuple[str, int] | None, desk.AgentStatus | None]:
        cmd = request_command(s, now)
        st = desk.status(s, principal.staff_id, now) if state_changes else None  # read only when it is published
        return (cmd.dialer_id, cmd.id) if cmd is not None else None, st

    try:
        queued, st = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)
    except desk.DeskError as exc:
        _raise(exc)
    if queued is None and required:
        raise ApiError(409, "call_not_live")
    if queued is not None:
        core.bus.emit(CommandQueued(dialer_id=queued[0], command_id=queued[1]))
    if st is not None:
        _publish_state(request, principal.staff_id, st)


@api.post("/contacts/{contact_id}/hangup", response_model=OkOut, responses={401: {}, 403: {}, 404: {}, 409: {}})
async def hang_up(request: Request, contact_id: int = ContactId, principal: Principal = AgentDep) -> OkOut:
    """End the call: the desk records the hang-up and a hang-up command for the dialler that owns the call."""
    await _queue_from_desk(request, principal, lambda s, now: call_commands.request_hangup(s, principal, contact_id, now),
                           required=False)
    return OkOut()


@api.post("/contacts/{contact_id}/ivr-orders", response_model=OkOut, responses={401: {}, 403: {}, 404: {}, 409: {}})
async def hand_to_ivr_orders(request: Request, contact_id: int = ContactId, principal: Principal = AgentDep) -> OkOut:
    """Hand the client to the hotline's order menu (agents never place orders for a client): the call control
    ``transfer_ivr`` to the flow's ``orders`` entry, decided by the call core of the dialler that owns the call
    (the agent goes to wrap-up, the caller's channel goes to the hotline, which starts at the order menu after
    the login)."""
    await _queue_from_desk(request, principal, lambda s, now: call_commands.request_control(
        s, principal, contact_id, "transfer_ivr", now, {"menu": V.IVR_ENTRY_ORDERS}), required=True,
        state_changes=False)
    return OkOut()


class AppointmentIn(BaseModel):
    kind: Literal["group_callback", "analyst_callback", "branch_visit"]
    slot_start: datetime = Field(description="The slot's start (one of the card's offered slots)")
    note: MultilineText = Field(default="", max_length=2000)


class AppointmentOut(BaseModel):
    id: int
    kind: str
    slot_start: datetime
    status: str


@api.post("/contacts/{contact_id}/appointments", response_model=AppointmentOut,
          responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def book_appointment(body: AppointmentIn, request: Request, contact_id: int = ContactId,
                           principal: Principal = AgentDep) -> AppointmentOut:
    """预约服务 for the client of this call (the slot rules of ``domain/appointments.py``); the same slot and kind
    again from this contact answers the first booking."""
    from callcenter.domain.appointments import AppointmentError
    from callcenter.services.access import actor_for
    from callcenter.services.appointments import BookAppointment

    core = request.app.state.core

    def who(s: Any) -> tuple[Any, int | None]:
        contact = s.get(DeskContact, contact_id)
        if contact is None or contact.agent_id != principal.staff_id:
            return None, None
        return actor_for(s, principal), contact.client_id

    actor, client_id = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, who)
    if actor is None or client_id is None:
        raise ApiError(404, "not_found")
    at = body.slot_start if body.slot_start.tzinfo else body.slot_start.replace(tzinfo=tz_of(request))
    cmd = BookAppointment(f"card:{contact_id}:{body.kind}:{at.isoformat()}", client_id, body.kind, at, "agent", actor,
                          note=body.note)
    try:
        view = await anyio.to_thread.run_sync(core.appointments.book, cmd)
    except AppointmentError as exc:
        status = 404 if exc.rule.value in ("unknown_client", "unknown_appointment") else 409
        raise ApiError(status, exc.rule.value, message=t(f"appointments.{exc.rule.value}", lang_of(request))) from None
    return AppointmentOut(id=view.id, kind=view.kind, slot_start=view.slot_start, status=view.status)


class PriceAlertIn(BaseModel):
    code: Text = Field(pattern=r"^[0-9]{6}$")
    direction: Literal["above", "below"]
    price: Text = Field(pattern=r"^[0-9]{1,6}(\.[0-9]{1,3})?$", description="The threshold in yuan, e.g. 10.50")


class PriceAlertOut(BaseModel):
    id: int


@api.post("/contacts/{contact_id}/price-alerts", response_model=PriceAlertOut,
          responses={401: {}, 403: {}, 404: {}, 422: {}})
async def set_price_alert(body: PriceAlertIn, request: Request, contact_id: int = ContactId,
                          principal: Principal = AgentDep) -> PriceAlertOut:
    """行情报警 for the client of this call, at the client's request (an alert, never an order): the same rule as
    the hotline's menu 6-8 (``services/care/trading_alerts.set_price_alert``, source ``agent``)."""
    from decimal import Decimal

    from callcenter.services.care.trading_alerts import AlertRefused
    from callcenter.services.care.trading_alerts import set_price_alert as arm

    core = request.app.state.core

    def client_of(s: Any) -> int | None:
        contact = s.get(DeskContact, contact_id)
        return contact.client_id if contact is not None and contact.agent_id == principal.staff_id else None

    client_id = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, client_of)
    if client_id is None:
        raise ApiError(404, "not_found")
    try:
        alert_id = await anyio.to_thread.run_sync(lambda: arm(core.sessions, core.orders, client_id, body.code,
                                                              body.direction, int(Decimal(body.price) * 1000),
                                                              source="agent", now=core.clock()))
    except AlertRefused as exc:
        raise ApiError(422, exc.code, message=t("ivr.alert_refused", lang_of(request))) from None
    return PriceAlertOut(id=alert_id)


class RecordingIn(BaseModel):
    action: Literal["pause", "resume", "secure"]


@api.post("/contacts/{contact_id}/recording", response_model=OkOut, responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def recording(body: RecordingIn, request: Request, contact_id: int = ContactId,
                    principal: Principal = AgentDep) -> OkOut:
    """The call's recording: pause / resume (the agent's button) or ``secure`` (the client is about to key in a
    PIN or password: paused first, marked ``pin``). A command for the dialler that owns the call, as hang-up is."""
    await _queue_from_desk(request, principal,
                           lambda s, now: call_commands.request_recording(s, principal, contact_id, body.action, now),
                           required=True, state_changes=False)
    return OkOut()


class DisposeIn(BaseModel):
    disposition: Text = Field(max_length=32)
    note: MultilineText | None = Field(default=None, max_length=4000)
    callback_at: datetime | None = None
    callback_agent_only: bool = True
    dnc: bool = False


@api.post("/contacts/{contact_id}/dispose", response_model=OkOut, responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def dispose(body: DisposeIn, request: Request, contact_id: int = ContactId, principal: Principal = AgentDep) -> OkOut:
    core = request.app.state.core
    callback = None
    if body.callback_at is not None:
        at = body.callback_at if body.callback_at.tzinfo else body.callback_at.replace(tzinfo=tz_of(request))
        callback = desk.CallbackRequest(at, body.callback_agent_only)
    now = core.clock()

    def work(s: Any) -> tuple[dict[str, Any], tuple[str, int] | None, desk.AgentStatus]:
        result = desk.dispose_in(s, principal.staff_id, contact_id, body.disposition, now, note=body.note,
                                 callback=callback, dnc=body.dnc, tz=tz_of(request))
        cmd = None
        if result["live"]:  # disposed without hanging up first: the dialler ends the call
            contact = s.get(DeskContact, contact_id)
            cmd = call_commands.queue_hangup(s, contact, principal.staff_id, now)
        return result, (cmd.dialer_id, cmd.id) if cmd is not None else None, desk.status(s, principal.staff_id, now)

    try:
        result, queued, st = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)
    except desk.DeskError as exc:
        _raise(exc)
    if queued is not None:
        core.bus.emit(CommandQueued(dialer_id=queued[0], command_id=queued[1]))
    core.bus.emit(Disposed(staff_id=principal.staff_id, contact_id=contact_id, disposition=body.disposition))
    _publish_state(request, principal.staff_id, st)
    return OkOut(callback_id=result["callback_id"], dnc_id=result["dnc_id"])
