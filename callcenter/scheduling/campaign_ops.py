"""Campaign life-cycle use cases the supervisor pages and the scheduler need: create, edit, start, pause, stop,
lead upload with a per-row error report.

These write the dialler's records (``campaigns``, ``leads``, ``campaign_groups``); the dialler engine picks
running campaigns up from there. When ``callcenter.dialer.service`` grows the same use cases, these become
thin calls into it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from callcenter.store.models.dialer import CALLING_DAYS, CAMPAIGN_KINDS, DIAL_MODES, Campaign, CampaignGroup, DncEntry, Lead

TRANSITIONS = {
    "start": ({"draft", "scheduled", "paused"}, "running"),
    "pause": ({"running"}, "paused"),
    "stop": ({"draft", "scheduled", "running", "paused"}, "finished"),
    "schedule": ({"draft", "paused"}, "scheduled"),
}


class CampaignError(ValueError):
    def __init__(self, code: str, status: int = 409) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


@dataclass
class CampaignInput:
    name: str
    kind: str
    script_id: str
    dial_mode: str = "progressive"
    window_start: time = time(9, 0)
    window_end: time = time(20, 0)
    days: str = "working"
    max_attempts: int = 3
    group_ids: list[int] = field(default_factory=list)

    def validate(self, script_ids: set[str]) -> None:
        if not self.name.strip() or len(self.name) > 128:
            raise CampaignError("bad_name", 422)
        if self.kind not in CAMPAIGN_KINDS:
            raise CampaignError("bad_kind", 422)
        if self.dial_mode not in DIAL_MODES:
            raise CampaignError("bad_dial_mode", 422)
        if self.days not in CALLING_DAYS:
            raise CampaignError("bad_days", 422)
        if self.script_id not in script_ids:
            raise CampaignError("bad_script", 422)
        if not 1 <= self.max_attempts <= 20:
            raise CampaignError("bad_max_attempts", 422)
        if self.window_start >= self.window_end:
            raise CampaignError("bad_window", 422)


def create_campaign(sessions: sessionmaker[Session], data: CampaignInput, script_ids: set[str], staff_id: int,
                    now: datetime) -> int:
    data.validate(script_ids)

    def work(s: Session) -> int:
        camp = Campaign(name=data.name.strip(), kind=data.kind, script_id=data.script_id, dial_mode=data.dial_mode,
                        window_start=data.window_start, window_end=data.window_end, days=data.days,
                        max_attempts=data.max_attempts, retry_delays={}, state="draft", created_by=staff_id,
                        created_at=now, updated_at=now)
        s.add(camp)
        s.flush()
        for gid in sorted(set(data.group_ids)):
            s.add(CampaignGroup(campaign_id=camp.id, service_group_id=gid))
        return camp.id

    return run_in_transaction(sessions, work)


def update_campaign(sessions: sessionmaker[Session], campaign_id: int, data: CampaignInput, script_ids: set[str],
                    now: datetime) -> None:
    data.validate(script_ids)

    def work(s: Session) -> None:
        camp = s.get(Campaign, campaign_id)
        if camp is None:
            raise CampaignError("not_found", 404)
        if camp.state == "finished":
            raise CampaignError("campaign_finished")
        for name in ("kind", "script_id", "dial_mode", "window_start", "window_end", "days", "max_attempts"):
            setattr(camp, name, getattr(data, name))
        camp.name = data.name.strip()
        camp.updated_at = now
        camp.groups = [CampaignGroup(campaign_id=camp.id, service_group_id=g) for g in sorted(set(data.group_ids))]

    run_in_transaction(sessions, work)


def transition(sessions: sessionmaker[Session], campaign_id: int, action: str, now: datetime,
               scheduled_at: datetime | None = None) -> str:
    """start / pause / stop / schedule; returns the new state. A refused move raises CampaignError."""
    if action not in TRANSITIONS:
        raise CampaignError("bad_action", 422)
    allowed, target = TRANSITIONS[action]

    def work(s: Session) -> str:
        camp = s.get(Campaign, campaign_id)
        if camp is None:
            raise CampaignError("not_found", 404)
        if camp.state == target:
            return target
        if camp.state not in allowed:
            raise CampaignError("bad_transition")
        camp.state = target
        camp.updated_at = now
        if target == "running" and camp.started_at is None:
            camp.started_at = now
        if target == "finished":
            camp.finished_at = now
        if action == "schedule":
            camp.scheduled_at = scheduled_at
        return target

    return run_in_transaction(sessions, work)


@dataclass(frozen=True)
class UploadReport:
    added: int
    errors: list[tuple[int, str, str]]  # (row number, raw phone, error code)


def upload_leads(sessions: sessionmaker[Session], campaign_id: int, csv_text: str, now: datetime,
                 max_rows: int = 50_000) -> UploadReport:
    """CSV with a header: ``phone`` required; ``name``, ``client_no``, ``priority``, ``met_at`` optional.
    Bad rows are reported (row number, code) and skipped; the good ones are added in one transaction."""
    reader = csv.DictReader(io.StringIO(csv_text))
    if reader.fieldnames is None or "phone" not in [f.strip() for f in reader.fieldnames]:
        raise CampaignError("csv_no_phone_column", 422)

    def work(s: Session) -> UploadReport:
        camp = s.get(Campaign, campaign_id)
        if camp is None:
            raise CampaignError("not_found", 404)
        existing = set(s.execute(select(Lead.phone).where(Lead.campaign_id == campaign_id)).scalars())
        dnc = set(s.execute(select(DncEntry.phone).where((DncEntry.campaign_id.is_(None))
                                                         | (DncEntry.campaign_id == campaign_id))).scalars())
        errors: list[tuple[int, str, str]] = []
        added = 0
        for i, raw in enumerate(reader, start=2):
            if i - 1 > max_rows:
                errors.append((i, "", "too_many_rows"))
                break
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
            phone_raw = row.get("phone", "")
            try:
                parsed = phonenumbers.parse(phone_raw, "CN")
                if not phonenumbers.is_valid_number(parsed):
                    raise ValueError
                phone = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            except (phonenumbers.NumberParseException, ValueError):
                errors.append((i, phone_raw[:32], "bad_phone"))
                continue
            if phone in existing:
                errors.append((i, phone_raw[:32], "duplicate"))
                continue
            if phone in dnc:
                errors.append((i, phone_raw[:32], "dnc"))
                continue
            try:
                priority = int(row.get("priority") or 0)
            except ValueError:
                errors.append((i, phone_raw[:32], "bad_priority"))
                continue
            client_id = None
            if row.get("client_no"):
                client_id = s.execute(select(Client.id).where(Client.client_no == row["client_no"])).scalar()
                if client_id is None:
                    errors.append((i, phone_raw[:32], "unknown_client"))
                    continue
            extra: dict[str, Any] = {"met_at": row["met_at"]} if row.get("met_at") else {}
            s.add(Lead(campaign_id=campaign_id, client_id=client_id, name=row.get("name", "")[:64], phone=phone,
                       priority=priority, status="new", extra=extra, created_at=now, updated_at=now))
            existing.add(phone)
            added += 1
        return UploadReport(added, errors)

    return run_in_transaction(sessions, work)
