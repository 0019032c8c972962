"""The administrators' use cases: staff (create, disable, reset a password, role, group, extension), the
do-not-call list (search, add, remove, a CSV import with a report per row), the IVR bulletins, the desk's
dispositions and pause codes, and the audit log (filtered, exported). Unlocking a login or an IVR lockout is
``callcenter.services.throttles.Throttles.unlock`` (audited there).

Every change writes one ``AuditLog`` row in the change's own transaction: who (``staff_id`` and the username in
the detail), what (``action`` and the subject), when (``at``, from the clock handed in) and the values before
and after. Each use case takes ``Deps`` and an administrator principal; a refusal is an ``AdminRefused`` whose
code names a sentence in ``callcenter/locales/<lang>/admin.yaml`` (``admin.errors.<code>``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from callcenter.domain.masking import mask_phone
from callcenter.i18n import has, t
from callcenter.services.auth import hash_secret
from callcenter.services.deps import Deps
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, Bulletin, DeskCode, ServiceGroup, Staff, WebSession
from callcenter.store.models.admin import CODE_TYPES
from callcenter.store.models.dialer import CAMPAIGN_KINDS, Campaign, DncEntry

ROLES = ("agent", "supervisor", "qa", "admin")
LANGS = ("zh-CN", "en")
MIN_PASSWORD = 10
USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
EXTENSION = re.compile(r"^[0-9A-Za-z*#/@._:-]{0,32}$")
MAX_IMPORT_ROWS = 20_000


class AdminPrincipal(Protocol):
    @property
    def staff_id(self) -> int: ...

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> str: ...


class AdminRefused(Exception):
    """A change the rules refuse; ``sentence(lang)`` is what the administrator reads."""

    def __init__(self, code: str, status: int = 422, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.params = params

    def sentence(self, lang: str) -> str:
        return t(f"admin.errors.{self.code}", lang, **self.params)


def _require_admin(principal: AdminPrincipal | None) -> AdminPrincipal:
    if principal is None or principal.role != "admin":
        raise AdminRefused("admin_required", 403)
    return principal


def audit(s: Session, principal: AdminPrincipal, action: str, now: datetime, *, subject: str = "",
          before: dict[str, Any] | None = None, after: dict[str, Any] | None = None, reason: str = "",
          client_id: int | None = None) -> AuditLog:
    """Write one audit row (who, what, when, before/after) in the caller's transaction."""
    entry = AuditLog(at=now, staff_id=principal.staff_id, action=action[:32], client_id=client_id,
                     detail=json.dumps({"by": principal.username, "subject": subject, "reason": reason,
                                        "before": before or {}, "after": after or {}}, ensure_ascii=False))
    s.add(entry)
    s.flush()
    return entry


def _one_line(value: str, limit: int) -> str:
    return " ".join(value.split())[:limit]


# --------------------------------------------------------------------------------------------- staff
@dataclass(frozen=True)
class StaffRow:
    id: int
    username: str
    display_name: str
    role: str
    group_id: int | None
    group_name: str
    extension: str
    back_office: bool
    active: bool


def _staff_state(st: Staff) -> dict[str, Any]:
    return {"display_name": st.display_name, "role": st.role, "service_group_id": st.service_group_id,
            "extension": st.extension, "back_office": st.back_office, "active": st.active}


def list_staff(deps: Deps, principal: AdminPrincipal) -> list[StaffRow]:
    _require_admin(principal)

    def work(s: Session) -> list[StaffRow]:
        names = dict(s.execute(select(ServiceGroup.id, ServiceGroup.name)).all())
        return [StaffRow(st.id, st.username, st.display_name, st.role, st.service_group_id,
                         names.get(st.service_group_id, "") if st.service_group_id else "", st.extension,
                         st.back_office, st.active)
                for st in s.execute(select(Staff).order_by(Staff.active.desc(), Staff.role, Staff.username)).scalars()]

    return run_in_transaction(deps.sessions, work)


def list_groups(deps: Deps) -> list[tuple[int, str]]:
    return run_in_transaction(deps.sessions, lambda s: [
        (g.id, g.name) for g in s.execute(select(ServiceGroup).order_by(ServiceGroup.name)).scalars()])


