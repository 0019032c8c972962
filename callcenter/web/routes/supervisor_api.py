"""The supervisors' JSON API for integration (issue 13): campaigns (list, one, its life-cycle actions), a
campaign's leads (numbers masked), the reports (the screens' tables: translated headers and cells) and the wall
board (the viewer's cut of it). Supervisors and administrators only; every code comes with its label in the
caller's language (the language cookie, else Chinese)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from callcenter.domain.campaigns import CampaignRefused
from callcenter.domain.masking import mask_phone
from callcenter.i18n import has, t
from callcenter.services import kpis
from callcenter.services.access import staff_actor
from callcenter.services.dialer import campaigns as dialer
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import read_only
from callcenter.store.models.dialer import LEAD_STATUSES, Campaign, Lead
from callcenter.web.deps import CoreDep, require_roles
from callcenter.web.errors import ApiError
from callcenter.web.pages.common import lang_of, tz_of

router = APIRouter(prefix="/api", tags=["supervisor"])
SupervisorDep = Annotated[Principal, Depends(require_roles("supervisor", "admin"))]
CampaignId = Path(ge=1, le=2**31 - 1)
LeadStatus = Literal["new", "in_progress", "retry", "done", "dnc", "exhausted"]
assert set(LeadStatus.__args__) == set(LEAD_STATUSES)  # type: ignore[attr-defined]


def _label(lang: str, prefix: str, code: str) -> str:
    key = f"web.{prefix}.{code}"
    return t(key, lang) if has(key, lang) else t("web.reports.unassigned", lang)


# --- campaigns ------------------------------------------------------------------------------------------------

class CampaignOut(BaseModel):
    id: int
    name: str
    kind: str = Field(description="former_clients / cold_leads / dormant / reminder / callback")
    kind_label: str
    dial_mode: str = Field(description="preview / progressive / ratio / predictive")
    dial_mode_label: str
    state: str = Field(description="draft / scheduled / running / paused / finished")
    state_label: str
    script_id: str
    window_start: str = Field(description="Calling hours, the lead's local time (HH:MM)")
    window_end: str
    days: str = Field(description="trading / working / every")
    max_attempts: int
    priority: int
    ratio: float
    target_abandon: float = Field(description="A share (0.03 = 3 %)")
    caller_id: str
    leads: int
    leads_by_status: dict[str, int] = Field(default_factory=dict)
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def _campaign_out(c: Campaign, leads: dict[str, int], lang: str) -> CampaignOut:
    return CampaignOut(id=c.id, name=c.name, kind=c.kind, kind_label=_label(lang, "kind", c.kind),
                       dial_mode=c.dial_mode, dial_mode_label=_label(lang, "mode", c.dial_mode), state=c.state,
                       state_label=_label(lang, "cstate", c.state), script_id=c.script_id,
                       window_start=c.window_start.strftime("%H:%M"), window_end=c.window_end.strftime("%H:%M"),
                       days=c.days, max_attempts=c.max_attempts, priority=c.priority, ratio=float(c.ratio),
                       target_abandon=float(c.target_abandon), caller_id=c.caller_id, leads=sum(leads.values()),
                       leads_by_status=leads, scheduled_at=c.scheduled_at, started_at=c.started_at,
                       finished_at=c.finished_at)


def _lead_counts(s: Any, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {cid: {} for cid in campaign_ids}
    if campaign_ids:
        for cid, status, n in s.execute(select(Lead.campaign_id, Lead.status, func.count())
                                        .where(Lead.campaign_id.in_(campaign_ids))
                                        .group_by(Lead.campaign_id, Lead.status)):
            out[cid][status] = int(n)
    return out


@router.get("/campaigns", response_model=list[CampaignOut], responses={401: {}, 403: {}})
async def list_campaigns(request: Request, core: CoreDep, principal: SupervisorDep) -> list[CampaignOut]:
    """Every campaign, newest first, with its lead counts by status."""
    lang = lang_of(request)

    def work(s: Any) -> list[CampaignOut]:
        camps = list(s.execute(select(Campaign).order_by(Campaign.id.desc())).scalars())
        counts = _lead_counts(s, [c.id for c in camps])
        return [_campaign_out(c, counts[c.id], lang) for c in camps]

    return await anyio.to_thread.run_sync(read_only, core.sessions, work)


def _one(core: Any, campaign_id: int, lang: str) -> CampaignOut:
    def work(s: Any) -> CampaignOut | None:
        c = s.get(Campaign, campaign_id)
        return None if c is None else _campaign_out(c, _lead_counts(s, [c.id])[c.id], lang)

    out = read_only(core.sessions, work)
    if out is None:
        raise ApiError(404, "not_found")
    return out


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, responses={401: {}, 403: {}, 404: {}})
async def get_campaign(request: Request, core: CoreDep, principal: SupervisorDep,
                       campaign_id: int = CampaignId) -> CampaignOut:
    return await anyio.to_thread.run_sync(_one, core, campaign_id, lang_of(request))


class CampaignActionIn(BaseModel):
    action: Literal["start", "pause", "resume", "stop"]


@router.post("/campaigns/{campaign_id}/action", response_model=CampaignOut,
             responses={401: {}, 403: {}, 404: {}, 409: {}})
async def campaign_action(body: CampaignActionIn, request: Request, core: CoreDep, principal: SupervisorDep,
                          campaign_id: int = CampaignId) -> CampaignOut:
    """Start, pause, resume or stop a campaign (the one life-cycle table of the dialler; the wall board is told)."""
    lang = lang_of(request)
    await anyio.to_thread.run_sync(_one, core, campaign_id, lang)  # 404 first
    try:
        await anyio.to_thread.run_sync(dialer.campaign_action, core, campaign_id, body.action)
    except CampaignRefused as exc:
        raise ApiError(409, "bad_transition", message=dialer.refused_sentence(exc, lang)) from None
    except dialer.DialerError as exc:
        raise ApiError(404 if exc.code == "not_found" else 409, exc.code, message=exc.sentence(lang)) from None
    return await anyio.to_thread.run_sync(_one, core, campaign_id, lang)


class LeadOut(BaseModel):
    id: int
    name: str
    phone: str = Field(description="Masked (the middle digits hidden)")
    client_id: int | None
    status: str = Field(description="new / in_progress / retry / done / dnc / exhausted")
    status_label: str
    attempts: int
    priority: int
    last_outcome: str | None
    next_attempt_at: datetime | None


@router.get("/campaigns/{campaign_id}/leads", response_model=list[LeadOut], responses={401: {}, 403: {}, 404: {}})
async def campaign_leads(request: Request, core: CoreDep, principal: SupervisorDep, campaign_id: int = CampaignId,
                         status: Annotated[LeadStatus | None, Query()] = None,
                         offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[LeadOut]:
    """A campaign's leads in id order, a page at a time (``offset``, ``limit``), optionally of one status."""
    lang = lang_of(request)

    def work(s: Any) -> list[LeadOut] | None:
        if s.get(Campaign, campaign_id) is None:
            return None
        q = select(Lead).where(Lead.campaign_id == campaign_id)
        if status is not None:
            q = q.where(Lead.status == status)
        return [LeadOut(id=x.id, name=x.name, phone=mask_phone(x.phone), client_id=x.client_id, status=x.status,
                        status_label=_label(lang, "lead_status", x.status), attempts=x.attempts, priority=x.priority,
                        last_outcome=x.last_outcome, next_attempt_at=x.next_attempt_at)
                for x in s.execute(q.order_by(Lead.id).offset(offset).limit(limit)).scalars()]

    out = await anyio.to_thread.run_sync(read_only, core.sessions, work)
    if out is None:
        raise ApiError(404, "not_found")
    return out


