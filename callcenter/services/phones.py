"""Agents' phones as PJSIP endpoints (issue 18): administrators give an agent a desk SIP phone and/or the browser
softphone; the engine writes them for Asterisk (``pjsip_agents.conf``, included by the shipped ``pjsip.conf``) and
has res_pjsip reloaded; at login the agent picks which phone they sit at; the desk refuses "ready" while that
phone is not registered.

Credentials: SIP digest needs a secret the server can use, so the argon2 hash of a login password will not do.
What is stored is the digest's HA1 (``MD5(endpoint:realm:password)``, see ``store.models.phones``); the clear
password of a desk phone is shown once to the administrator (to type into the phone) and never stored or logged;
the browser softphone gets no password at all, only its HA1, on the agent's own authenticated page.

Every change is audit-logged (never the password or the HA1) in its own transaction; after it commits, the
include file is rewritten from the database (all active phones, so the file is always the whole truth) and the
publisher reloads res_pjsip.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.admin import AdminPrincipal, AdminRefused, _require_admin, _staff, audit
from callcenter.services.deps import Deps
from callcenter.store.db import run_in_transaction
from callcenter.store.models.core import Staff
from callcenter.store.models.phones import PHONE_KINDS, AgentPhone

log = logging.getLogger(__name__)

# endpoint names are section names in pjsip.conf and the user part of a SIP URI: no spaces, brackets, ';' or '@'
ENDPOINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MIN_SIP_PASSWORD = 12
# which template of the shipped pjsip.conf each kind of phone uses (endpoint, AOR)
TEMPLATES = {"sip": ("cc-desk-phone", "cc-aor-desk"), "webrtc": ("cc-webrtc", "cc-aor-webrtc")}


class PhonePublisher(Protocol):
    """Hands Asterisk the agents' endpoints: writes the include file and reloads res_pjsip. Returns what it did:
    ``reloaded``, ``written`` (file written, no reload account: an operator reloads), ``off`` (no file set)."""

    def publish(self, text: str) -> str: ...


class NoPublisher:
    def publish(self, text: str) -> str:
        return "off"


def ha1(endpoint: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{endpoint}:{realm}:{password}".encode("utf-8")).hexdigest()


def default_endpoint(kind: str, staff: Staff) -> str:
    """The browser's endpoint is ``webrtc-<staff id>``; a desk phone's is its extension, else ``sip-<staff id>``."""
    if kind == "webrtc":
        return f"webrtc-{staff.id}"
    ext = staff.extension.strip()
    return ext if ENDPOINT.match(ext) else f"sip-{staff.id}"


# --- the include file ------------------------------------------------------------------------------------------

def render_agents_conf(phones: list[AgentPhone]) -> str:
    """The text of ``pjsip_agents.conf``: for each active phone an endpoint, an auth and an AOR named after the
    endpoint, from the shipped templates. Only validated names and hex digests reach the file (no injection)."""
    out = ["; Written by the call-centre engine from its database (agents' phones, admin area). Do not edit:",
           "; the next change made in the admin area rewrites this file.", ""]
    for p in sorted(phones, key=lambda p: p.endpoint):
        if not p.active or not ENDPOINT.match(p.endpoint) or not re.fullmatch(r"[0-9a-f]{32}", p.ha1):
            continue
        endpoint_t, aor_t = TEMPLATES[p.kind]
        out += [f"; staff {p.staff_id}, {p.kind}",
                f"[{p.endpoint}]({endpoint_t})", f"auth = {p.endpoint}", f"aors = {p.endpoint}",
                f"set_var = CC_AGENT_ID={p.staff_id}", "",
                f"[{p.endpoint}](cc-auth)", f"username = {p.endpoint}", f"realm = {p.realm}",
                f"password_digest = MD5:{p.ha1}", "",
                f"[{p.endpoint}]({aor_t})", ""]
    return "\n".join(out) + "\n"


def _publish(deps: Deps, publisher: PhonePublisher) -> str:
    phones = run_in_transaction(deps.sessions, lambda s: list(s.scalars(select(AgentPhone))))
    try:
        return publisher.publish(render_agents_conf(phones))
    except OSError as exc:  # the change is saved; the file or the reload failed: the admin reads it
        log.warning("agents' phones: could not publish pjsip_agents.conf: %s", exc)
        return "failed"


# --- admin use cases ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PhoneRow:
    id: int
    staff_id: int
    username: str
    display_name: str
    kind: str
    endpoint: str
    active: bool
    registered: bool


def list_phones(deps: Deps, principal: AdminPrincipal) -> list[PhoneRow]:
    _require_admin(principal)
    now = deps.clock()

    def work(s: Session) -> list[PhoneRow]:
        rows = s.execute(select(AgentPhone, Staff).join(Staff, Staff.id == AgentPhone.staff_id)
                         .order_by(Staff.username, AgentPhone.kind)).all()
        return [PhoneRow(p.id, st.id, st.username, st.display_name, p.kind, p.endpoint, p.active,
                         p.registered_until is not None and p.registered_until > now) for p, st in rows]

    return run_in_transaction(deps.sessions, work)


def set_phone(deps: Deps, principal: AdminPrincipal, publisher: PhonePublisher, staff_id: int, kind: str, *,
              endpoint: str = "", password: str = "") -> tuple[str, str, str]:
    """Give a staff member a phone of ``kind`` (or change its endpoint / reset its password). Returns (endpoint,
    the clear password of a desk phone -- shown once, "" for the browser softphone --, what publishing did)."""
    _require_admin(principal)
    if kind not in PHONE_KINDS:
        raise AdminRefused("bad_phone_kind")
    endpoint = endpoint.strip()
    if endpoint and not ENDPOINT.match(endpoint):
        raise AdminRefused("bad_endpoint")
    if password and len(password) < MIN_SIP_PASSWORD:
        raise AdminRefused("weak_sip_password", min=MIN_SIP_PASSWORD)
    clear = password or secrets.token_urlsafe(12)
    realm = deps.settings.sip_realm
    now = deps.clock()

    def work(s: Session) -> str:
        st = _staff(s, staff_id)
        name = endpoint or default_endpoint(kind, st)
        taken = s.scalars(select(AgentPhone).where(AgentPhone.endpoint == name)).first()
        phone = s.scalars(select(AgentPhone).where(AgentPhone.staff_id == staff_id, AgentPhone.kind == kind)).first()
        if taken is not None and taken is not phone:
            raise AdminRefused("endpoint_taken", name=name)
        before = {"kind": phone.kind, "endpoint": phone.endpoint, "active": phone.active} if phone else {}
        if phone is None:
            phone = AgentPhone(staff_id=staff_id, kind=kind, endpoint=name, realm=realm, ha1="", active=True,
                               updated_at=now, registered_by="")
            s.add(phone)
        phone.endpoint, phone.realm, phone.active, phone.updated_at = name, realm, True, now
        phone.ha1 = ha1(name, realm, clear)
        phone.registered_until = None
        audit(s, principal, "phone_set", now, subject=st.username, before=before,
              after={"kind": kind, "endpoint": name, "active": True, "secret": "changed"})
        return name

    name = run_in_transaction(deps.sessions, work)
    return name, clear if kind == "sip" else "", _publish(deps, publisher)


def remove_phone(deps: Deps, principal: AdminPrincipal, publisher: PhonePublisher, phone_id: int) -> str:
    """Take a phone away (its endpoint leaves Asterisk at the reload); audited. Returns what publishing did."""
    _require_admin(principal)
    now = deps.clock()

    def work(s: Session) -> None:
        phone = s.get(AgentPhone, phone_id)
        if phone is None:
            raise AdminRefused("unknown_phone", 404)
        st = _staff(s, phone.staff_id)
        audit(s, principal, "phone_removed", now, subject=st.username,
              before={"kind": phone.kind, "endpoint": phone.endpoint, "active": phone.active}, after={})
        s.delete(phone)

    run_in_transaction(deps.sessions, work)
    return _publish(deps, publisher)


def republish(deps: Deps, publisher: PhonePublisher) -> str:
    """Rewrite the include file from the database (at engine start: the file always matches the database)."""
    return _publish(deps, publisher)


# --- the agent's side ------------------------------------------------------------------------------------------

class PhoneRefused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def phone_of(s: Session, staff_id: int, kind: str) -> AgentPhone | None:
    return s.scalars(select(AgentPhone).where(AgentPhone.staff_id == staff_id, AgentPhone.kind == kind,
                                              AgentPhone.active.is_(True))).first()


def phones_of(s: Session, staff_id: int) -> dict[str, str]:
    """The kinds of phone this agent may sit at, with their endpoints (``{"webrtc": "webrtc-7", "sip": "1004"}``)."""
    return {p.kind: p.endpoint for p in s.scalars(select(AgentPhone).where(
        AgentPhone.staff_id == staff_id, AgentPhone.active.is_(True)))}


def dial_string(s: Session, staff_id: int, kind: str) -> str:
    """``PJSIP/<endpoint>`` of the agent's phone of ``kind``: what the engine dials for the agent leg."""
    phone = phone_of(s, staff_id, kind)
    if phone is None:
        raise PhoneRefused("no_such_phone")
    return f"PJSIP/{phone.endpoint}"