def _check_staff_fields(s: Session, display_name: str, role: str, group_id: int | None, extension: str) -> None:
    if not display_name:
        raise AdminRefused("name_required")
    if role not in ROLES:
        raise AdminRefused("bad_role")
    if group_id is not None and s.get(ServiceGroup, group_id) is None:
        raise AdminRefused("no_group")
    if not EXTENSION.match(extension):
        raise AdminRefused("bad_extension")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AdminRefused("password_short", n=MIN_PASSWORD)


def create_staff(deps: Deps, principal: AdminPrincipal, *, username: str, display_name: str, role: str,
                 password: str, group_id: int | None = None, extension: str = "", back_office: bool = False) -> int:
    _require_admin(principal)
    username, display_name, extension = username.strip().lower(), _one_line(display_name, 64), extension.strip()
    if not USERNAME.match(username):
        raise AdminRefused("bad_username")
    _check_password(password)
    hashed = hash_secret(password)
    now = deps.clock()

    def work(s: Session) -> int:
        _check_staff_fields(s, display_name, role, group_id, extension)
        if s.execute(select(Staff.id).where(Staff.username == username)).first() is not None:
            raise AdminRefused("username_taken", 409)
        st = Staff(username=username, display_name=display_name, password_hash=hashed, role=role,
                   service_group_id=group_id, extension=extension, back_office=back_office, active=True)
        s.add(st)
        s.flush()
        audit(s, principal, "staff_create", now, subject=username, after=_staff_state(st))
        return st.id

    return run_in_transaction(deps.sessions, work)


def _staff(s: Session, staff_id: int) -> Staff:
    st = s.get(Staff, staff_id)
    if st is None:
        raise AdminRefused("no_staff", 404)
    return st


def _end_sessions(s: Session, staff_id: int) -> int:
    result = s.execute(delete(WebSession).where(WebSession.staff_id == staff_id))
    return int(getattr(result, "rowcount", 0) or 0)


def update_staff(deps: Deps, principal: AdminPrincipal, staff_id: int, *, display_name: str, role: str,
                 group_id: int | None, extension: str, back_office: bool) -> None:
    """Change a staff member's name, role, service group, phone/extension or back-office flag. A role change
    ends their sessions (their next request logs in again with the new rights)."""
    _require_admin(principal)
    display_name, extension = _one_line(display_name, 64), extension.strip()
    now = deps.clock()

    def work(s: Session) -> None:
        st = _staff(s, staff_id)
        _check_staff_fields(s, display_name, role, group_id, extension)
        if st.id == principal.staff_id and role != "admin":
            raise AdminRefused("not_yourself", 409)
        before = _staff_state(st)
        st.display_name, st.role, st.service_group_id = display_name, role, group_id
        st.extension, st.back_office = extension, back_office
        after = _staff_state(st)
        if before == after:
            return
        if before["role"] != role:
            _end_sessions(s, st.id)
        changed = [k for k in before if before[k] != after[k]]
        audit(s, principal, "staff_update", now, subject=st.username,
              before={k: before[k] for k in changed}, after={k: after[k] for k in changed})

    run_in_transaction(deps.sessions, work)


def set_staff_active(deps: Deps, principal: AdminPrincipal, staff_id: int, active: bool, reason: str = "") -> None:
    """Disable (their sessions end at once; the login refuses them) or enable a staff member again."""
    _require_admin(principal)
    now = deps.clock()

    def work(s: Session) -> None:
        st = _staff(s, staff_id)
        if st.id == principal.staff_id and not active:
            raise AdminRefused("not_yourself", 409)
        if st.active == active:
            return
        st.active = active
        ended = 0 if active else _end_sessions(s, st.id)
        audit(s, principal, "staff_enable" if active else "staff_disable", now, subject=st.username,
              before={"active": not active}, after={"active": active, **({"sessions_ended": ended} if ended else {})},
              reason=_one_line(reason, 500))

    run_in_transaction(deps.sessions, work)


def reset_password(deps: Deps, principal: AdminPrincipal, staff_id: int, new_password: str = "") -> str:
    """Set a new password (a random one when none is given: returned once, never stored in clear or logged);
    the staff member's sessions end. The audit row records that it changed, never the password."""
    _require_admin(principal)
    password = new_password or secrets.token_urlsafe(9)
    _check_password(password)
    hashed = hash_secret(password)
    now = deps.clock()

    def work(s: Session) -> None:
        st = _staff(s, staff_id)
        st.password_hash = hashed
        ended = _end_sessions(s, st.id)
        audit(s, principal, "staff_password_reset", now, subject=st.username,
              before={}, after={"password": "changed", "sessions_ended": ended})

    run_in_transaction(deps.sessions, work)
    return password


