"""Call controls on the screens (issue 13): the agent's buttons (hold, mute, keypad, transfer, consult,
conference, back to the IVR) and the supervisor's listen / whisper / barge on the wall board. Each button posts
JSON here; the route writes a ``call_commands`` row (``services.call_commands``) and nudges the dialler that owns
the call, whose call core decides; the screen reads the outcome with ``GET /api/desk/commands/{id}`` (a refusal
is a sentence of ``locales/*/controls.yaml``, never a code)."""

from __future__ import annotations

from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from callcenter.domain.access import may_watch_agent
from callcenter.domain.events import CommandQueued
from callcenter.services.access import staff_actor
from callcenter.i18n import t
from callcenter.ports.telephony import agent_phone
from callcenter.services import call_commands, desk
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models import CallCommand
from callcenter.store.models.core import Staff
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.dialer import AgentSession
from callcenter.web.deps import require_roles
from callcenter.web.errors import ApiError
from callcenter.web.pages.common import lang_of
from callcenter.web.text import Text

api = APIRouter(prefix="/api", tags=["call controls"])
Staffer = Depends(require_roles("agent", "supervisor", "admin"))
Supervisor = Depends(require_roles("supervisor", "admin"))

AgentControl = Literal["hold", "resume", "mute", "unmute", "dtmf", "transfer", "consult", "consult_complete",
                       "consult_cancel", "conference", "conference_leave", "transfer_ivr"]


def sentence(code: str, lang: str) -> str:
    try:
        return t(f"controls.reasons.{code}", lang)
    except KeyError:
        return t("controls.reasons.refused", lang)


def _refuse(request: Request, exc: desk.DeskError) -> ApiError:
    return ApiError(exc.status, exc.code, message=sentence(exc.code, lang_of(request)))


class ControlIn(BaseModel):
    kind: AgentControl
    target: int | None = Field(default=None, ge=1, le=2**31 - 1, description="transfer / consult / conference")
    digits: Text = Field(default="", pattern=r"^[0-9*#A-D]{0,32}$", description="dtmf: the keys to send")
    menu: Text = Field(default="", pattern=r"^[A-Za-z0-9._-]{0,64}$", description="transfer_ivr: the IVR node")


class QueuedOut(BaseModel):
    command_id: int


def _queued(request: Request, row: tuple[str, int]) -> QueuedOut:
    request.app.state.core.bus.emit(CommandQueued(dialer_id=row[0], command_id=row[1]))
    return QueuedOut(command_id=row[1])


@api.post("/desk/contacts/{contact_id}/control", response_model=QueuedOut, status_code=202,
          responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def control(body: ControlIn, request: Request, contact_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = Staffer) -> QueuedOut:
    """A call-control button on the agent's own live call (the conference's second agent may leave it)."""
    core = request.app.state.core
    now = core.clock()
    args: dict[str, Any] = {k: v for k, v in (("target", body.target), ("digits", body.digits),
                                               ("menu", body.menu)) if v}

    def work(s: Any) -> tuple[str, int]:
        row = call_commands.request_control(s, principal, contact_id, body.kind, now, args)
        return row.dialer_id, row.id

    try:
        row = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)
    except desk.DeskError as exc:
        raise _refuse(request, exc) from None
    return _queued(request, row)


class MonitorIn(BaseModel):
    agent_id: int = Field(ge=1, le=2**31 - 1)
    mode: Literal["listen", "whisper", "barge", "monitor_stop"]
    phone: Text = Field(default="", max_length=64, description="the supervisor's phone; default their extension")


@api.post("/supervisor/monitor", response_model=QueuedOut, status_code=202,
          responses={401: {}, 403: {}, 404: {}, 409: {}, 422: {}})
