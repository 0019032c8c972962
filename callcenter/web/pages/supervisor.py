"""Supervisor pages: wall board, campaigns (create / edit / start / pause / stop, lead upload, schedules),
reports with charts and CSV export, service groups and the monthly KPI ranking. Supervisors and admin only;
every form carries the session's CSRF token."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from callcenter.services.dialer import leads as leads_import
from callcenter.services.dialer import campaigns as dialer
from callcenter.domain.campaigns import CampaignRefused
from callcenter.domain.events import CampaignChanged
from callcenter.services import desk, groups, kpis, reports
from callcenter.services.dialer.segment_leads import add_segment_leads
from callcenter.services.segments import SEGMENTS, segment_clients
from callcenter.i18n import has, t
from callcenter.services.access import staff_actor
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import read_only, run_in_transaction
from callcenter.store.models import ServiceGroup
from callcenter.store.models.dialer import CALLING_DAYS, CAMPAIGN_KINDS, DIAL_MODES, Campaign, Lead
from callcenter.web.errors import ApiError
from callcenter.web.pages.common import lang_of, parts_line, render, roles, tz_of
from callcenter.i18n import t
from callcenter.web.text import Text

router = APIRouter(prefix="/supervisor", include_in_schema=False)
SUP = ("supervisor", "admin")
Id = Path(ge=1, le=2**31 - 1)


def _core(request: Request) -> Any:
    return request.app.state.core


async def _db(request: Request, fn: Any) -> Any:
    return await anyio.to_thread.run_sync(run_in_transaction, _core(request).sessions, fn)


@router.get("", response_class=HTMLResponse)
async def home(principal: Principal = roles(*SUP)) -> Response:
    return RedirectResponse("/supervisor/wallboard", status_code=303)


@router.get("/wallboard", response_class=HTMLResponse)
async def wallboard_page(request: Request, principal: Principal = roles(*SUP)) -> Response:
    core = _core(request)
    level_s = core.settings.service_level_s
    lang = lang_of(request)
    snap, pause_labels = await anyio.to_thread.run_sync(read_only, core.sessions, lambda s: (kpis.wallboard(
        s, core.clock(), tz_of(request), service_level_s=level_s), desk.code_labels(s, "pause", lang)))
    snap = kpis.board_for(snap, staff_actor(principal))
    snap["parts"] = parts_line(core, lang, tz_of(request))
    return render(request, "wallboard.html", principal, w=snap, pause_labels=pause_labels)


# --- campaigns --------------------------------------------------------------------------------------------

def _campaign_list(s: Any) -> list[dict[str, Any]]:
    counts = dict(s.execute(select(Lead.campaign_id, func.count()).group_by(Lead.campaign_id)).all())
    return [{"c": c, "leads": counts.get(c.id, 0)} for c in s.execute(select(Campaign).order_by(Campaign.id.desc())).scalars()]


def _form_ctx(s: Any, request: Request) -> dict[str, Any]:
    scripts_dir = request.app.state.core.settings.scripts_path
    lang = lang_of(request)
    catalogue = desk.scripts(scripts_dir)
    return {"kinds": CAMPAIGN_KINDS, "modes": DIAL_MODES, "days": CALLING_DAYS,
            "scripts": sorted(((sid, sc.title.get("en" if lang == "en" else "zh") or sid, sc.kind)
                               for sid, sc in catalogue.items()), key=lambda x: x[1]),
            "kind_scripts": desk.CAMPAIGN_KIND_TO_SCRIPT_KIND,
            "groups": [(g.id, g.name) for g in s.execute(select(ServiceGroup).order_by(ServiceGroup.id)).scalars()]}


@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns_page(request: Request, principal: Principal = roles(*SUP)) -> Response:
    data = await _db(request, lambda s: {"campaigns": _campaign_list(s), **_form_ctx(s, request)})
    return render(request, "campaigns.html", principal, **data, error="")


class CampaignForm:
    """Every campaign setting the form posts (the one check of them is the dialler's ``_check_fields``)."""

    def __init__(self, name: Annotated[Text, Form(max_length=128)], kind: Annotated[Text, Form(max_length=16)],
                 script_id: Annotated[Text, Form(max_length=64)],
                 dial_mode: Annotated[Text, Form(max_length=12)] = "progressive",
                 window_start: Annotated[Text, Form(max_length=8)] = "09:00",
                 window_end: Annotated[Text, Form(max_length=8)] = "20:00",
                 days: Annotated[Text, Form(max_length=8)] = "working", max_attempts: int = Form(3, ge=1, le=20),
                 ratio: float = Form(2.0, ge=1.0, le=5.0), target_abandon_pct: float = Form(3.0, gt=0, le=3.0),
                 caller_id: Annotated[Text, Form(max_length=32, pattern=r"^\+?[0-9]*$")] = "",
                 priority: int = Form(0, ge=0, le=99), amd_policy: Annotated[Text, Form(pattern="^(off|human|machine)$")] = "human",
                 leave_message: bool = Form(False), recycle: bool = Form(False),
                 group_ids: list[int] = Form(default_factory=list)) -> None:
        self.group_ids = group_ids
        self.fields: dict[str, Any] = {
            "name": name, "kind": kind, "script_id": script_id, "dial_mode": dial_mode, "window_start": window_start,
            "window_end": window_end, "days": days, "max_attempts": max_attempts, "ratio": ratio,
            "target_abandon": round(target_abandon_pct / 100, 4), "caller_id": caller_id, "priority": priority,
            "amd_policy": amd_policy, "leave_message": leave_message, "recycle": recycle}


def _refused(request: Request, exc: dialer.DialerError) -> ApiError:
    status = 404 if exc.code == "not_found" else 409 if exc.code == "not_editable" else 422
    return ApiError(status, exc.code, message=exc.sentence(lang_of(request)))


@router.post("/campaigns")
async def create_campaign(*, request: Request, principal: Principal = roles(*SUP),
                          form: Annotated[CampaignForm, Depends()]) -> Response:
    core = _core(request)
    try:  # the dialler's use case, the same checks as ``callcenter campaign create``
        cid = await anyio.to_thread.run_sync(lambda: dialer.create_campaign(
            core, created_by=principal.staff_id, script_ids=set(desk.scripts(core.settings.scripts_path)),
            group_ids=form.group_ids, **form.fields))
    except dialer.DialerError as exc:
        raise _refused(request, exc) from None
    return RedirectResponse(f"/supervisor/campaigns/{cid}", status_code=303)


def _scheduler(request: Request) -> Any:
    sched = _core(request).scheduler  # None, or not started: the scheduler part is not running in this process
    return sched if sched is not None and sched.scheduler.running else None


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign_page(request: Request, campaign_id: int = Id, principal: Principal = roles(*SUP)) -> Response:
    def load(s: Any) -> dict[str, Any]:
        camp = s.get(Campaign, campaign_id)
        if camp is None:
            raise ApiError(404, "not_found")
        return _campaign_ctx(s, request, camp)

    data = await _db(request, load)
    sched = _scheduler(request)
    jobs = sched.jobs(campaign_id) if sched else []
    return render(request, "campaign.html", principal, **data, jobs=jobs, scheduler_on=sched is not None,
                  upload=None, segment_result=None, tz=tz_of(request))


def _campaign_ctx(s: Any, request: Request, camp: Campaign) -> dict[str, Any]:
    leads = s.execute(select(func.count()).select_from(Lead).where(Lead.campaign_id == camp.id)).scalar_one()
    return {"c": camp, "leads": leads, "group_ids": [g.service_group_id for g in camp.groups], "segments": SEGMENTS,
            "opens_at": dialer.calling_hours_hint(_core(request), camp), **_form_ctx(s, request)}


class SegmentForm:
    def __init__(self, segment: Annotated[Text, Form(max_length=16)], months: int = Form(12, ge=1, le=120),
                 days: int = Form(180, ge=30, le=3650), code: Annotated[Text, Form(max_length=6)] = "",
                 within_days: int = Form(7, ge=0, le=60)) -> None:
        self.segment = segment
        self.params: dict[str, Any] = {"months": months, "days": days, "code": code.strip(), "within_days": within_days}


def _check_segment(request: Request, segment: str, code: str) -> None:
    if segment not in SEGMENTS:
        raise ApiError(422, "bad_segment", message=t("web.campaigns.bad_segment", lang_of(request),
                                                     allowed="、".join(t(f"web.segment.{x}", lang_of(request)) for x in SEGMENTS)))
    if segment == "holders" and not (len(code) == 6 and code.isdigit()):
        raise ApiError(422, "bad_code", message=t("web.campaigns.bad_code", lang_of(request)))


@router.get("/segments/count")
async def segment_count(*, request: Request, principal: Principal = roles(*SUP),
                        segment: Annotated[Text, Query(max_length=16)], months: int = Query(12, ge=1, le=120),
                        days: int = Query(180, ge=30, le=3650), code: Annotated[Text, Query(max_length=6)] = "",
                        within_days: int = Query(7, ge=0, le=60)) -> dict[str, int]:
    """How many clients a segment selects now (the campaign page's live count)."""
    _check_segment(request, segment, code.strip())
    today = _core(request).clock().astimezone(tz_of(request)).date()
    n = await _db(request, lambda s: len(segment_clients(s, segment, today, months=months, days=days,
                                                         code=code.strip(), within_days=within_days)))
    return {"count": n}


@router.post("/campaigns/{campaign_id}/segment", response_class=HTMLResponse)
async def add_segment(*, request: Request, campaign_id: int = Id, principal: Principal = roles(*SUP),
                      form: Annotated[SegmentForm, Depends()]) -> Response:
    """Leads from a client segment (the same use case as ``callcenter leads segment``)."""
    core = _core(request)
    _check_segment(request, form.segment, form.params["code"])
    today = core.clock().astimezone(tz_of(request)).date()
    try:
        result = await anyio.to_thread.run_sync(lambda: add_segment_leads(core, campaign_id, form.segment, today,
                                                                          **form.params))
    except leads_import.LeadFileError as exc:
        status = 404 if exc.code == "no_campaign" else 409 if exc.code == "campaign_finished" else 422
        raise ApiError(status, f"leads_{exc.code}", message=exc.sentence(lang_of(request))) from None

    def load(s: Any) -> dict[str, Any]:
        camp = s.get(Campaign, campaign_id)
        if camp is None:
            raise ApiError(404, "not_found")
        return _campaign_ctx(s, request, camp)

    data = await _db(request, load)
    sched = _scheduler(request)
    return render(request, "campaign.html", principal, **data, jobs=sched.jobs(campaign_id) if sched else [],
                  scheduler_on=sched is not None, upload=None, segment_result=result, tz=tz_of(request))


@router.post("/campaigns/{campaign_id}")
async def edit_campaign(*, request: Request, campaign_id: int = Id, principal: Principal = roles(*SUP),
                        form: Annotated[CampaignForm, Depends()]) -> Response:
    core = _core(request)
    try:
        await anyio.to_thread.run_sync(lambda: dialer.edit_campaign(
            core, campaign_id, script_ids=set(desk.scripts(core.settings.scripts_path)), group_ids=form.group_ids,
            **form.fields))
    except dialer.DialerError as exc:
        raise _refused(request, exc) from None
    return RedirectResponse(f"/supervisor/campaigns/{campaign_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/action")
async def campaign_action(*, request: Request, campaign_id: int = Id, principal: Principal = roles(*SUP),
                          action: Annotated[Text, Form(max_length=16)]) -> Response:
    core = _core(request)
    if action not in ("start", "pause", "resume", "stop"):
        raise ApiError(422, "bad_action")
    try:  # the dialler's campaign use case: the one life-cycle table, and it tells the wall board
        await anyio.to_thread.run_sync(dialer.campaign_action, core, campaign_id, action)
    except CampaignRefused as exc:
        raise ApiError(409, "bad_transition", message=dialer.refused_sentence(exc, lang_of(request))) from None
    except dialer.DialerError as exc:
        raise _refused(request, exc) from None
    return RedirectResponse(f"/supervisor/campaigns/{campaign_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/schedule")
async def add_schedule(*, request: Request, campaign_id: int = Id, principal: Principal = roles(*SUP),
                       action: Annotated[Text, Form(max_length=16)], kind: Annotated[Text, Form(max_length=16)],
                       at: Annotated[Text, Form(max_length=32)] = "", hhmm: Annotated[Text, Form(max_length=5)] = "09:30") -> Response:
    sched = _scheduler(request)
    if sched is None:
        raise ApiError(503, "scheduler_off", message="scheduler not running")
    try:
        if kind == "once":
            when = datetime.fromisoformat(at)
            when = when if when.tzinfo else when.replace(tzinfo=tz_of(request))
            await anyio.to_thread.run_sync(sched.schedule_once, campaign_id, action, when)
        elif kind == "trading_days":
            hh, mm = (int(x) for x in hhmm.split(":", 1))
            await anyio.to_thread.run_sync(sched.schedule_trading_days, campaign_id, action, hh, mm)
        else:
            raise ValueError(kind)
    except CampaignRefused as exc:
        raise ApiError(409, "bad_transition", message=dialer.refused_sentence(exc, lang_of(request))) from None
    except dialer.DialerError as exc:
        raise _refused(request, exc) from None
    except ValueError:
        raise ApiError(422, "bad_schedule", message=dialer.DialerError("", "bad_schedule").sentence(lang_of(request))) from None
    _core(request).bus.emit(CampaignChanged(campaign_id=campaign_id))
    return RedirectResponse(f"/supervisor/campaigns/{campaign_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/schedule/cancel")
async def cancel_schedule(*, request: Request, campaign_id: int = Id, principal: Principal = roles(*SUP),
                          job_id: Annotated[Text, Form(max_length=191)]) -> Response:
    sched = _scheduler(request)
    if sched is None:
        raise ApiError(503, "scheduler_off", message="scheduler not running")
    if not job_id.startswith(f"campaign:{campaign_id}:"):
        raise ApiError(404, "not_found")
    await anyio.to_thread.run_sync(sched.cancel, job_id)
    return RedirectResponse(f"/supervisor/campaigns/{campaign_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/leads", response_class=HTMLResponse)
async def upload_leads(request: Request, campaign_id: int = Id, principal: Principal = roles(*SUP),
                       file: UploadFile = File()) -> Response:
    core = _core(request)
    raw = await file.read(core.settings.max_request_bytes + 1)
    if len(raw) > core.settings.max_request_bytes:
        raise ApiError(413, "request_too_large")
    now = core.clock()
    source = leads_import.LeadFile.from_bytes(file.filename or "leads.csv", raw)
    try:  # the one lead import, the same as ``callcenter leads import``
        report = await anyio.to_thread.run_sync(lambda: leads_import.import_lead_file(
            core.sessions, campaign_id, source, now, today=now.astimezone(tz_of(request)).date()))
    except leads_import.LeadFileError as exc:
        status = 404 if exc.code == "no_campaign" else 409 if exc.code == "campaign_finished" else 422
        raise ApiError(status, f"leads_{exc.code}", message=exc.sentence(lang_of(request))) from None

    def load(s: Any) -> dict[str, Any]:
        return _campaign_ctx(s, request, s.get(Campaign, campaign_id))

    data = await _db(request, load)
    sched = _scheduler(request)
    return render(request, "campaign.html", principal, **data, jobs=sched.jobs(campaign_id) if sched else [],
                  scheduler_on=sched is not None, upload=report, segment_result=None, tz=tz_of(request))


# --- callbacks agents booked -------------------------------------------------------------------------------

@router.get("/callbacks", response_class=HTMLResponse)
async def callbacks_page(*, request: Request, principal: Principal = roles(*SUP),
                         agent: int | None = Query(None, ge=1, le=2**31 - 1)) -> Response:
    """The callbacks agents booked that the dialler has still to place, by due time, of the supervisor's groups
    (an admin's: all), for one agent or all."""
    core = _core(request)
    now = core.clock()
    rows = await _db(request, lambda s: desk.booked_callbacks(s, staff_actor(principal), now))
    agents = sorted({(r["owner_id"], r["owner"]) for r in rows if r["owner_id"] is not None}, key=lambda x: x[1])
    shown = [r for r in rows if agent is None or r["owner_id"] == agent]
    return render(request, "callbacks.html", principal, rows=shown, agents=agents, agent=agent, tz=tz_of(request))


# --- reports ----------------------------------------------------------------------------------------------

def _range(request: Request, start: str | None, end: str | None) -> tuple[date, date]:
    today = _core(request).clock().astimezone(tz_of(request)).date()
    try:
        last = date.fromisoformat(end) if end else today
        first = date.fromisoformat(start) if start else last - timedelta(days=6)
    except ValueError:
        raise ApiError(422, "bad_date") from None
    if first > last or (last - first).days > 366:
        raise ApiError(422, "bad_date")
    return first, last


def _name(lang: str, prefix: str, code: str) -> str:
    """A code as the user's words (``prefix.code`` in the locale files), the code itself only when none exists."""
    key = f"{prefix}.{code}"
    return t(key, lang) if has(key, lang) else code


def _report(s: Any, kind: str, by: str, first: date, last: date, tz: Any, now: datetime,
            lang: str) -> tuple[list[str], list[list[str]], list[dict[str, Any]]]:
    """The report as translated headers and display cells (the page's table and the CSV share them), and the
    raw rows (the outbound chart)."""
    W = "web.reports."
    if kind == "inbound":
        rows = reports.inbound(s, first, last, tz)
        cols = ["day", "in_calls", "in_authenticated", "in_handed_off", "in_hung_up", "in_mean_seconds"]
        cells = [[r["label"], str(r["calls"]), str(r["authenticated"]), str(r["handed_off"]),
                  str(r["hung_up_in_ivr"]), str(r["mean_ivr_seconds"])] for r in rows]
    elif kind == "transfers":
        rows = reports.transfers(s, first, last)
        cols = ["day", "tr_kind", "tr_requests", "tr_done", "tr_amount", "tr_refused"]
        cells = [[r["label"], _name(lang, "web.transfer_kind", r["kind"]), str(r["requests"]), str(r["done"]),
                  f"{Decimal(r['amount_fen']) / 100:,.2f}", str(r["refused"])] for r in rows]
    elif kind == "complaints":
        rows = reports.complaints(s, first, last, tz, now)
        cols = ["co_category", "co_opened", "co_closed", "co_open_now", "co_overdue", "co_mean_hours"]
        cells = [[_name(lang, "care.complaint_categories", r["label"]), str(r["opened"]), str(r["closed"]),
                  str(r["open_now"]), str(r["overdue"]),
                  "—" if r["mean_handling_hours"] is None else f"{r['mean_handling_hours']:.1f}"] for r in rows]
    else:
        rows = [dict(r) for r in kpis.report(s, by, first, last, tz)]
        codes = sorted({k for r in rows for k in r["dispositions"]})
        cols = ["col_" + by, "attempts", "contacts", "talk_time", "appointments", "callbacks_kept"]
        cells = [[str(r["label"]) if r["label"] not in (None, "", "—") else t(W + "unassigned", lang),
                  str(r["attempts"]), str(r["contacts"]), f"{r['talk_s'] / 60:.1f}", str(r["appointments"]),
                  str(r["callbacks_kept"]), *[str(r["dispositions"].get(k, 0)) for k in codes]] for r in rows]
        labels = desk.code_labels(s, "disposition", lang)  # the built-in ones and those administrators configured
        return ([t(W + c, lang) for c in cols] + [labels.get(k) or _name(lang, "web.disposition", k) for k in codes],
                cells, rows)
    return [t(W + c, lang) for c in cols], cells, rows


REPORT_KIND = Query(pattern="^(outbound|inbound|transfers|complaints)$")


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(*, request: Request, principal: Principal = roles(*SUP),
                       kind: Annotated[Text, REPORT_KIND] = "outbound",
                       by: Annotated[Text, Query(pattern="^(campaign|agent|day)$")] = "campaign",
                       start: Annotated[Text | None, Query(max_length=10)] = None, end: Annotated[Text | None, Query(max_length=10)] = None) -> Response:
    first, last = _range(request, start, end)
    lang, now = lang_of(request), _core(request).clock()
    headers, cells, rows = await _db(request, lambda s: _report(s, kind, by, first, last, tz_of(request), now, lang))
    peak = max([int(r["attempts"]) for r in rows] + [1]) if kind == "outbound" else 1
    return render(request, "reports.html", principal, rows=rows, kind=kind, kinds=reports.KINDS, headers=headers,
                  cells=cells, by=by, first=first, last=last, peak=peak)


@router.get("/reports.csv")
async def reports_csv(*, request: Request, principal: Principal = roles(*SUP),
                      kind: Annotated[Text, REPORT_KIND] = "outbound",
                      by: Annotated[Text, Query(pattern="^(campaign|agent|day)$")] = "campaign",
                      start: Annotated[Text | None, Query(max_length=10)] = None, end: Annotated[Text | None, Query(max_length=10)] = None) -> Response:
    first, last = _range(request, start, end)
    lang, now = lang_of(request), _core(request).clock()
    headers, cells, _rows = await _db(request, lambda s: _report(s, kind, by, first, last, tz_of(request), now, lang))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([t("web.reports.period", lang, first=first.isoformat(), last=last.isoformat(),
                       kind=t(f"web.reports.kind_{kind}", lang))])
    writer.writerow(headers)
    for row in cells:
        label = row[0]
        if label[:1] in ("=", "+", "-", "@"):  # no formula injection into spreadsheets
            label = "'" + label
        writer.writerow([label, *row[1:]])
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="report-{kind}-{by}-{first}-{last}.csv"'})


# --- service groups and KPIs -----------------------------------------------------------------------------

def _month(request: Request, month: str | None) -> str:
    if month:
        if len(month) != 7 or not month[:4].isdigit() or month[4] != "-" or not month[5:].isdigit() or not 1 <= int(month[5:]) <= 12:
            raise ApiError(422, "bad_month")
        return month
    return _core(request).clock().astimezone(tz_of(request)).strftime("%Y-%m")


@router.get("/groups", response_class=HTMLResponse)
async def groups_page(*, request: Request, principal: Principal = roles(*SUP),
                      month: Annotated[Text | None, Query(max_length=7)] = None, assigned: int | None = Query(None, ge=0)) -> Response:
    m = _month(request, month)
    scope = None if principal.is_admin else principal.group_ids
    gs = await _db(request, lambda s: groups.list_groups(s, scope))
    ranking = await anyio.to_thread.run_sync(kpis.ranking, _core(request).sessions, m)
    if not ranking and month is None:  # this month not closed yet: show the latest closed one
        latest = await _db(request, kpis.latest_ranked_month)
        if latest:
            m = latest
            ranking = await anyio.to_thread.run_sync(kpis.ranking, _core(request).sessions, m)
    return render(request, "groups.html", principal, groups=gs, ranking=ranking, month=m, assigned=assigned)


@router.post("/groups/compute")
async def compute_kpis(*, request: Request, principal: Principal = roles(*SUP), month: Annotated[Text, Form(max_length=7)]) -> Response:
    core = _core(request)
    m = _month(request, month)
    await anyio.to_thread.run_sync(lambda: kpis.compute_month(core.sessions, m, core.clock(), tz_of(request)))
    return RedirectResponse(f"/supervisor/groups?month={m}", status_code=303)


@router.post("/groups/assign")
async def assign_clients(*, request: Request, principal: Principal = roles("admin", "supervisor"),
                         month: Annotated[Text, Form(max_length=7)]) -> Response:
    if not principal.is_admin:
        raise ApiError(403, "forbidden")
    core = _core(request)
    m = _month(request, month)
    try:
        result = await anyio.to_thread.run_sync(lambda: groups.assign_month(core.sessions, m))
    except groups.GroupRuleError as exc:
        raise ApiError(409, exc.code) from None
    return RedirectResponse(f"/supervisor/groups?month={m}&assigned={sum(len(v) for v in result.values())}",
                            status_code=303)


# --- 预约服务: the appointments of the supervisor's groups (an admin's: all) --------------------------------------

@router.get("/appointments", response_class=HTMLResponse)
async def appointments_page(*, request: Request, principal: Principal = roles(*SUP),
                            start: Annotated[Text | None, Query(max_length=10)] = None,
                            end: Annotated[Text | None, Query(max_length=10)] = None,
                            kind: Annotated[Text | None, Query(pattern="^(group_callback|analyst_callback|branch_visit)?$")] = None,
                            day: Annotated[Text | None, Query(max_length=10)] = None) -> Response:
    from callcenter.domain.access import Actor
    from callcenter.domain.appointments import KINDS
    from callcenter.services.appointments import slot_label

    core = _core(request)
    today = core.clock().astimezone(tz_of(request)).date()
    try:
        first = date.fromisoformat(start) if start else today
        last = date.fromisoformat(end) if end else first + timedelta(days=13)
    except ValueError:
        raise ApiError(422, "bad_date") from None
    if first > last or (last - first).days > 92:
        raise ApiError(422, "bad_date")
    actor = Actor.staff(principal.role, principal.staff_id, principal.group_ids)
    rows = await anyio.to_thread.run_sync(lambda: core.appointments.listing(actor, first, last, kind=kind or None))
    try:
        slot_day = date.fromisoformat(day) if day else first
    except ValueError:
        raise ApiError(422, "bad_date") from None
    slot_kind = kind or KINDS[0]
    grid = await anyio.to_thread.run_sync(lambda: core.appointments.slot_grid(slot_kind, slot_day))
    lang = lang_of(request)
    items = [{"id": a.id, "slot": slot_label(a.slot_start, tz_of(request), lang), "client": a.client_name,
              "kind": a.kind, "status": a.status, "channel": a.channel, "note": a.note,
              "started": a.slot_start <= core.clock()} for a in rows]
    slots = [{"start": g.start.isoformat(), "time": g.start.strftime("%H:%M"), "booked": g.booked,
              "capacity": g.capacity, "own": g.own} for g in grid]
    return render(request, "appointments.html", principal, items=items, first=first, last=last, kind=kind or "",
                  kinds=KINDS, slots=slots, slot_day=slot_day, slot_kind=slot_kind,
                  saved=request.query_params.get("saved") == "1")


@router.post("/appointment-slots", response_class=HTMLResponse)
async def appointment_slot_capacity(*, request: Request, principal: Principal = roles(*SUP),
                                    kind: Annotated[Text, Form(pattern="^(group_callback|analyst_callback|branch_visit)$")],
                                    start: Annotated[Text, Form(max_length=40)],
                                    capacity: Annotated[Text, Form(max_length=3, pattern="^[0-9]{0,3}$")] = "",
                                    reason: Annotated[Text, Form(max_length=200)] = "") -> Response:
    """Set one slot's capacity (0 closes it; empty gives it back the default), audited; back to the grid."""
    from callcenter.domain.access import Actor
    from callcenter.domain.appointments import AppointmentError

    core = _core(request)
    actor = Actor.staff(principal.role, principal.staff_id, principal.group_ids)
    try:
        at = datetime.fromisoformat(start)
    except ValueError:
        raise ApiError(422, "bad_date") from None
    if at.tzinfo is None:
        raise ApiError(422, "bad_date")
    value = int(capacity) if capacity else None
    try:
        await anyio.to_thread.run_sync(lambda: core.appointments.set_capacity(actor, kind, at, value, reason))
    except AppointmentError as exc:
        raise ApiError(403 if exc.rule.value == "not_allowed" else 422, exc.rule.value,
                       message=t(f"appointments.{exc.rule.value}", lang_of(request))) from None
    day = at.astimezone(tz_of(request)).date().isoformat()
    return RedirectResponse(f"/supervisor/appointments?kind={kind}&day={day}&saved=1", status_code=303)


@router.post("/appointments/{appointment_id}", response_class=HTMLResponse)
async def appointment_action(*, request: Request, appointment_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = roles(*SUP),
                             action: Annotated[Text, Form(pattern="^(cancel|done|missed)$")]) -> Response:
    """Cancel an appointment (before it starts), or close a begun one as done / missed; back to the list."""
    from callcenter.domain.access import Actor
    from callcenter.domain.appointments import AppointmentError

    core = _core(request)
    actor = Actor.staff(principal.role, principal.staff_id, principal.group_ids)
    try:
        if action == "cancel":
            await anyio.to_thread.run_sync(lambda: core.appointments.cancel(appointment_id, actor))
        else:
            await anyio.to_thread.run_sync(lambda: core.appointments.mark(appointment_id, actor, action))
    except AppointmentError as exc:
        status = 404 if exc.rule.value in ("unknown_client", "unknown_appointment") else 409
        raise ApiError(status, exc.rule.value, message=t(f"appointments.{exc.rule.value}", lang_of(request))) from None
    return RedirectResponse("/supervisor/appointments", status_code=303)