# --------------------------------------------------------------------------------------------- do not call
@dataclass(frozen=True)
class DncRow:
    id: int
    phone: str  # masked
    campaign_id: int | None
    campaign_name: str
    reason: str
    added_by: str
    at: datetime


def _normalise(phone: str) -> str | None:
    from callcenter.services.dialer.leads import InvalidPhone, normalise_phone

    try:
        return normalise_phone(phone)
    except InvalidPhone:
        return None


def search_dnc(deps: Deps, principal: AdminPrincipal, query: str = "", *, limit: int = 200) -> list[DncRow]:
    """Entries whose number contains the digits typed (or the whole list, newest first), numbers masked."""
    _require_admin(principal)
    digits = "".join(ch for ch in query if ch.isdigit())

    def work(s: Session) -> list[DncRow]:
        q = (select(DncEntry, Campaign.name, Staff.username).outerjoin(Campaign, Campaign.id == DncEntry.campaign_id)
             .outerjoin(Staff, Staff.id == DncEntry.added_by).order_by(DncEntry.at.desc(), DncEntry.id.desc()))
        if digits:
            q = q.where(DncEntry.phone.contains(digits))
        return [DncRow(e.id, mask_phone(e.phone), e.campaign_id, name or "", e.reason, who or "", e.at)
                for e, name, who in s.execute(q.limit(limit))]

    return run_in_transaction(deps.sessions, work)


def count_dnc(deps: Deps) -> int:
    return run_in_transaction(deps.sessions, lambda s: int(s.execute(select(func.count()).select_from(DncEntry)).scalar_one()))


def _check_campaign(s: Session, campaign_id: int | None) -> None:
    if campaign_id is not None and s.get(Campaign, campaign_id) is None:
        raise AdminRefused("no_campaign", 404)


def _listed(s: Session, e164: str, campaign_id: int | None) -> bool:
    q = select(DncEntry.id).where(DncEntry.phone == e164)
    q = q.where(DncEntry.campaign_id.is_(None) if campaign_id is None else DncEntry.campaign_id == campaign_id)
    return s.execute(q.limit(1)).first() is not None


def add_dnc(deps: Deps, principal: AdminPrincipal, phone: str, *, campaign_id: int | None = None,
            reason: str = "") -> int:
    """One number on the global list (``campaign_id`` None) or one campaign's; its open leads become DNC."""
    from callcenter.services.dialer.campaigns import add_dnc_in

    _require_admin(principal)
    e164 = _normalise(phone)
    if e164 is None:
        raise AdminRefused("bad_phone")
    reason = _one_line(reason, 64)
    now = deps.clock()

    def work(s: Session) -> int:
        _check_campaign(s, campaign_id)
        if _listed(s, e164, campaign_id):
            raise AdminRefused("dnc_exists", 409)
        entry_id = add_dnc_in(s, e164, now, campaign_id=campaign_id, reason=reason or "admin", added_by=principal.staff_id)
        audit(s, principal, "dnc_add", now, subject=mask_phone(e164),
              after={"phone": mask_phone(e164), "campaign_id": campaign_id, "reason": reason})
        return entry_id

    return run_in_transaction(deps.sessions, work)


def remove_dnc(deps: Deps, principal: AdminPrincipal, entry_id: int, reason: str = "") -> None:
    _require_admin(principal)
    reason = _one_line(reason, 500)
    if not reason:
        raise AdminRefused("reason_required")
    now = deps.clock()

    def work(s: Session) -> None:
        entry = s.get(DncEntry, entry_id)
        if entry is None:
            raise AdminRefused("no_dnc", 404)
        shown = mask_phone(entry.phone)
        before = {"phone": shown, "campaign_id": entry.campaign_id, "reason": entry.reason}
        s.delete(entry)
        audit(s, principal, "dnc_remove", now, subject=shown, before=before, after={}, reason=reason)

    run_in_transaction(deps.sessions, work)