def endpoint_of_dial(dial: str) -> str | None:
    return dial[len("PJSIP/"):] if dial.startswith("PJSIP/") and "@" not in dial else None


def registered(s: Session, dial: str, now: datetime) -> bool | None:
    """Is the phone behind the dial string registered? None when it is not one of our endpoints (a dial string
    given at login, a Local channel: the engine cannot tell, and does not stop the agent)."""
    endpoint = endpoint_of_dial(dial)
    if endpoint is None:
        return None
    phone = s.scalars(select(AgentPhone).where(AgentPhone.endpoint == endpoint)).first()
    if phone is None:
        return None
    return phone.registered_until is not None and phone.registered_until > now


def report_registration(deps: Deps, staff_id: int, kind: str, is_registered: bool) -> bool:
    """The softphone page's word on its registration (every few seconds while open, and at once on a change):
    registered for ``phone_report_stale_s`` more (a page that stops reporting -- closed, frozen, offline -- stops
    counting as registered), or not. The latest word wins, the page's or Asterisk's (``contact_status``)."""
    now = deps.clock()
    stale = timedelta(seconds=deps.settings.phone_report_stale_s)

    def work(s: Session) -> bool:
        phone = phone_of(s, staff_id, kind)
        if phone is None:
            raise PhoneRefused("no_such_phone")
        phone.registered_until = now + stale if is_registered else None
        phone.registered_by = "page"
        return is_registered

    return run_in_transaction(deps.sessions, work)