# --- reports --------------------------------------------------------------------------------------------------

class ReportOut(BaseModel):
    kind: str
    by: str
    start: date
    end: date
    headers: list[str] = Field(description="The columns, in the caller's language (as on the screen and the CSV)")
    rows: list[list[str]] = Field(description="One list of display cells per row")


@router.get("/reports", response_model=ReportOut, responses={401: {}, 403: {}, 422: {}})
async def report(request: Request, core: CoreDep, principal: SupervisorDep,
                 kind: Annotated[Literal["outbound", "inbound", "transfers", "complaints"], Query()] = "outbound",
                 by: Annotated[Literal["campaign", "agent", "day"], Query()] = "campaign",
                 start: Annotated[date | None, Query()] = None, end: Annotated[date | None, Query()] = None) -> ReportOut:
    """The reports page's table: outbound (by campaign, agent or day), inbound and IVR, transfers, complaints,
    between two local dates (default: the last seven days, at most 367)."""
    from callcenter.web.pages.supervisor import _range, _report

    first, last = _range(request, start.isoformat() if start else None, end.isoformat() if end else None)
    lang, now, tz = lang_of(request), core.clock(), tz_of(request)
    headers, cells, _ = await anyio.to_thread.run_sync(read_only, core.sessions, lambda s: _report(
        s, kind, by, first, last, tz, now, lang))
    return ReportOut(kind=kind, by=by, start=first, end=last, headers=headers, rows=cells)


