"""Client-care screens: the supervisor's complaints (overdue first, detail with status history, move / assign /
note), regulatory call-back (回访) coverage with the scheduled call-backs, and the reminder plan (dry run); and
the agent-side endpoints the agent screen calls for the client on screen — open a complaint, read and switch the
client's 财经秘书 topics and channel opt-outs.

Supervisors see the complaints and call-backs of the groups they supervise (and the complaints they own);
admin sees everything; agents get 403 on the supervisor pages. The agent endpoints answer 404 for a client the
caller may not see. Cookie posts carry the CSRF token (form field ``csrf`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.services.care.complaints import CATEGORIES, OPEN_STATUSES, TRANSITIONS, ComplaintError, ComplaintService
from callcenter.services.care.regulatory import ANNUAL_SHARE_PERCENT, coverage
from callcenter.services.care.regulator import OUTCOMES, callback_record, complaint_summary, done_callbacks, summary_csv
from callcenter.domain.reminders import TOPICS
from callcenter.services.care.subscriptions import SubscriptionService, UnknownTopic
from callcenter.i18n import t
from callcenter.services.access import ClientNotVisible, actor_for, may_read, staff_actor, visible_client
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, Client, Staff
from callcenter.store.models.care import COMPLAINT_STATUSES, CareCallback, Complaint, ComplaintHistory
from callcenter.store.models.desk import DeskContact
from callcenter.web.deps import require_roles
from callcenter.web.errors import ApiError
from callcenter.web.pages.common import lang_of, render, roles, tz_of
from callcenter.web.text import MultilineText, Text

SUP = ("supervisor", "admin")
STAFF = ("agent", "supervisor", "admin")
ComplaintId = Path(ge=1, le=2**31 - 1)
ClientId = Path(ge=1, le=2**31 - 1)  # one Path object per parameter name: FastAPI binds the name to it

pages = APIRouter(prefix="/supervisor/care", include_in_schema=False)
agent_pages = APIRouter(prefix="/agent/care", include_in_schema=False)
api = APIRouter(prefix="/api/care", tags=["care"])
StaffDep = Depends(require_roles(*STAFF))


def _core(request: Request) -> Any:
    return request.app.state.core


async def _db(request: Request, fn: Any) -> Any:
    return await anyio.to_thread.run_sync(run_in_transaction, _core(request).sessions, fn)


def _helpers(lang: str) -> dict[str, Any]:
    return {"w": lambda key, **p: t(f"care_web.{key}", lang, **p), "ct": lambda key, **p: t(f"care.{key}", lang, **p)}


def _page(request: Request, name: str, principal: Principal, **ctx: Any) -> HTMLResponse:
    return render(request, name, principal, **_helpers(lang_of(request)), tz=tz_of(request), **ctx)


def _complaint_error(exc: ComplaintError) -> ApiError:
    return ApiError(422, "complaint_invalid", message=str(exc))


def _visible_complaint(s: Session, principal: Principal, complaint_id: int) -> tuple[Complaint, Client]:
    row = s.execute(select(Complaint, Client).join(Client, Client.id == Complaint.client_id)
                    .where(Complaint.id == complaint_id)).one_or_none()
    if row is None or not (may_read(staff_actor(principal), row[1]) or row[0].owner_id == principal.staff_id):
        raise ApiError(404, "not_found")
    return row[0], row[1]


def _staff_names(s: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(s.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(wanted))).all())


# --- supervisor: complaints ------------------------------------------------------------------------------

def _complaint_rows(s: Session, principal: Principal, now: datetime, status: str) -> list[dict[str, Any]]:
    stmt = select(Complaint, Client).join(Client, Client.id == Complaint.client_id)
    if status:
        stmt = stmt.where(Complaint.status == status)
    rows: list[dict[str, Any]] = []
    actor = staff_actor(principal)
    for c, cl in s.execute(stmt.order_by(Complaint.id.desc()).limit(500)):
        if may_read(actor, cl) or c.owner_id == principal.staff_id:
            rows.append({"c": c, "client": cl, "overdue": c.status in OPEN_STATUSES and c.due_at < now})
    names = _staff_names(s, {r["c"].owner_id for r in rows})
    for r in rows:
        r["owner"] = names.get(r["c"].owner_id, "")
    return rows


@pages.get("", response_class=HTMLResponse)
async def care_home(principal: Principal = roles(*SUP)) -> Response:
    return RedirectResponse("/supervisor/care/complaints", status_code=303)


@pages.get("/complaints", response_class=HTMLResponse)
async def complaints_page(*, request: Request, principal: Principal = roles(*SUP),
                          status: Annotated[Text, Query(max_length=16)] = "") -> Response:
    if status and status not in COMPLAINT_STATUSES:
        raise ApiError(422, "bad_status")
    now = _core(request).clock()
    rows = await _db(request, lambda s: _complaint_rows(s, principal, now, status))
    overdue = sorted((r for r in rows if r["overdue"]), key=lambda r: r["c"].due_at)
    return _page(request, "care/complaints.html", principal, rows=rows, overdue=overdue, status=status,
                 statuses=COMPLAINT_STATUSES, now=now)


@pages.get("/complaints/{complaint_id}", response_class=HTMLResponse)
async def complaint_page(request: Request, complaint_id: int = ComplaintId, principal: Principal = roles(*SUP)) -> Response:
    now = _core(request).clock()

    def load(s: Session) -> dict[str, Any]:
        c, client = _visible_complaint(s, principal, complaint_id)
        history = list(s.scalars(select(ComplaintHistory).where(ComplaintHistory.complaint_id == c.id)
                                 .order_by(ComplaintHistory.id)))
        callback = s.scalars(select(CareCallback).where(CareCallback.complaint_id == c.id)
                             .order_by(CareCallback.id.desc()).limit(1)).one_or_none()
        owners = list(s.execute(select(Staff.id, Staff.display_name, Staff.role).where(
            Staff.active.is_(True), (Staff.role.in_(SUP)) | (Staff.service_group_id == client.service_group_id))
            .order_by(Staff.role.desc(), Staff.id)))
        names = _staff_names(s, {c.owner_id} | {h.staff_id for h in history}
                             | {int(h.note) for h in history if h.action == "assigned" and h.note.isdigit()})
        return {"c": c, "client": client, "history": history, "callback": callback, "owners": owners,
                "names": names, "overdue": c.status in OPEN_STATUSES and c.due_at < now,
                "next_statuses": sorted(TRANSITIONS.get(c.status, set()), key=COMPLAINT_STATUSES.index)}

    data = await _db(request, load)
    return _page(request, "care/complaint.html", principal, **data)


async def _check_visible(request: Request, principal: Principal, complaint_id: int) -> str:
    """404 unless the principal may see the complaint; its current status."""
    return await _db(request, lambda s: _visible_complaint(s, principal, complaint_id)[0].status)


def _back(complaint_id: int) -> RedirectResponse:
    return RedirectResponse(f"/supervisor/care/complaints/{complaint_id}", status_code=303)


@pages.post("/complaints/{complaint_id}/move")
async def move_complaint(*, request: Request, complaint_id: int = ComplaintId, principal: Principal = roles(*SUP),
                         to_status: Annotated[Text, Form(max_length=16)], note: Annotated[MultilineText, Form(max_length=2000)] = "",
                         resolution: Annotated[MultilineText, Form(max_length=2000)] = "") -> Response:
    current = await _check_visible(request, principal, complaint_id)
    if to_status not in TRANSITIONS.get(current, set()):
        raise ApiError(409, "bad_transition", message=t("care.errors.bad_transition", lang_of(request),
                                                        from_status=current, to_status=to_status))
    svc = ComplaintService.for_app(_core(request))
    try:
        await anyio.to_thread.run_sync(lambda: svc.move(complaint_id, to_status, staff_id=principal.staff_id,
                                                        note=note.strip(), resolution=resolution or None))
    except ComplaintError as exc:
        raise _complaint_error(exc) from None
    return _back(complaint_id)


@pages.post("/complaints/{complaint_id}/assign")
async def assign_complaint(request: Request, complaint_id: int = ComplaintId, principal: Principal = roles(*SUP),
                           owner_id: int = Form(ge=1, le=2**31 - 1)) -> Response:
    await _check_visible(request, principal, complaint_id)
    owner = await _db(request, lambda s: s.get(Staff, owner_id))
    if owner is None or not owner.active:
        raise ApiError(422, "unknown_owner")
    svc = ComplaintService.for_app(_core(request))
    await anyio.to_thread.run_sync(lambda: svc.assign(complaint_id, owner_id, staff_id=principal.staff_id))
    return _back(complaint_id)


@pages.post("/complaints/{complaint_id}/note")
async def note_complaint(*, request: Request, complaint_id: int = ComplaintId, principal: Principal = roles(*SUP),
                         text: Annotated[MultilineText, Form(min_length=1, max_length=2000)]) -> Response:
    await _check_visible(request, principal, complaint_id)
    if not text.strip():
        raise ApiError(422, "empty_note")
    svc = ComplaintService.for_app(_core(request))
    await anyio.to_thread.run_sync(lambda: svc.note(complaint_id, text.strip(), staff_id=principal.staff_id))
    return _back(complaint_id)


# --- supervisor: call-backs (回访) ----------------------------------------------------------------------

def _today(request: Request) -> date:
    return _core(request).clock().astimezone(tz_of(request)).date()


@pages.get("/callbacks", response_class=HTMLResponse)
async def callbacks_page(request: Request, principal: Principal = roles(*SUP),
                         year: int | None = Query(None, ge=2000, le=2100)) -> Response:
    core = _core(request)
    today = _today(request)
    year = year or today.year
    as_of = min(today, date(year, 12, 31))
    cov = await anyio.to_thread.run_sync(lambda: coverage(core, year, as_of))

    def load(s: Session) -> list[dict[str, Any]]:
        rows = []
        actor = staff_actor(principal)
        for cb, cl in s.execute(select(CareCallback, Client).join(Client, Client.id == CareCallback.client_id)
                                .where(CareCallback.status == "scheduled")
                                .order_by(CareCallback.due_on, CareCallback.id).limit(500)):
            if may_read(actor, cl):
                state = "late" if cb.due_on < today else ("due_now" if cb.not_before <= today else "waiting")
                rows.append({"cb": cb, "client": cl, "state": state})
        return rows

    scheduled = await _db(request, load)
    return _page(request, "care/callbacks.html", principal, cov=cov, year=year, scheduled=scheduled,
                 percent=ANNUAL_SHARE_PERCENT)


# --- supervisor: the regulator's records (回访 with recordings and answers, the annual complaint summary) ---

@pages.get("/regulator", response_class=HTMLResponse)
async def regulator_page(request: Request, principal: Principal = roles(*SUP),
                         year: int | None = Query(None, ge=2000, le=2100)) -> Response:
    """The annual complaint summary for the 证监局 (printable; CSV beside it) and the year's regulatory call-backs
    done, each with its record (the five items' answers, the recording)."""
    core = _core(request)
    year = year or _today(request).year
    tz = core.settings.tz
    start, end = datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
    now = core.clock()

    def load(s: Session) -> tuple[Any, list[dict[str, Any]]]:
        summary = complaint_summary(s, year, tz, now)
        actor = staff_actor(principal)
        rows = []
        for cb in done_callbacks(s, start, end):
            client = s.get(Client, cb.client_id)
            if client is not None and may_read(actor, client):
                rows.append({"cb": cb, "client": client})
        return summary, rows

    summary, done = await _db(request, load)
    return _page(request, "care/regulator.html", principal, summary=summary, done=done, year=year,
                 outcomes=OUTCOMES, tab="regulator")


@pages.get("/regulator/complaints.csv")
async def regulator_complaints_csv(request: Request, principal: Principal = roles(*SUP),
                                   year: int = Query(..., ge=2000, le=2100)) -> Response:
    """The annual complaint summary as CSV (category names in the reader's language); the export is audited."""
    core = _core(request)
    lang = lang_of(request)
    now = core.clock()

    def work(s: Session) -> Any:
        summary = complaint_summary(s, year, core.settings.tz, now)
        s.add(AuditLog(at=now, staff_id=principal.staff_id, action="complaint_summary_export",
                       detail=f"year {year}: {summary.total.total} complaints"))
        return summary

    summary = await _db(request, work)
    body = summary_csv(summary, lambda c: t("care.complaint_categories." + c, lang) if c != "total"
                       else t("care_web.regulator.total", lang))
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="complaints-{year}.csv"'})


CallbackId = Path(ge=1, le=2**31 - 1)


@pages.get("/callbacks/{callback_id}/record", response_class=HTMLResponse)
async def callback_record_page(request: Request, callback_id: int = CallbackId,
                               principal: Principal = roles(*SUP)) -> Response:
    """One 回访's record (printable): who, when, the answers to the five mandatory items, its recording."""
    def load(s: Session) -> Any:
        record = callback_record(s, callback_id)
        if record is None:
            return None
        client = s.get(Client, record.client_id)
        if client is None or not may_read(staff_actor(principal), client):
            return None
        s.add(AuditLog(at=_core(request).clock(), staff_id=principal.staff_id, action="callback_record_view",
                       client_id=record.client_id, detail=f"call-back {callback_id}"))
        return record

    record = await _db(request, load)
    if record is None:
        raise ApiError(404, "not_found")
    return _page(request, "care/callback_record.html", principal, r=record, tab="regulator")


# --- supervisor: the reminder plan (dry run) ------------------------------------------------------------

@pages.get("/reminders", response_class=HTMLResponse)
async def reminders_page(*, request: Request, principal: Principal = roles(*SUP),
                         day: Annotated[Text, Query(alias="date", max_length=10)] = "") -> Response:
    from callcenter.services.care.planner import plan_day

    core = _core(request)
    lang = lang_of(request)
    try:
        the_day = date.fromisoformat(day) if day else _today(request)
    except ValueError:
        raise ApiError(422, "bad_date", message=t("care_web.reminders.bad_date", lang)) from None
    now = core.clock()
    items = await _db(request, lambda s: plan_day(s, the_day, core.calendar, now=now, tz=tz_of(request), lang=lang))
    return _page(request, "care/reminders.html", principal, items=items, day=the_day,
                 sending=sum(1 for i in items if i.will_send))


# --- agent side: the client on screen --------------------------------------------------------------------

def _visible_client(s: Session, principal: Principal, client_id: int) -> Client:
    """The client on the agent's screen: their group's, or the client of a call routed to them (one access rule)."""
    try:
        return visible_client(s, actor_for(s, principal), client_id)
    except ClientNotVisible:
        raise ApiError(404, "not_found") from None


class ComplaintIn(BaseModel):
    # pydantic expands the CATEGORIES tuple at runtime; mypy only accepts literal values here
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    text: MultilineText = Field(min_length=1, max_length=4000)
    contact_id: int | None = Field(default=None, ge=1, le=2**31 - 1)  # the call on screen, linked to the complaint


class ComplaintOut(BaseModel):
    id: int
    client_id: int
    category: str
    status: str
    owner_id: int | None
    opened_at: datetime
    due_at: datetime
    overdue: bool
    call_ref: str


def _out(v: Any) -> ComplaintOut:
    return ComplaintOut(id=v.id, client_id=v.client_id, category=v.category, status=v.status, owner_id=v.owner_id,
                        opened_at=v.opened_at, due_at=v.due_at, overdue=v.overdue, call_ref=v.call_ref)


@api.post("/clients/{client_id}/complaints", response_model=ComplaintOut, status_code=201,
          responses={401: {}, 403: {}, 404: {}, 422: {}})
async def open_complaint(body: ComplaintIn, request: Request, client_id: int = ClientId,
                         principal: Principal = StaffDep) -> ComplaintOut:
    def check(s: Session) -> str:
        _visible_client(s, principal, client_id)
        if body.contact_id is None:
            return ""
        contact = s.get(DeskContact, body.contact_id)
        if contact is None or contact.client_id != client_id or (
                principal.role == "agent" and contact.agent_id != principal.staff_id):
            raise ApiError(404, "not_found")
        return f"desk:{contact.id}"

    call_ref = await _db(request, check)
    svc = ComplaintService.for_app(_core(request))
    try:
        cid = await anyio.to_thread.run_sync(lambda: svc.open(client_id, body.category, body.text, channel="agent",
                                                              call_ref=call_ref, staff_id=principal.staff_id))
    except ComplaintError as exc:
        raise _complaint_error(exc) from None
    return _out(await anyio.to_thread.run_sync(svc.get, cid))


@api.get("/clients/{client_id}/complaints", response_model=list[ComplaintOut], responses={401: {}, 403: {}, 404: {}})
async def client_complaints(request: Request, client_id: int = ClientId, principal: Principal = StaffDep) -> list[ComplaintOut]:
    await _db(request, lambda s: _visible_client(s, principal, client_id))
    svc = ComplaintService.for_app(_core(request))
    return [_out(v) for v in await anyio.to_thread.run_sync(lambda: svc.list(client_id=client_id, limit=50))]


class TopicOut(BaseModel):
    topic: str
    label: str
    enabled: bool


class PreferencesOut(BaseModel):
    client_id: int
    topics: list[TopicOut]
    opted_out: list[str]


class TopicIn(BaseModel):
    topic: Text = Field(max_length=24)
    enabled: bool


class OptOutIn(BaseModel):
    channel: Literal["sms", "call", "all"]
    opted_out: bool


def _prefs_out(prefs: Any, lang: str) -> PreferencesOut:
    return PreferencesOut(client_id=prefs.client_id, opted_out=sorted(prefs.opted_out), topics=[
        TopicOut(topic=tp, label=t(f"care.topics.{tp}", lang), enabled=prefs.topics[tp]) for tp in TOPICS])


@api.get("/clients/{client_id}/subscriptions", response_model=PreferencesOut, responses={401: {}, 403: {}, 404: {}})
async def get_subscriptions(request: Request, client_id: int = ClientId, principal: Principal = StaffDep) -> PreferencesOut:
    await _db(request, lambda s: _visible_client(s, principal, client_id))
    svc = SubscriptionService(_core(request).sessions, _core(request).clock)
    return _prefs_out(await anyio.to_thread.run_sync(svc.get, client_id), lang_of(request))


@api.post("/clients/{client_id}/subscriptions", response_model=PreferencesOut,
          responses={401: {}, 403: {}, 404: {}, 422: {}})
async def set_subscription(body: TopicIn, request: Request, client_id: int = ClientId,
                           principal: Principal = StaffDep) -> PreferencesOut:
    await _db(request, lambda s: _visible_client(s, principal, client_id))
    svc = SubscriptionService(_core(request).sessions, _core(request).clock)
    try:
        prefs = await anyio.to_thread.run_sync(lambda: svc.set_topic(client_id, body.topic, body.enabled,
                                                                      source="agent", staff_id=principal.staff_id))
    except UnknownTopic:
        raise ApiError(422, "unknown_topic") from None
    return _prefs_out(prefs, lang_of(request))


@api.post("/clients/{client_id}/optouts", response_model=PreferencesOut, responses={401: {}, 403: {}, 404: {}, 422: {}})
async def set_optout(body: OptOutIn, request: Request, client_id: int = ClientId,
                     principal: Principal = StaffDep) -> PreferencesOut:
    await _db(request, lambda s: _visible_client(s, principal, client_id))
    svc = SubscriptionService(_core(request).sessions, _core(request).clock)
    if body.opted_out:
        await anyio.to_thread.run_sync(lambda: svc.opt_out(client_id, body.channel, source="agent"))
    else:
        await anyio.to_thread.run_sync(svc.opt_in, client_id, body.channel)
    return _prefs_out(await anyio.to_thread.run_sync(svc.get, client_id), lang_of(request))


@agent_pages.get("/clients/{client_id}", response_class=HTMLResponse)
async def client_care_fragment(request: Request, client_id: int = ClientId, principal: Principal = roles(*STAFF)) -> Response:
    """The panel the agent screen can load next to the call card: alerts, opt-outs, complaint form, complaints."""
    client = await _db(request, lambda s: _visible_client(s, principal, client_id))
    core = _core(request)
    prefs = await anyio.to_thread.run_sync(SubscriptionService(core.sessions, core.clock).get, client_id)
    svc = ComplaintService.for_app(core)
    complaints = await anyio.to_thread.run_sync(lambda: svc.list(client_id=client_id, limit=20))
    return _page(request, "care/_client_panel.html", principal, client=client, prefs=prefs, topics=list(TOPICS),
                 complaints=complaints, categories=CATEGORIES)


router = APIRouter()  # everything above, included by callcenter.web.app in one line
for _r in (pages, agent_pages, api):
    router.include_router(_r)
