"""The administrators' area (/admin): staff, lockouts, the do-not-call list, hotline bulletins, dispositions and
pause codes, the audit log. Thin: every change is a use case of ``callcenter.services.admin`` (or the throttles'
unlock), audit-logged there; a refusal re-renders the page with its sentence. Administrators only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from callcenter.i18n import t
from callcenter.services import admin
from callcenter.services.staff_sessions import Principal
from callcenter.services.throttles import Scope, ThrottlePolicies, Throttles, UnlockRefused
from callcenter.store.models.dialer import CAMPAIGN_KINDS
from callcenter.web.errors import ApiError
from callcenter.web.pages.common import lang_of, render, roles, tz_of
from callcenter.web.text import MultilineText, Text

from callcenter.store.models.phones import PHONE_KINDS

router = APIRouter(prefix="/admin", include_in_schema=False)
ADMIN = roles("admin")
SECTIONS = ("home", "staff", "phones", "locks", "dnc", "bulletins", "codes", "audit")


def _core(request: Request) -> Any:
    return request.app.state.core


async def _run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


def _throttles(core: Any) -> Throttles:
    return Throttles(core.sessions, ThrottlePolicies.from_settings(core.settings), core.clock)


def _back(section: str, notice: str = "", **query: str) -> RedirectResponse:
    params = "&".join(f"{k}={v}" for k, v in {"notice": notice, **query}.items() if v)
    return RedirectResponse(f"/admin/{section}" + (f"?{params}" if params else ""), status_code=303)


NOTICES = {"saved": "admin.saved", "added": "admin.saved", "removed": "admin.dnc.removed"}


async def _load(request: Request, principal: Principal, section: str, q: str = "",
                f: admin.AuditFilter | None = None) -> dict[str, Any]:
    core = _core(request)
    lang, tz = lang_of(request), tz_of(request)
    if section == "home":
        staff = await _run(admin.list_staff, core, principal)
        locks = await _run(_throttles(core).counting, principal)
        return {"n_staff": sum(1 for s in staff if s.active), "n_locks": len(locks),
                "n_dnc": await _run(admin.count_dnc, core)}
    if section == "staff":
        return {"staff": await _run(admin.list_staff, core, principal), "groups": await _run(admin.list_groups, core),
                "roles": admin.ROLES}
    if section == "phones":
        from callcenter.services import phones

        return {"phones": await _run(phones.list_phones, core, principal),
                "staff": [st for st in await _run(admin.list_staff, core, principal) if st.active],
                "kinds": PHONE_KINDS}
    if section == "locks":
        return {"locks": await _run(_throttles(core).counting, principal), "scopes": [s.value for s in Scope]}
    if section == "dnc":
        return {"entries": await _run(admin.search_dnc, core, principal, q), "q": q,
                "total": await _run(admin.count_dnc, core), "campaigns": await _run(_campaigns, core)}
    if section == "bulletins":
        return {"bulletins": await _run(admin.list_bulletins, core, principal), "langs": admin.LANGS,
                "now": core.clock()}
    if section == "codes":
        return {"dispositions": await _run(admin.list_codes, core, "disposition"),
                "pauses": await _run(admin.list_codes, core, "pause"), "kinds": CAMPAIGN_KINDS}
    if section == "audit":
        f = f or admin.AuditFilter()
        return {"entries": await _run(admin.audit_entries, core, principal, f, lang, tz), "f": f,
                "staff_choices": await _run(admin.staff_choices, core),
                "actions": [(a, admin.action_label(a, lang)) for a in await _run(admin.audit_actions, core)]}
    raise ApiError(404, "not_found")


def _campaigns(core: Any) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from callcenter.store.db import run_in_transaction
    from callcenter.store.models.dialer import Campaign

    return run_in_transaction(core.sessions, lambda s: [(c.id, c.name) for c in s.execute(
        select(Campaign).order_by(Campaign.id.desc())).scalars()])


async def _page(request: Request, principal: Principal, section: str, *, error: str = "", notice: str = "",
                status_code: int = 200, q: str = "", f: admin.AuditFilter | None = None, **extra: Any) -> Response:
    data = await _load(request, principal, section, q, f)
    if not notice:
        key = request.query_params.get("notice", "")
        notice = t(NOTICES[key], lang_of(request)) if key in NOTICES else ""
    return render(request, f"admin/{section}.html", principal, section=section, sections=SECTIONS, error=error,
                  notice=notice, tz=tz_of(request), **data, **extra, status_code=status_code)


async def _refused(request: Request, principal: Principal, section: str, exc: admin.AdminRefused) -> Response:
    return await _page(request, principal, section, error=exc.sentence(lang_of(request)),
                       status_code=exc.status if exc.status != 403 else 403)


# --- overview ----------------------------------------------------------------------------------------------

@router.get("", response_class=HTMLResponse)
async def home(request: Request, principal: Principal = ADMIN) -> Response:
    return await _page(request, principal, "home")


# --- staff -------------------------------------------------------------------------------------------------

@router.get("/staff", response_class=HTMLResponse)
async def staff_page(request: Request, principal: Principal = ADMIN) -> Response:
    return await _page(request, principal, "staff")


def _group(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@router.post("/staff", response_class=HTMLResponse)
async def create_staff(*, request: Request, principal: Principal = ADMIN, username: Annotated[Text, Form(max_length=64)],
                       display_name: Annotated[Text, Form(max_length=64)], role: Annotated[Text, Form(max_length=16)],
                       password: Annotated[Text, Form(max_length=128)], group_id: Annotated[Text, Form(max_length=12)] = "",
                       extension: Annotated[Text, Form(max_length=32)] = "", back_office: bool = Form(False)) -> Response:
    try:
        await _run(admin.create_staff, _core(request), principal, username=username, display_name=display_name,
                   role=role, password=password, group_id=_group(group_id), extension=extension, back_office=back_office)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "staff", exc)
    return await _page(request, principal, "staff", notice=t("admin.staff.created", lang_of(request), name=display_name))


@router.post("/staff/{staff_id}", response_class=HTMLResponse)
async def update_staff(*, request: Request, staff_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN,
                       display_name: Annotated[Text, Form(max_length=64)], role: Annotated[Text, Form(max_length=16)],
                       group_id: Annotated[Text, Form(max_length=12)] = "", extension: Annotated[Text, Form(max_length=32)] = "",
                       back_office: bool = Form(False)) -> Response:
    try:
        await _run(admin.update_staff, _core(request), principal, staff_id, display_name=display_name, role=role,
                   group_id=_group(group_id), extension=extension, back_office=back_office)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "staff", exc)
    return _back("staff", "saved")


@router.post("/staff/{staff_id}/active", response_class=HTMLResponse)
async def staff_active(*, request: Request, staff_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN,
                       active: bool = Form(...), reason: Annotated[MultilineText, Form(max_length=500)] = "") -> Response:
    try:
        await _run(admin.set_staff_active, _core(request), principal, staff_id, active, reason)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "staff", exc)
    return _back("staff", "saved")


@router.post("/staff/{staff_id}/password", response_class=HTMLResponse)
async def staff_password(*, request: Request, staff_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN) -> Response:
    core = _core(request)
    try:
        password = await _run(admin.reset_password, core, principal, staff_id)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "staff", exc)
    name = next((s.display_name for s in await _run(admin.list_staff, core, principal) if s.id == staff_id), "")
    return await _page(request, principal, "staff", notice=t("admin.staff.reset_done", lang_of(request), name=name,
                                                             password=password))


# --- agents' phones (issue 18) ------------------------------------------------------------------------------

@router.get("/phones", response_class=HTMLResponse)
async def phones_page(request: Request, principal: Principal = ADMIN) -> Response:
    return await _page(request, principal, "phones")


@router.post("/phones", response_class=HTMLResponse)
async def phone_set(*, request: Request, principal: Principal = ADMIN, staff_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
                    kind: Annotated[Text, Form(max_length=8)], endpoint: Annotated[Text, Form(max_length=40)] = "",
                    password: Annotated[Text, Form(max_length=128)] = "") -> Response:
    from callcenter.services import phones

    core, lang = _core(request), lang_of(request)
    try:
        name, secret, published = await _run(phones.set_phone, core, principal, core.phones, staff_id, kind,
                                             endpoint=endpoint, password=password)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "phones", exc)
    notice = t(f"admin.phones.published.{published}", lang)
    if secret:
        notice += " · " + t("admin.phones.new_secret", lang, endpoint=name, password=secret)
    return await _page(request, principal, "phones", notice=notice)


@router.post("/phones/{phone_id}/remove", response_class=HTMLResponse)
async def phone_remove(*, request: Request, phone_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN) -> Response:
    from callcenter.services import phones

    core = _core(request)
    try:
        published = await _run(phones.remove_phone, core, principal, core.phones, phone_id)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "phones", exc)
    return await _page(request, principal, "phones", notice=t(f"admin.phones.published.{published}", lang_of(request)))


# --- lockouts ----------------------------------------------------------------------------------------------

@router.get("/locks", response_class=HTMLResponse)
async def locks_page(request: Request, principal: Principal = ADMIN) -> Response:
    return await _page(request, principal, "locks")


@router.post("/locks/unlock", response_class=HTMLResponse)
async def unlock(*, request: Request, principal: Principal = ADMIN, scope: Annotated[Text, Form(max_length=16)],
                 subject: Annotated[Text, Form(max_length=64)], reason: Annotated[MultilineText, Form(max_length=500)] = "") -> Response:
    lang = lang_of(request)
    try:
        result = await _run(_throttles(_core(request)).unlock, principal, scope, subject, reason)
    except UnlockRefused as exc:
        return await _page(request, principal, "locks", error=t(f"api.{exc.code}", lang), status_code=422)
    b = result.before
    return await _page(request, principal, "locks", notice=t("admin.locks.done", lang, scope=t(f"admin.scopes.{b.scope.value}", lang),
                                                             subject=b.subject, failures=b.failures))


# --- do not call -------------------------------------------------------------------------------------------

@router.get("/dnc", response_class=HTMLResponse)
async def dnc_page(request: Request, principal: Principal = ADMIN, q: Annotated[Text, Query(max_length=32)] = "") -> Response:
    return await _page(request, principal, "dnc", q=q)


def _campaign(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@router.post("/dnc", response_class=HTMLResponse)
async def dnc_add(*, request: Request, principal: Principal = ADMIN, phone: Annotated[Text, Form(max_length=32)],
                  campaign_id: Annotated[Text, Form(max_length=12)] = "", reason: Annotated[Text, Form(max_length=64)] = "") -> Response:
    try:
        await _run(admin.add_dnc, _core(request), principal, phone, campaign_id=_campaign(campaign_id), reason=reason)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "dnc", exc)
    return _back("dnc", "added")


@router.post("/dnc/{entry_id}/remove", response_class=HTMLResponse)
async def dnc_remove(*, request: Request, entry_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN,
                     reason: Annotated[MultilineText, Form(max_length=500)] = "") -> Response:
    try:
        await _run(admin.remove_dnc, _core(request), principal, entry_id, reason)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "dnc", exc)
    return _back("dnc", "removed")


@router.post("/dnc/import", response_class=HTMLResponse)
async def dnc_import(request: Request, principal: Principal = ADMIN, file: UploadFile = File(),
                     campaign_id: Annotated[Text, Form(max_length=12)] = "", reason: Annotated[Text, Form(max_length=64)] = "") -> Response:
    core = _core(request)
    raw = await file.read(core.settings.max_request_bytes + 1)
    if len(raw) > core.settings.max_request_bytes:
        raise ApiError(413, "request_too_large")
    try:
        report = await _run(admin.import_dnc, core, principal, raw, campaign_id=_campaign(campaign_id), reason=reason)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "dnc", exc)
    lang = lang_of(request)
    return await _page(request, principal, "dnc", report=report,
                       notice=t("admin.dnc.report", lang, added=report.count("added"),
                                duplicate=report.count("duplicate"), invalid=report.count("invalid")))


# --- bulletins ---------------------------------------------------------------------------------------------

@router.get("/bulletins", response_class=HTMLResponse)
async def bulletins_page(request: Request, principal: Principal = ADMIN) -> Response:
    return await _page(request, principal, "bulletins")


@router.post("/bulletins", response_class=HTMLResponse)
async def bulletin_publish(*, request: Request, principal: Principal = ADMIN, lang: Annotated[Text, Form(max_length=8)],
                           title: Annotated[Text, Form(max_length=128)], text: Annotated[MultilineText, Form(max_length=4000)],
                           publish_at: Annotated[Text, Form(max_length=32)] = "") -> Response:
    when: datetime | None = None
    if publish_at:
        try:
            when = datetime.fromisoformat(publish_at)
        except ValueError:
            return await _refused(request, principal, "bulletins", admin.AdminRefused("bad_time"))
        when = when if when.tzinfo else when.replace(tzinfo=tz_of(request))
    try:
        await _run(admin.publish_bulletin, _core(request), principal, lang=lang, title=title, text=text, publish_at=when)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "bulletins", exc)
    return _back("bulletins", "saved")


@router.post("/bulletins/{bulletin_id}", response_class=HTMLResponse)
async def bulletin_edit(*, request: Request, bulletin_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN,
                        lang: Annotated[Text, Form(max_length=8)], title: Annotated[Text, Form(max_length=128)],
                        text: Annotated[MultilineText, Form(max_length=4000)]) -> Response:
    try:
        await _run(admin.edit_bulletin, _core(request), principal, bulletin_id, lang=lang, title=title, text=text)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "bulletins", exc)
    return _back("bulletins", "saved")


@router.post("/bulletins/{bulletin_id}/withdraw", response_class=HTMLResponse)
async def bulletin_withdraw(*, request: Request, bulletin_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN) -> Response:
    try:
        await _run(admin.withdraw_bulletin, _core(request), principal, bulletin_id)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "bulletins", exc)
    return _back("bulletins", "saved")


# --- dispositions and pause codes --------------------------------------------------------------------------

@router.get("/codes", response_class=HTMLResponse)
async def codes_page(request: Request, principal: Principal = ADMIN) -> Response:
    return await _page(request, principal, "codes")


@router.post("/codes", response_class=HTMLResponse)
async def code_add(*, request: Request, principal: Principal = ADMIN, code_type: Annotated[Text, Form(max_length=12)],
                   code: Annotated[Text, Form(max_length=32)], label_zh: Annotated[Text, Form(max_length=64)],
                   label_en: Annotated[Text, Form(max_length=64)] = "", campaign_kind: Annotated[Text, Form(max_length=24)] = "",
                   position: int = Form(100, ge=0, le=10_000)) -> Response:
    try:
        await _run(admin.add_code, _core(request), principal, code_type=code_type, code=code, label_zh=label_zh,
                   label_en=label_en, campaign_kind=campaign_kind, position=position)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "codes", exc)
    return _back("codes", "saved")


@router.post("/codes/{code_id}", response_class=HTMLResponse)
async def code_update(*, request: Request, code_id: int = Path(ge=1, le=2**31 - 1), principal: Principal = ADMIN,
                      label_zh: Annotated[Text, Form(max_length=64)], label_en: Annotated[Text, Form(max_length=64)] = "",
                      position: int = Form(0, ge=0, le=10_000), active: bool = Form(False)) -> Response:
    try:
        await _run(admin.update_code, _core(request), principal, code_id, label_zh=label_zh, label_en=label_en,
                   position=position, active=active)
    except admin.AdminRefused as exc:
        return await _refused(request, principal, "codes", exc)
    return _back("codes", "saved")


# --- audit log ---------------------------------------------------------------------------------------------

def _filter(staff_id: str, action: str, first: str, last: str, text: str) -> admin.AuditFilter:
    try:
        d1 = date.fromisoformat(first) if first else None
        d2 = date.fromisoformat(last) if last else None
    except ValueError:
        raise admin.AdminRefused("bad_date") from None
    return admin.AuditFilter(staff_id=int(staff_id) if staff_id.isdigit() else None, action=action, first=d1,
                             last=d2, text=text.strip())


AuditQ = Annotated[Text, Query(max_length=64)]


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request, principal: Principal = ADMIN, staff_id: AuditQ = "", action: AuditQ = "",
                     first: AuditQ = "", last: AuditQ = "", text: AuditQ = "") -> Response:
    try:
        f = _filter(staff_id, action, first, last, text)
    except admin.AdminRefused as exc:
        return await _page(request, principal, "audit", error=exc.sentence(lang_of(request)), status_code=422)
    return await _page(request, principal, "audit", f=f, query=request.url.query)


@router.get("/audit.csv")
async def audit_csv(request: Request, principal: Principal = ADMIN, staff_id: AuditQ = "", action: AuditQ = "",
                    first: AuditQ = "", last: AuditQ = "", text: AuditQ = "") -> Response:
    lang = lang_of(request)
    try:
        f = _filter(staff_id, action, first, last, text)
    except admin.AdminRefused as exc:
        raise ApiError(422, exc.code, message=exc.sentence(lang)) from None
    body = await _run(admin.audit_csv, _core(request), principal, f, lang, tz_of(request))
    today = _core(request).clock().astimezone(tz_of(request)).date()
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="audit-{today}.csv"'})