# --- the wall board --------------------------------------------------------------------------------------------

class AgentRowOut(BaseModel):
    staff_id: int
    name: str
    group_id: int | None
    group: str
    state: str
    state_label: str
    reason: str
    reason_label: str
    state_s: int = Field(description="Seconds in the state")
    campaign: str
    direction: str = Field(description="outbound / inbound, or empty with no call")
    talk_s: int | None
    calls_today: int


class GroupQueueOut(BaseModel):
    group_id: int | None = Field(description="None: callers the hotline did not identify")
    group: str
    waiting: int = Field(description="IVR hand-offs waiting for an agent")
    longest_s: int | None
    signed_in: int
    ready: int
    talking: int


class ServiceLevelOut(BaseModel):
    threshold_s: float
    offered: int
    met: int
    rate: float | None


class CampaignFiguresOut(BaseModel):
    id: int
    name: str
    state: str
    state_label: str
    dials: int
    contacts: int
    connect_rate: float | None
    abandon_today: float | None
    abandon_30d: float | None
    abandon_cap: float
    over_cap: bool


class WallboardOut(BaseModel):
    at: str = Field(description="The snapshot's local time (ISO 8601)")
    agents: dict[str, int] = Field(description="The viewer's agents by state")
    agent_rows: list[AgentRowOut]
    groups: list[GroupQueueOut]
    ringing: int
    answered: int
    connected: int
    in_flight: int
    ivr_waiting: int
    ivr_longest_s: int | None
    service_level: ServiceLevelOut
    campaigns: list[CampaignFiguresOut]


@router.get("/wallboard", response_model=WallboardOut, responses={401: {}, 403: {}})
async def wallboard(request: Request, core: CoreDep, principal: SupervisorDep) -> WallboardOut:
    """The wall board's snapshot as the caller may see it (a supervisor their groups' agents and queue, an admin
    all): what ``/supervisor/wallboard`` shows, for a wall display or another system."""
    from callcenter.services import desk

    lang, tz, level_s = lang_of(request), tz_of(request), core.settings.service_level_s
    snap, pauses = await anyio.to_thread.run_sync(read_only, core.sessions, lambda s: (
        kpis.wallboard(s, core.clock(), tz, service_level_s=level_s), desk.code_labels(s, "pause", lang)))
    board = kpis.board_for(snap, staff_actor(principal))
    rows = [AgentRowOut(**r, state_label=_label(lang, "state", r["state"]),
                        reason_label=pauses.get(r["reason"], "") if r["reason"] else "") for r in board["agent_rows"]]
    camps = [CampaignFiguresOut(**c, state_label=_label(lang, "cstate", c["state"])) for c in board["campaigns"]]
    return WallboardOut(at=board["at"], agents=board["agents"], agent_rows=rows,
                        groups=[GroupQueueOut(**g) for g in board["groups"]], ringing=board["ringing"],
                        answered=board["answered"], connected=board["connected"], in_flight=board["in_flight"],
                        ivr_waiting=board["ivr_waiting"], ivr_longest_s=board["ivr_longest_s"],
                        service_level=ServiceLevelOut(**board["service_level"]), campaigns=camps)
