"""Lead lists: phone normalisation, CSV/XLSX import (all or nothing, per-row errors), merging of duplicates.

Numbers are normalised with ``phonenumbers`` (region CN by default): mainland mobiles (``13912345678``,
``+86 139 1234 5678``) and landlines with their area code (``021-62345678``, ``(010) 8888 8888``) become
E.164.  A file with any invalid row imports nothing and the error report names every bad row.  A phone
seen twice in the file, or already a lead of the campaign, is merged into one lead (name kept if known,
extra fields merged, the higher priority).  Numbers on a DNC list are imported with status ``dnc``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from callcenter.bootstrap import App
from callcenter.domain.campaigns import RuleError, zone
from callcenter.store.db import run_in_transaction
from callcenter.store.models.dialer import Campaign, DncEntry, Lead

_OK_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}

# header aliases (lower-cased) -> field
HEADERS = {
    "phone": "phone", "mobile": "phone", "number": "phone", "电话": "phone", "手机": "phone", "手机号": "phone",
    "电话号码": "phone", "name": "name", "姓名": "name", "客户姓名": "name", "priority": "priority", "优先级": "priority",
    "timezone": "timezone", "时区": "timezone", "client_id": "client_id",
}


class InvalidPhone(ValueError):
    pass


def normalise_phone(raw: str, region: str = "CN") -> str:
    """E.164 of a mobile or landline number (area code required for landlines)."""
    text = str(raw or "").strip()
    if not text:
        raise InvalidPhone("empty phone number")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid number (landlines need their area code)")
    if phonenumbers.number_type(number) not in _OK_TYPES:
        raise InvalidPhone("neither a mobile nor a landline number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based row in the file, the header being row 1
    message: str


class ImportRejected(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} invalid row(s); nothing imported")
        self.errors = errors


@dataclass
class ImportResult:
    created: int = 0
    merged: int = 0  # rows merged into an existing lead or an earlier row
    dnc: int = 0  # leads created with status dnc
    rows: int = 0


@dataclass
class LeadRow:
    row: int
    phone: str
    name: str = ""
    priority: int = 0
    timezone: str | None = None
    client_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, {header: value}) of a .csv (UTF-8, with or without BOM) or .xlsx file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            for i, rec in enumerate(csv.DictReader(fh), start=2):
                yield i, {str(k or "").strip(): str(v if v is not None else "").strip() for k, v in rec.items()}
    elif suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            rows = wb.active.iter_rows(values_only=True)
            header = [str(h or "").strip() for h in next(rows, ())]
            for i, values in enumerate(rows, start=2):
                if values is None or all(v in (None, "") for v in values):
                    continue
                yield i, {header[j]: _cell(v) for j, v in enumerate(values) if j < len(header) and header[j]}
        finally:
            wb.close()
    else:
        raise ValueError("lead files must be .csv or .xlsx")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed into Excel as a number
    return str(value).strip()


def parse_row(row: int, record: dict[str, str], region: str = "CN") -> LeadRow:
    fields: dict[str, str] = {}
    extra: dict[str, Any] = {}
    for key, value in record.items():
        name = HEADERS.get(key.lower())
        if name:
            fields[name] = value
        elif key:
            extra[key] = value
    if "phone" not in fields:
        raise ValueError("no phone column")
    phone = normalise_phone(fields["phone"], region)
    priority = 0
    if fields.get("priority"):
        try:
            priority = int(fields["priority"])
        except ValueError:
            raise ValueError(f"priority must be a whole number, got {fields['priority']!r}") from None
    tz = fields.get("timezone") or None
    if tz:
        try:
            zone(tz)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
    client_id = int(fields["client_id"]) if fields.get("client_id", "").isdigit() else None
    return LeadRow(row, phone, fields.get("name", "")[:64], priority, tz, client_id, extra)


def merge_rows(rows: list[LeadRow]) -> tuple[list[LeadRow], int]:
    """Duplicates in the list merged into the first row of their phone; returns (rows, number merged)."""
    by_phone: dict[str, LeadRow] = {}
    merged = 0
    for r in rows:
        first = by_phone.get(r.phone)
        if first is None:
            by_phone[r.phone] = r
            continue
        merged += 1
        first.name = first.name or r.name
        first.priority = max(first.priority, r.priority)
        first.timezone = first.timezone or r.timezone
        first.client_id = first.client_id or r.client_id
        first.extra = {**r.extra, **first.extra}
    return list(by_phone.values()), merged


def save_leads(s: Session, campaign: Campaign, rows: list[LeadRow], now: datetime) -> ImportResult:
    """Insert or merge rows (already unique by phone) into the campaign's leads, in the caller's transaction."""
    result = ImportResult(rows=len(rows))
    phones = [r.phone for r in rows]
    existing: dict[str, Lead] = {}
    dnc: set[str] = set()
    for start in range(0, len(phones), 500):
        chunk = phones[start:start + 500]
        existing.update({lead.phone: lead for lead in s.scalars(
            select(Lead).where(Lead.campaign_id == campaign.id, Lead.phone.in_(chunk)))})
        dnc.update(s.scalars(select(DncEntry.phone).where(
            DncEntry.phone.in_(chunk), or_(DncEntry.campaign_id.is_(None), DncEntry.campaign_id == campaign.id))))
    for r in rows:
        lead = existing.get(r.phone)
        if lead is not None:
            result.merged += 1
            lead.name = lead.name or r.name
            lead.priority = max(lead.priority, r.priority)
            lead.client_id = lead.client_id or r.client_id
            lead.extra = {**r.extra, **(lead.extra or {})}
            lead.updated_at = now
            continue
        status = "dnc" if r.phone in dnc else "new"
        result.dnc += status == "dnc"
        s.add(Lead(campaign_id=campaign.id, client_id=r.client_id, name=r.name, phone=r.phone,
                   timezone=r.timezone or campaign.timezone, priority=r.priority, status=status, attempts=0,
                   extra=r.extra, created_at=now, updated_at=now))
        result.created += 1
    s.flush()
    return result


def import_leads(core: App, campaign_id: int, path: Path, *, progress: bool = False, region: str = "CN") -> ImportResult:
    """Import a CSV/XLSX lead file into a campaign: all rows or none (``ImportRejected`` lists the bad rows)."""
    path = Path(path)
    records = list(read_rows(path))
    good: list[LeadRow] = []
    errors: list[RowError] = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        bar.start()
        task = bar.add_task(f"{path.name}", total=len(records))
    try:
        for i, (row, record) in enumerate(records):
            try:
                good.append(parse_row(row, record, region))
            except ValueError as exc:
                errors.append(RowError(row, str(exc)))
            if bar is not None and (i % 200 == 0 or i == len(records) - 1):
                bar.update(task, completed=i + 1)
    finally:
        if bar is not None:
            bar.stop()
    if errors:
        raise ImportRejected(errors)
    result = _save_into(core, campaign_id, good)
    result.rows = len(records)
    return result


def add_leads(core: App, campaign_id: int, rows: list[LeadRow]) -> ImportResult:
    """Programmatic import (tests, segments): same merging and DNC rules as a file."""
    result = _save_into(core, campaign_id, rows)
    result.rows = len(rows)
    return result


def _save_into(core: App, campaign_id: int, rows: list[LeadRow]) -> ImportResult:
    """Merge duplicate rows and save them, in one transaction, into a campaign that exists and is not finished."""
    merged_rows, merged = merge_rows(rows)
    now = core.clock()

    def work(s: Session) -> ImportResult:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            raise ValueError(f"no campaign {campaign_id}")
        if campaign.state == "finished":
            raise ValueError("campaign is finished")
        return save_leads(s, campaign, merged_rows, now)

    result = run_in_transaction(core.sessions, work)
    result.merged += merged
    return result