def contact_status(deps: Deps, endpoint: str, status: str) -> bool | None:
    """Asterisk's ContactStatus event (AMI, read privilege "system") for an endpoint: ``Created``/``Reachable``/
    ``Updated`` registered it, ``Removed``/``Unreachable`` (qualify timed out: a dead socket) did not. Returns the
    new state, None for an endpoint that is not an agent's phone (or a status that says neither)."""
    return record_contact_status(deps.sessions, deps.clock(), endpoint, status)


def record_contact_status(sessions: sessionmaker[Session], now: datetime, endpoint: str, status: str) -> bool | None:
    """``contact_status`` with the session factory and the time (the dialler engine's AMI events, issue 18)."""
    up = status in ("Created", "Reachable", "Updated", "NonQualified")
    down = status in ("Removed", "Unreachable", "Unavailable")  # Unavailable: the port's read at start
    if not (up or down):
        return None

    def work(s: Session) -> bool | None:
        phone = s.scalars(select(AgentPhone).where(AgentPhone.endpoint == endpoint)).first()
        if phone is None:
            return None
        # registered until Asterisk says otherwise (the registration's own expiry is Asterisk's to watch)
        phone.registered_until = now + timedelta(days=1) if up else None
        phone.registered_by = "asterisk"
        return up

    return run_in_transaction(sessions, work)


def active_endpoints(sessions: sessionmaker[Session]) -> list[str]:
    """Every active agent phone's endpoint: what the dialler engine asks Asterisk about at start."""
    return run_in_transaction(sessions, lambda s: list(s.scalars(
        select(AgentPhone.endpoint).where(AgentPhone.active.is_(True)).order_by(AgentPhone.endpoint))))


def softphone_config(deps: Deps, staff_id: int) -> dict[str, Any] | None:
    """What the agent's browser needs to register its softphone, or None when the agent has none / the engine
    has no WSS address: the WSS URL, the SIP URI, the realm and the HA1 (never a password)."""
    url = deps.settings.softphone_ws_url
    if not url:
        return None

    def work(s: Session) -> dict[str, Any] | None:
        phone = phone_of(s, staff_id, "webrtc")
        if phone is None:
            return None
        domain = deps.settings.softphone_sip_domain or (urlsplit(url).hostname or "localhost")
        return {"ws_url": url, "uri": f"sip:{phone.endpoint}@{domain}", "user": phone.endpoint,
                "realm": phone.realm, "ha1": phone.ha1, "endpoint": phone.endpoint,
                "report_every_s": max(1.0, deps.settings.phone_report_stale_s / 3)}

    return run_in_transaction(deps.sessions, work)