async def monitor(body: MonitorIn, request: Request, principal: Principal = Supervisor) -> QueuedOut:
    """Listen to (only the supervisor hears), whisper to (only the agent hears the supervisor) or barge into
    (everyone hears) an agent's live call, from the supervisor's phone; audit-logged."""
    core = request.app.state.core
    now = core.clock()

    def work(s: Any) -> tuple[str, int]:
        me = s.get(Staff, principal.staff_id)
        try:
            phone = agent_phone(core.settings.agent_phone_template, given=body.phone,
                                extension=me.extension if me is not None else "", staff_id=principal.staff_id) or ""
        except ValueError:
            raise desk.DeskError("no_supervisor_phone", 422) from None
        row = call_commands.request_monitor(s, principal, body.agent_id, body.mode, phone, now)
        return row.dialer_id, row.id

    try:
        row = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)
    except desk.DeskError as exc:
        raise _refuse(request, exc) from None
    return _queued(request, row)


class CommandOut(BaseModel):
    id: int
    kind: str
    state: str = Field(description="pending / claimed / done / failed / expired")
    message: str = Field(description="a sentence: what became of it")


@api.get("/desk/commands/{command_id}", response_model=CommandOut, responses={401: {}, 403: {}, 404: {}})
async def command_state(request: Request, command_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = Staffer) -> CommandOut:
    """What became of one's own call command (the screen shows the sentence)."""
    core = request.app.state.core
    lang = lang_of(request)

    def work(s: Any) -> CommandOut | None:
        row = s.get(CallCommand, command_id)
        if row is None or row.requested_by != principal.staff_id:
            return None
        code = {"done": "done", "pending": "pending", "claimed": "pending", "expired": "expired"}.get(
            row.state, row.result if row.result and " " not in row.result else "refused")
        return CommandOut(id=row.id, kind=row.kind, state=row.state, message=sentence(code, lang))

    out = await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)
    if out is None:
        raise ApiError(404, "not_found")
    return out


class PartyOut(BaseModel):
    staff_id: int
    name: str
    role: str
    state: str


@api.get("/desk/transfer-targets", response_model=list[PartyOut], responses={401: {}, 403: {}})
async def transfer_targets(request: Request, principal: Principal = Staffer) -> list[PartyOut]:
    """The agents and supervisors signed in at the desk, other than oneself (ready ones can take a transfer)."""
    core = request.app.state.core

    def work(s: Any) -> list[PartyOut]:
        rows = s.execute(select(AgentSession, Staff).join(Staff, Staff.id == AgentSession.staff_id)
                         .where(AgentSession.ended_at.is_(None), AgentSession.staff_id != principal.staff_id)
                         .order_by(Staff.display_name)).all()
        return [PartyOut(staff_id=st.id, name=st.display_name, role=st.role, state=sess.state) for sess, st in rows]

    return await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)


class LiveCallOut(BaseModel):
    agent_id: int
    agent: str
    contact_id: int
    direction: str
    since: Any


@api.get("/supervisor/live-calls", response_model=list[LiveCallOut], responses={401: {}, 403: {}})
async def live_calls(request: Request, principal: Principal = Supervisor) -> list[LiveCallOut]:
    """The live calls a supervisor may monitor (their groups' agents; an admin's: all)."""
    core = request.app.state.core
    actor = staff_actor(principal)

    def work(s: Any) -> list[LiveCallOut]:
        q = (select(DeskContact, Staff).join(Staff, Staff.id == DeskContact.agent_id)
             .where(DeskContact.hung_up_at.is_(None), DeskContact.ended_at.is_(None)).order_by(DeskContact.id))
        out = []
        for contact, st in s.execute(q).all():
            if not may_watch_agent(actor, st.service_group_id):  # a supervisor: their groups' agents
                continue
            out.append(LiveCallOut(agent_id=st.id, agent=st.display_name, contact_id=contact.id,
                                   direction=contact.direction, since=contact.started_at))
        return out

    return await anyio.to_thread.run_sync(run_in_transaction, core.sessions, work)
