"""Recordings and quality inspection (质检) screens.

* ``GET /recordings/{id}/audio`` — the audio for an ``<audio>`` element, with HTTP range requests (206 Partial
  Content); ``GET /recordings/{id}/download`` — the file, admins only. Who may listen: ``may_listen`` of
  ``callcenter.domain.access``; every playback request and download (and every refusal) is audit-logged by the
  recording service. A refusal is a 404, like a recording that does not exist.
* ``GET /recordings`` — the recordings the user may play, with legal hold set and lifted by admins (a reason).
* ``GET /qa`` — the QA staff's queue (the weekly samples) and recent evaluations; ``GET /qa/recordings/{id}``
  listens and evaluates on a form.
* ``GET /supervisor/quality`` — evaluation forms, the week's sampling, scores by agent and group for a month,
  and the disputes to decide.
* ``GET /agent/evaluations`` — an agent's evaluations, each of which they may dispute once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from callcenter.domain import quality as qrules
from callcenter.domain.recordings import RangeNotSatisfiable, parse_range
from callcenter.ports.recordings import RecordingNotFound
from callcenter.services import quality
from callcenter.services.access import staff_actor
from callcenter.services.recordings import RecordingError, RecordingNotVisible, RecordingService
from callcenter.services.staff_sessions import Principal
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Staff
from callcenter.store.models.recordings import QaEvaluation, QaForm, Recording
from callcenter.web.errors import ApiError
from callcenter.i18n import t
from callcenter.web.pages.common import lang_of, render as _render_page, roles, tz_of
from callcenter.web.text import MultilineText, Text, has_control

router = APIRouter(include_in_schema=False)
Id = Path(ge=1, le=2**31 - 1)  # a recording id
EvId = Path(ge=1, le=2**31 - 1)  # an evaluation id (a Path object is bound to one parameter name)
LISTENERS = ("agent", "supervisor", "admin", "qa")
SUP = ("supervisor", "admin")


def render(request: Request, name: str, principal: Principal, **ctx: Any) -> Response:
    """A page with ``q('key')``: the texts of ``callcenter/locales/<lang>/recordings_web.yaml``."""
    lang = lang_of(request)
    return _render_page(request, name, principal,
                        q=lambda key, **p: t(f"recordings_web.{key}", lang, **p), **ctx)


def _core(request: Request) -> Any:
    return request.app.state.core


def _service(request: Request) -> RecordingService:
    service = _core(request).recordings
    if service is None:
        raise ApiError(503, "recordings_off")
    return service


async def _db(request: Request, fn: Any) -> Any:
    return await anyio.to_thread.run_sync(run_in_transaction, _core(request).sessions, fn)


# --- audio ------------------------------------------------------------------------------------------------

def _audio(request: Request, principal: Principal, recording_id: int, download: bool) -> Response:
    service = _service(request)
    actor = staff_actor(principal)
    size_hint = None
    header = None if download else request.headers.get("range")
    try:
        playable = service.authorize(actor, recording_id, download=download, detail=f"range={header or 'all'}")
        size_hint = playable.size
        try:
            wanted = parse_range(header, playable.size)
        except RangeNotSatisfiable:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{playable.size}",
                                                      "Accept-Ranges": "bytes"})
        start, end = (wanted.start, wanted.end) if wanted else (0, playable.size - 1)
        data = service.read(playable, start, end)
    except (RecordingNotVisible, RecordingNotFound):
        raise ApiError(404, "not_found") from None
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(len(data))}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="{playable.filename}"'
    if wanted is not None:
        headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{size_hint}"
        return Response(data, status_code=206, media_type="audio/wav", headers=headers)
    return Response(data, media_type="audio/wav", headers=headers)


@router.get("/recordings/{recording_id}/audio")
async def audio(request: Request, recording_id: int = Id, principal: Principal = roles(*LISTENERS)) -> Response:
    return await anyio.to_thread.run_sync(_audio, request, principal, recording_id, False)


@router.get("/recordings/{recording_id}/download")
async def download(request: Request, recording_id: int = Id, principal: Principal = roles(*LISTENERS)) -> Response:
    return await anyio.to_thread.run_sync(_audio, request, principal, recording_id, True)


# --- list and legal hold -------------------------------------------------------------------------------------

def _row(r: Recording, names: dict[int, str], tz: Any) -> dict[str, Any]:
    return {"id": r.id, "call_ref": r.call_ref, "agent": names.get(r.agent_id or 0, "—"), "client_id": r.client_id,
            "started_at": r.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"), "duration_s": r.duration_s,
            "paused": r.paused_spans, "retention": r.retention_class,
            "expires": r.expires_at.astimezone(tz).strftime("%Y-%m-%d") if r.expires_at else "",
            "legal_hold": r.legal_hold, "hold_reason": r.legal_hold_reason, "sha256": r.sha256[:12],
            "playable": r.state == "stopped" and r.size_bytes > 0, "state": r.state}


@router.get("/recordings", response_class=HTMLResponse)
async def recordings_page(request: Request, principal: Principal = roles(*LISTENERS),
                          agent_id: int | None = Query(None, ge=1, le=2**31 - 1)) -> Response:
    service = _service(request)
    actor = staff_actor(principal)
    if principal.role == "agent" and not service.agent_may_listen:
        raise ApiError(403, "forbidden")
    tz = tz_of(request)

    def load(s: Any) -> list[dict[str, Any]]:
        names = {sid: n for sid, n in s.query(Staff.id, Staff.display_name)}
        return [_row(r, names, tz) for r in service.listing(s, actor, agent_id=agent_id)]

    rows = await _db(request, load)
    return render(request, "recordings.html", principal, rows=rows)


@router.post("/recordings/{recording_id}/hold")
async def legal_hold(*, request: Request, recording_id: int = Id, principal: Principal = roles("admin"),
                     action: Annotated[Text, Form(pattern="^(hold|release)$")],
                     reason: Annotated[MultilineText, Form(max_length=500)] = "") -> Response:
    service = _service(request)
    try:
        await anyio.to_thread.run_sync(lambda: service.set_legal_hold(staff_actor(principal), recording_id,
                                                                      action == "hold", reason))
    except RecordingNotVisible:
        raise ApiError(404, "not_found") from None
    except RecordingError as exc:
        if exc.code == "not_found":
            raise ApiError(404, "not_found") from None
        raise ApiError(422 if exc.code == "reason_required" else 409, exc.code) from None
    return RedirectResponse("/recordings", status_code=303)


# --- QA staff: queue, listen and evaluate ---------------------------------------------------------------------

@router.get("/qa", response_class=HTMLResponse)
async def qa_home(request: Request, principal: Principal = roles("qa", "supervisor", "admin")) -> Response:
    def load(s: Any) -> dict[str, Any]:
        recent = s.query(QaEvaluation).order_by(QaEvaluation.id.desc()).limit(50).all()
        if principal.role == "supervisor":
            recent = [e for e in recent if e.group_id in principal.group_ids]
        names = {sid: n for sid, n in s.query(Staff.id, Staff.display_name)}
        items = quality.queue(s)
        if principal.role == "supervisor":
            service = _service(request)
            actor = staff_actor(principal)
            items = [q for q in items if service.may_listen(s, actor, s.get(Recording, q["recording_id"]))]
        return {"queue": items, "recent": recent, "names": names}

    data = await _db(request, load)
    return render(request, "qa.html", principal, tz=tz_of(request), **data)


@router.get("/qa/recordings/{recording_id}", response_class=HTMLResponse)
async def qa_recording(request: Request, recording_id: int = Id,
                       principal: Principal = roles("qa", "supervisor", "admin")) -> Response:
    service = _service(request)
    actor = staff_actor(principal)
    tz = tz_of(request)

    def load(s: Any) -> dict[str, Any]:
        try:
            rec = service.visible(s, actor, recording_id)
        except RecordingNotVisible:
            raise ApiError(404, "not_found") from None
        names = {sid: n for sid, n in s.query(Staff.id, Staff.display_name)}
        evaluations = s.query(QaEvaluation).filter(QaEvaluation.recording_id == rec.id).all()
        return {"r": _row(rec, names, tz), "forms": quality.forms(s), "evaluations": evaluations, "names": names}

    data = await _db(request, load)
    return render(request, "qa_recording.html", principal, error="", **data)


@router.post("/qa/recordings/{recording_id}/evaluate")
async def qa_evaluate(request: Request, recording_id: int = Id, principal: Principal = roles("qa")) -> Response:
    form_data = await request.form()
    fields = {k: v for k, v in form_data.items() if isinstance(v, str)}
    try:
        form_id = int(fields.get("form_id", ""))
    except ValueError:
        raise ApiError(422, "bad_form") from None
    comment = fields.get("comment", "")[:4000]
    if any(has_control(v, multiline=True) for v in fields.values()):
        raise ApiError(422, "control_characters")
    service = _service(request)
    core = _core(request)

    def work(s: Any) -> int:
        form = s.get(QaForm, form_id)
        if form is None:
            raise quality.QualityError("no_form")
        answers: dict[str, Any] = {}
        for item in quality.form_items(form):
            raw = fields.get(f"a_{item.key}", "")
            if item.kind == "yes_no":
                answers[item.key] = True if raw == "yes" else False if raw == "no" else None
            elif item.kind == "scale":
                answers[item.key] = int(raw) if raw.isdigit() else None
            else:
                answers[item.key] = raw[:2000]
        ev = quality.evaluate(s, service, staff_actor(principal), recording_id, form_id, answers, comment,
                              core.clock(), tz_of(request))
        return int(ev.id)

    try:
        await _db(request, work)
    except quality.QualityError as exc:
        status = 404 if exc.code == "not_found" else 403 if exc.code == "forbidden" else 422
        raise ApiError(status, exc.code, message=exc.detail or None) from None
    return RedirectResponse(f"/qa/recordings/{recording_id}", status_code=303)


# --- supervisors: forms, sampling, scores, disputes ---------------------------------------------------------

def _month(request: Request, month: str | None) -> str:
    if month:
        if len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit() or not 1 <= int(month[5:]) <= 12:
            raise ApiError(422, "bad_month")
        return month
    return str(_core(request).clock().astimezone(tz_of(request)).strftime("%Y-%m"))


@router.get("/supervisor/quality", response_class=HTMLResponse)
async def quality_page(*, request: Request, principal: Principal = roles(*SUP),
                       month: Annotated[Text | None, Query(max_length=7)] = None) -> Response:
    m = _month(request, month)
    scope = None if principal.is_admin else principal.group_ids
    actor = staff_actor(principal)
    today = _core(request).clock().astimezone(tz_of(request)).date()

    def load(s: Any) -> dict[str, Any]:
        return {"forms": quality.forms(s, active_only=False), "by_agent": quality.scores_by_agent(s, m, scope),
                "by_group": quality.scores_by_group(s, m, scope), "disputes": quality.disputed(s, actor),
                "names": {sid: n for sid, n in s.query(Staff.id, Staff.display_name)}}

    data = await _db(request, load)
    return render(request, "quality.html", principal, month=m, week=qrules.iso_week(today),
                  last_week=qrules.iso_week(today - timedelta(days=7)), error="", **data)


@router.post("/supervisor/quality/forms")
async def create_form(*, request: Request, principal: Principal = roles(*SUP),
                      name: Annotated[Text, Form(max_length=128)], items: Annotated[MultilineText, Form(max_length=8000)],
                      pass_pct: float = Form(80.0, ge=0, le=100)) -> Response:
    core = _core(request)
    try:
        parsed = qrules.parse_form_lines(items)
        await _db(request, lambda s: quality.create_form(s, staff_actor(principal), name, parsed, pass_pct, core.clock()))
    except qrules.FormError as exc:
        raise ApiError(422, "bad_form", message=str(exc)) from None
    except quality.QualityError as exc:
        raise ApiError(422, exc.code, message=exc.detail or None) from None
    return RedirectResponse("/supervisor/quality", status_code=303)


@router.post("/supervisor/quality/sample")
async def sample(*, request: Request, principal: Principal = roles(*SUP),
                 week: Annotated[Text, Form(pattern=r"^\d{4}-W\d{2}$")]) -> Response:
    core = _core(request)
    st = core.settings
    kwargs: dict[str, Any] = {"rate": st.qa_sample_rate} if st.qa_sample_rate > 0 else {"count": st.qa_sample_count}
    try:
        await _db(request, lambda s: quality.sample_week(s, week, tz_of(request), core.clock(), **kwargs))
    except quality.QualityError as exc:
        raise ApiError(422, exc.code, message=exc.detail or None) from None
    return RedirectResponse("/qa", status_code=303)


@router.post("/supervisor/quality/evaluations/{evaluation_id}/resolve")
async def resolve(*, request: Request, evaluation_id: int = EvId, principal: Principal = roles(*SUP),
                  decision: Annotated[Text, Form(pattern="^(uphold|revise)$")],
                  note: Annotated[MultilineText, Form(max_length=2000)] = "",
                  score_pct: float | None = Form(None, ge=0, le=100)) -> Response:
    core = _core(request)
    try:
        await _db(request, lambda s: quality.resolve(s, staff_actor(principal), evaluation_id, decision, note,
                                                     core.clock(), score_pct))
    except quality.QualityError as exc:
        raise ApiError(404 if exc.code == "not_found" else 409 if exc.code == "bad_state" else 422, exc.code) from None
    return RedirectResponse("/supervisor/quality", status_code=303)


# --- agents: their evaluations, disputes ---------------------------------------------------------------------

@router.get("/agent/evaluations", response_class=HTMLResponse)
async def my_evaluations(request: Request, principal: Principal = roles("agent")) -> Response:
    def load(s: Any) -> dict[str, Any]:
        evs = quality.of_agent(s, principal.staff_id)
        form_names = {f.id: f.name for f in s.query(QaForm)}
        items = {f.id: quality.form_items(f) for f in s.query(QaForm)}
        return {"evaluations": evs, "form_names": form_names, "items": items}

    data = await _db(request, load)
    return render(request, "my_evaluations.html", principal, tz=tz_of(request),
                  may_listen=_service(request).agent_may_listen, lang_code=lang_of(request), **data)


@router.post("/agent/evaluations/{evaluation_id}/dispute")
async def dispute(*, request: Request, evaluation_id: int = EvId, principal: Principal = roles("agent"),
                  text: Annotated[MultilineText, Form(max_length=2000)]) -> Response:
    core = _core(request)
    try:
        await _db(request, lambda s: quality.dispute(s, staff_actor(principal), evaluation_id, text, core.clock()))
    except quality.QualityError as exc:
        raise ApiError(404 if exc.code == "not_found" else 409 if exc.code == "bad_state" else 422, exc.code) from None
    return RedirectResponse("/agent/evaluations", status_code=303)