@dataclass(frozen=True)
class ImportRow:
    row: int  # 1-based, the header being row 1
    phone: str  # masked when valid, as typed (cut) otherwise
    outcome: str  # added / duplicate / invalid

    def sentence(self, lang: str) -> str:
        return t(f"admin.dnc.outcome.{self.outcome}", lang)


@dataclass
class ImportReport:
    rows: list[ImportRow] = field(default_factory=list)
    audit_id: int | None = None

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)


def _csv_rows(raw: bytes) -> Iterator[tuple[int, str, str]]:
    """(row number, phone, reason) of a CSV with a header naming ``phone`` (or 电话/手机) and maybe ``reason``
    (or 原因); a file without a header is one number per line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError:
            raise AdminRefused("bad_file") from None
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    if not rows:
        raise AdminRefused("empty_file")
    header = [h.strip().lower() for h in rows[0]]
    phone_names, reason_names = ("phone", "mobile", "电话", "手机", "号码"), ("reason", "原因", "备注")
    if any(h in phone_names for h in header):
        pi = next(i for i, h in enumerate(header) if h in phone_names)
        ri = next((i for i, h in enumerate(header) if h in reason_names), None)
        body, start = rows[1:], 2
    else:
        pi, ri, body, start = 0, 1 if len(rows[0]) > 1 else None, rows, 1
    if len(body) > MAX_IMPORT_ROWS:
        raise AdminRefused("too_many_rows", n=MAX_IMPORT_ROWS)
    for n, row in enumerate(body, start=start):
        if not any(cell.strip() for cell in row):
            continue
        yield n, row[pi].strip() if pi < len(row) else "", row[ri].strip() if ri is not None and ri < len(row) else ""


def import_dnc(deps: Deps, principal: AdminPrincipal, raw: bytes, *, campaign_id: int | None = None,
               reason: str = "") -> ImportReport:
    """A CSV of numbers onto one list, all or nothing per file, with the outcome of every row: added,
    already listed (in the file or the list) or not a phone number. One audit row for the import (its counts)."""
    from callcenter.services.dialer.campaigns import add_dnc_in

    _require_admin(principal)
    parsed = list(_csv_rows(raw))
    reason = _one_line(reason, 64) or "import"
    now = deps.clock()

    def work(s: Session) -> ImportReport:
        _check_campaign(s, campaign_id)
        report = ImportReport()
        seen: set[str] = set()
        for n, phone, row_reason in parsed:
            e164 = _normalise(phone)
            if e164 is None:
                report.rows.append(ImportRow(n, phone[:24], "invalid"))
                continue
            if e164 in seen or _listed(s, e164, campaign_id):
                report.rows.append(ImportRow(n, mask_phone(e164), "duplicate"))
                continue
            seen.add(e164)
            add_dnc_in(s, e164, now, campaign_id=campaign_id, reason=_one_line(row_reason, 64) or reason,
                       added_by=principal.staff_id)
            report.rows.append(ImportRow(n, mask_phone(e164), "added"))
        counts = {k: report.count(k) for k in ("added", "duplicate", "invalid")}
        report.audit_id = audit(s, principal, "dnc_import", now, subject=str(len(parsed)),
                                after={"campaign_id": campaign_id, **counts}, reason=reason).id
        return report

    return run_in_transaction(deps.sessions, work)


# --------------------------------------------------------------------------------------------- bulletins
@dataclass(frozen=True)
class BulletinRow:
    id: int
    lang: str
    title: str
    text: str
    published_at: datetime
    published_by: str
    live: bool  # the one the hotline reads now in its language


def list_bulletins(deps: Deps, principal: AdminPrincipal, *, limit: int = 100) -> list[BulletinRow]:
    _require_admin(principal)
    now = deps.clock()

    def work(s: Session) -> list[BulletinRow]:
        rows = s.execute(select(Bulletin, Staff.username).outerjoin(Staff, Staff.id == Bulletin.published_by)
                         .order_by(Bulletin.published_at.desc(), Bulletin.id.desc()).limit(limit)).all()
        live: dict[str, int] = {}
        for b, _ in rows:
            if b.published_at <= now and b.lang not in live:
                live[b.lang] = b.id
        return [BulletinRow(b.id, b.lang, b.title, b.text, b.published_at, who or "", live.get(b.lang) == b.id)
                for b, who in rows]

    return run_in_transaction(deps.sessions, work)


def _bulletin_fields(lang: str, title: str, text: str) -> tuple[str, str, str]:
    if lang not in LANGS:
        raise AdminRefused("bad_lang")
    title, text = _one_line(title, 128), text.strip()
    if not title or not text:
        raise AdminRefused("bulletin_empty")
    if len(text) > 2000:
        raise AdminRefused("bulletin_long", n=2000)
    return lang, title, text


def _bulletin_state(b: Bulletin) -> dict[str, Any]:
    return {"lang": b.lang, "title": b.title, "text": b.text, "published_at": b.published_at.isoformat()}


def publish_bulletin(deps: Deps, principal: AdminPrincipal, *, lang: str, title: str, text: str,
                     publish_at: datetime | None = None) -> int:
    """A bulletin the hotline reads (menu 4) from ``publish_at`` (now when None) on, the newest of its language."""
    _require_admin(principal)
    lang, title, text = _bulletin_fields(lang, title, text)
    now = deps.clock()

    def work(s: Session) -> int:
        b = Bulletin(lang=lang, title=title, text=text, published_at=publish_at or now, published_by=principal.staff_id)
        s.add(b)
        s.flush()
        audit(s, principal, "bulletin_publish", now, subject=title, after=_bulletin_state(b))
        return b.id

    return run_in_transaction(deps.sessions, work)


def edit_bulletin(deps: Deps, principal: AdminPrincipal, bulletin_id: int, *, lang: str, title: str, text: str) -> None:
    _require_admin(principal)
    lang, title, text = _bulletin_fields(lang, title, text)
    now = deps.clock()

    def work(s: Session) -> None:
        b = s.get(Bulletin, bulletin_id)
        if b is None:
            raise AdminRefused("no_bulletin", 404)
        before = _bulletin_state(b)
        b.lang, b.title, b.text = lang, title, text
        audit(s, principal, "bulletin_edit", now, subject=title, before=before, after=_bulletin_state(b))

    run_in_transaction(deps.sessions, work)


def withdraw_bulletin(deps: Deps, principal: AdminPrincipal, bulletin_id: int) -> None:
    _require_admin(principal)
    now = deps.clock()

    def work(s: Session) -> None:
        b = s.get(Bulletin, bulletin_id)
        if b is None:
            raise AdminRefused("no_bulletin", 404)
        before = _bulletin_state(b)
        s.delete(b)
        audit(s, principal, "bulletin_withdraw", now, subject=b.title, before=before)

    run_in_transaction(deps.sessions, work)


# --------------------------------------------------------------------------------------------- desk codes
@dataclass(frozen=True)
class CodeRow:
    id: int
    code_type: str
    campaign_kind: str  # "" = every kind
    code: str
    label_zh: str
    label_en: str
    position: int
    active: bool

    def label(self, lang: str) -> str:
        return self.label_en if lang == "en" and self.label_en else self.label_zh


def _code_row(c: DeskCode) -> CodeRow:
    return CodeRow(c.id, c.code_type, c.campaign_kind, c.code, c.label_zh, c.label_en, c.position, c.active)


def list_codes(deps: Deps, code_type: str) -> list[CodeRow]:
    if code_type not in CODE_TYPES:
        raise AdminRefused("bad_code_type")
    return run_in_transaction(deps.sessions, lambda s: [_code_row(c) for c in s.execute(
        select(DeskCode).where(DeskCode.code_type == code_type)
        .order_by(DeskCode.campaign_kind, DeskCode.position, DeskCode.id)).scalars()])


def codes_for(s: Session, code_type: str, campaign_kind: str | None) -> list[CodeRow]:
    """The active codes an agent may choose on a call of ``campaign_kind`` (None: no campaign, an inbound call):
    the kind's own codes first, then those for every kind not overridden by the kind's own."""
    kinds = [""] if not campaign_kind else [campaign_kind, ""]
    rows = s.execute(select(DeskCode).where(DeskCode.code_type == code_type, DeskCode.active.is_(True),
                                            DeskCode.campaign_kind.in_(kinds))
                     .order_by(DeskCode.campaign_kind.desc(), DeskCode.position, DeskCode.id)).scalars().all()
    seen: set[str] = set()
    out = []
    for c in rows:
        if c.code not in seen:
            seen.add(c.code)
            out.append(_code_row(c))
    return out


def _code_state(c: DeskCode) -> dict[str, Any]:
    return {"campaign_kind": c.campaign_kind, "code": c.code, "label_zh": c.label_zh, "label_en": c.label_en,
            "position": c.position, "active": c.active}


def _code_fields(campaign_kind: str, label_zh: str, label_en: str) -> tuple[str, str, str]:
    if campaign_kind and campaign_kind not in CAMPAIGN_KINDS:
        raise AdminRefused("bad_campaign_kind")
    label_zh, label_en = _one_line(label_zh, 64), _one_line(label_en, 64)
    if not label_zh:
        raise AdminRefused("label_required")
    return campaign_kind, label_zh, label_en


def add_code(deps: Deps, principal: AdminPrincipal, *, code_type: str, code: str, label_zh: str, label_en: str = "",
             campaign_kind: str = "", position: int = 100) -> int:
    _require_admin(principal)
    if code_type not in CODE_TYPES:
        raise AdminRefused("bad_code_type")
    code = code.strip().lower()
    if not CODE.match(code):
        raise AdminRefused("bad_code")
    campaign_kind, label_zh, label_en = _code_fields(campaign_kind, label_zh, label_en)
    now = deps.clock()

    def work(s: Session) -> int:
        if s.execute(select(DeskCode.id).where(DeskCode.code_type == code_type, DeskCode.campaign_kind == campaign_kind,
                                               DeskCode.code == code)).first() is not None:
            raise AdminRefused("code_exists", 409)
        c = DeskCode(code_type=code_type, campaign_kind=campaign_kind, code=code, label_zh=label_zh,
                     label_en=label_en or label_zh, position=position, active=True)
        s.add(c)
        s.flush()
        audit(s, principal, f"{code_type}_add", now, subject=label_zh, after=_code_state(c))
        return c.id

    return run_in_transaction(deps.sessions, work)


def update_code(deps: Deps, principal: AdminPrincipal, code_id: int, *, label_zh: str, label_en: str,
                position: int, active: bool) -> None:
    _require_admin(principal)
    now = deps.clock()

    def work(s: Session) -> None:
        c = s.get(DeskCode, code_id)
        if c is None:
            raise AdminRefused("no_code", 404)
        _, zh, en = _code_fields(c.campaign_kind, label_zh, label_en)
        before = _code_state(c)
        c.label_zh, c.label_en, c.position, c.active = zh, en or zh, position, active
        after = _code_state(c)
        changed = [k for k in before if before[k] != after[k]]
        if changed:
            audit(s, principal, f"{c.code_type}_update", now, subject=c.label_zh,
                  before={k: before[k] for k in changed}, after={k: after[k] for k in changed})

    run_in_transaction(deps.sessions, work)


# --------------------------------------------------------------------------------------------- audit log
@dataclass(frozen=True)
class AuditFilter:
    staff_id: int | None = None
    action: str = ""  # an exact action, or a family prefix ending in "_" (e.g. "staff_")
    first: date | None = None  # local dates, inclusive
    last: date | None = None
    text: str = ""  # contained in the detail (subject, reason, values)


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime  # local time
    who: str
    action: str
    action_label: str
    subject: str
    reason: str
    changes: list[tuple[str, str, str]]  # (field label, before, after), in words
    client_id: int | None


def action_label(action: str, lang: str) -> str:
    if has(f"admin.actions.{action}"):
        return t(f"admin.actions.{action}", lang)
    return t("admin.actions.other", lang)


TIME_FIELDS = frozenset({"published_at", "last_failure_at", "blocked_until"})


def _value(name: str, value: Any, lang: str, tz: ZoneInfo | None = None) -> str:
    if value is None or value == "":
        return "—"
    if name in TIME_FIELDS and isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
        return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if tz else value
    if isinstance(value, bool):
        return t("admin.flag_yes" if value else "admin.flag_no", lang)
    if name == "role" and has(f"admin.roles.{value}"):
        return t(f"admin.roles.{value}", lang)
    if name == "password":
        return t("admin.audit.password_changed", lang)
    if name == "scope" and has(f"admin.scopes.{value}"):
        return t(f"admin.scopes.{value}", lang)
    if name == "campaign_kind" and has(f"admin.kinds.{value}"):
        return t(f"admin.kinds.{value}", lang)
    if isinstance(value, dict):
        return "; ".join(f"{_field(k, lang)} {_value(k, v, lang, tz)}" for k, v in value.items())
    return str(value)


def _field(name: str, lang: str) -> str:
    return t(f"admin.fields.{name}", lang) if has(f"admin.fields.{name}") else t("admin.fields.other", lang)


def _changes(before: dict[str, Any], after: dict[str, Any], lang: str, tz: ZoneInfo) -> list[tuple[str, str, str]]:
    keys = [k for k in dict.fromkeys([*before, *after]) if k != "code"]  # a code's subject is its label
    return [(_field(k, lang), _value(k, before.get(k), lang, tz), _value(k, after.get(k), lang, tz)) for k in keys]


def _parse_detail(detail: str) -> dict[str, Any]:
    if detail.startswith("{"):
        try:
            data = json.loads(detail)
            return data if isinstance(data, dict) else {}
        except ValueError:
            return {}
    return {"subject": detail} if detail else {}


def _audit_query(f: AuditFilter, tz: ZoneInfo) -> Any:
    q = select(AuditLog, Staff.display_name, Staff.username).outerjoin(Staff, Staff.id == AuditLog.staff_id)
    if f.staff_id is not None:
        q = q.where(AuditLog.staff_id == f.staff_id)
    if f.action:
        q = q.where(AuditLog.action.startswith(f.action) if f.action.endswith("_") else AuditLog.action == f.action)
    if f.first is not None:
        q = q.where(AuditLog.at >= datetime.combine(f.first, time(0), tz))
    if f.last is not None:
        q = q.where(AuditLog.at < datetime.combine(f.last + timedelta(days=1), time(0), tz))
    if f.text:
        q = q.where(or_(AuditLog.detail.contains(f.text), Staff.username == f.text))
    return q.order_by(AuditLog.at.desc(), AuditLog.id.desc())


def audit_entries(deps: Deps, principal: AdminPrincipal, f: AuditFilter, lang: str, tz: ZoneInfo, *,
                  limit: int = 200, offset: int = 0) -> list[AuditRow]:
    _require_admin(principal)

    def work(s: Session) -> list[AuditRow]:
        out = []
        for e, name, username in s.execute(_audit_query(f, tz).limit(limit).offset(offset)):
            d = _parse_detail(e.detail)
            before, after = d.get("before"), d.get("after")
            if not isinstance(before, dict) or not isinstance(after, dict):
                before, after = {}, {}
            who = name or username or t("admin.audit.system", lang)
            out.append(AuditRow(e.id, e.at.astimezone(tz), who, e.action, action_label(e.action, lang),
                                str(d.get("subject", "")), str(d.get("reason", "")), _changes(before, after, lang, tz),
                                e.client_id))
        return out

    return run_in_transaction(deps.sessions, work)


def audit_actions(deps: Deps) -> list[str]:
    return run_in_transaction(deps.sessions, lambda s: sorted(
        s.execute(select(AuditLog.action).distinct()).scalars().all()))


def _cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value  # no formula injection into spreadsheets


def audit_csv(deps: Deps, principal: AdminPrincipal, f: AuditFilter, lang: str, tz: ZoneInfo, *,
              limit: int = 50_000) -> str:
    """The filtered audit log as CSV (UTF-8 with a BOM for spreadsheets), headers and values in ``lang``,
    times local."""
    rows = audit_entries(deps, principal, f, lang, tz, limit=limit)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([t(f"admin.audit.col.{c}", lang) for c in ("at", "who", "action", "subject", "changes", "reason")])
    for r in rows:
        changes = "; ".join(f"{name}: {b} → {a}" for name, b, a in r.changes)
        w.writerow([r.at.strftime("%Y-%m-%d %H:%M:%S"), _cell(r.who), r.action_label, _cell(r.subject),
                    _cell(changes), _cell(r.reason)])
    return "\ufeff" + out.getvalue()


def staff_choices(deps: Deps) -> list[tuple[int, str]]:
    return run_in_transaction(deps.sessions, lambda s: [
        (st.id, f"{st.display_name} ({st.username})") for st in s.execute(select(Staff).order_by(Staff.username)).scalars()])

