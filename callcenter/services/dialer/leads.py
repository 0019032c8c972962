"""Lead lists: phone normalisation and THE lead-file import (CSV/XLSX) that the supervisor page's upload and
``callcenter leads import`` both call; plus programmatic leads (segments, care call-backs, tests).

Lead files (``import_lead_file``): all rows or none. The file is read as a stream and checked in batches of
``batch_size`` rows; each batch is looked up in the database (leads already in the campaign, the DNC lists,
client numbers) and inserted with one Core ``executemany`` inside ONE transaction, which is rolled back when
any row has a problem — memory stays flat in the file's size. Every field is checked:

* ``phone`` (required; 手机, 电话, mobile …): a mainland mobile or a landline with its area code, normalised
  to E.164 with ``phonenumbers``; a number twice in the file, or already a lead of the campaign, is a problem;
* ``name`` (姓名) at most 64 characters; ``priority`` (优先级) a whole number 0–99; ``timezone`` (时区) an
  IANA zone; ``client_no`` (客户号) an existing client (``client_id``: an existing internal id);
* ``met_at`` (认识地点) where we met the prospect, at most 64 characters and never a date;
  ``met_date`` (认识日期) a real date (YYYY-MM-DD, YYYY/MM/DD or an Excel date), not in the future;
* any other column is kept in the lead's ``extra`` (at most 200 characters a value).

A number on a do-not-call list is not a problem: it is imported with status ``dnc`` and never dialled.
The report lists each problem as a ``RowProblem`` (row, code, parameters) whose ``sentence(lang)`` is the
sentence from ``locales/<lang>/leads.yaml``; file-level problems raise ``LeadFileError`` (same sentences).

Programmatic leads (``add_leads``) merge instead: a phone seen twice, or already a lead of the campaign,
becomes one lead (name kept if known, extra fields merged, the higher priority), so a segment can be added
again without doubling anyone.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, cast

import phonenumbers
from sqlalchemy import Table, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.deps import Deps
from callcenter.domain.campaigns import RuleError, zone
from callcenter.domain.masking import mask_phone
from callcenter.i18n import DEFAULT_LANG, t
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.models.core import Client
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
    "timezone": "timezone", "时区": "timezone", "client_id": "client_id", "client_no": "client_no",
    "客户号": "client_no", "客户编号": "client_no", "met_at": "met_at", "认识地点": "met_at", "met_date": "met_date",
    "认识日期": "met_date", "time_zone": "timezone", "client_number": "client_no", "where_we_met": "met_at",
    "date_met": "met_date",
}
NAME_MAX = 64
MET_AT_MAX = 64
EXTRA_MAX = 200
PRIORITY_MIN, PRIORITY_MAX = 0, 99
BATCH_SIZE = 1000
MAX_LISTED = 500  # problems listed in a report; the rest are counted
_LOOKS_LIKE_DATE = re.compile(r"^\s*\d{2,4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?\s*$")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d", "%Y年%m月%d日")


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


# --- the report ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    """One problem of one row (1-based, the header being row 1); ``sentence`` is what people read."""

    row: int
    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def sentence(self, lang: str = DEFAULT_LANG) -> str:
        return t(f"leads.problem.{self.code}", lang, row=self.row, **self.params)


class LeadFileError(ValueError):
    """The file as a whole cannot be imported (type, encoding, header, campaign); nothing was imported."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def sentence(self, lang: str = DEFAULT_LANG) -> str:
        return t(f"leads.file.{self.code}", lang, **self.params)


@dataclass
class ImportReport:
    """The verdict on one lead file: ``imported`` (every row) or not (no row), with the problems."""

    rows: int = 0
    created: int = 0  # 0 unless imported
    dnc: int = 0  # of those, leads created with status dnc (on a do-not-call list)
    problems: list[RowProblem] = field(default_factory=list)  # the first MAX_LISTED
    problem_count: int = 0  # every problem, listed or not

    @property
    def imported(self) -> bool:
        return self.problem_count == 0

    def sentences(self, lang: str = DEFAULT_LANG) -> list[str]:
        out = [p.sentence(lang) for p in self.problems]
        if self.problem_count > len(self.problems):
            out.append(t("leads.summary.more", lang, count=self.problem_count - len(self.problems)))
        return out

    def summary(self, lang: str = DEFAULT_LANG) -> str:
        if self.imported:
            return t("leads.summary.imported", lang, created=self.created, dnc=self.dnc, rows=self.rows)
        rows = len({p.row for p in self.problems})
        return t("leads.summary.rejected", lang, count=self.problem_count, rows=rows, total=self.rows)


# --- reading a file as a stream of rows ----------------------------------------------------------------

Opener = Callable[[], IO[bytes]]


@dataclass(frozen=True)
class LeadFile:
    """A lead file to import: its name (the suffix says CSV or XLSX) and how to open it (again, on a retry)."""

    name: str
    open: Opener

    @classmethod
    def from_path(cls, path: Path | str) -> LeadFile:
        p = Path(path)
        return cls(p.name, lambda: p.open("rb"))

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> LeadFile:
        return cls(name, lambda: io.BytesIO(data))

    @property
    def kind(self) -> str:
        suffix = Path(self.name).suffix.lower()
        if suffix in (".csv", ".txt"):
            return "csv"
        if suffix in (".xlsx", ".xlsm"):
            return "xlsx"
        raise LeadFileError("bad_type")


def _csv_encoding(source: LeadFile) -> str:
    """UTF-8 (with or without BOM) or, as Excel in China saves CSV, GB18030; read once, in chunks."""
    for encoding in ("utf-8-sig", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with source.open() as fh:
                while chunk := fh.read(1 << 16):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return encoding
        except UnicodeDecodeError:
            continue
    raise LeadFileError("bad_encoding")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a phone typed into Excel as a number
    return str(value).strip()


def read_rows(source: LeadFile) -> Iterator[tuple[int, list[str]] | list[str]]:
    """The header (a list of names) first, then (row number, values) per non-empty row, as a stream."""
    if source.kind == "csv":
        encoding = _csv_encoding(source)
        with source.open() as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise LeadFileError("empty")
            yield [h.strip() for h in header]
            for i, values in enumerate(reader, start=2):
                if any(v.strip() for v in values):
                    yield i, [v.strip() for v in values]
        return
    from openpyxl import load_workbook

    with source.open() as raw:
        try:
            wb = load_workbook(raw, read_only=True, data_only=True)
        except Exception:  # noqa: BLE001 - openpyxl raises zip, XML and key errors for a file that is no workbook
            raise LeadFileError("unreadable") from None
        try:
            rows = wb.active.iter_rows(values_only=True)
            first = next(rows, None)
            if first is None:
                raise LeadFileError("empty")
            yield [_cell(h) for h in first]
            for i, values in enumerate(rows, start=2):
                if values is None or all(v in (None, "") for v in values):
                    continue
                yield i, [_cell(v) for v in values]
        finally:
            wb.close()


def _columns(header: list[str]) -> list[str]:
    """Field (or extra column) name per position; a file without a phone column is refused."""
    out, seen = [], set()
    for name in header:
        # "Met at", "met-at" and "met_at" are one header: case, spaces and hyphens do not matter
        key = HEADERS.get(re.sub(r"[\s-]+", "_", name.strip().lower()), name) if name else ""
        if key and key in seen:
            raise LeadFileError("duplicate_column", column=name[:32])
        seen.add(key)
        out.append(key)
    if "phone" not in seen:
        raise LeadFileError("no_phone_column")
    return out


# --- checking one row (no database) ------------------------------------------------------------------


@dataclass
class CheckedRow:
    row: int
    phone: str | None
    name: str = ""
    priority: int = 0
    timezone: str | None = None
    client_no: str | None = None
    client_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)


def _short(value: str) -> str:
    return value if len(value) <= 32 else value[:31] + "…"


def parse_date(value: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
    return None


def check_row(row: int, columns: list[str], values: list[str], today: date, region: str = "CN") -> CheckedRow:
    """Every field of one row checked; the problems (if any) are in ``problems``."""
    record = {col: (values[i] if i < len(values) else "") for i, col in enumerate(columns) if col}
    problems: list[RowProblem] = []

    def problem(code: str, **params: Any) -> None:
        problems.append(RowProblem(row, code, params))

    if any(v for v in values[len(columns):]):  # e.g. an unquoted comma inside a name shifts every cell after it
        problem("too_many_cells", cells=len(values), columns=len(columns))
    phone: str | None = None
    raw_phone = record.get("phone", "")
    if not raw_phone:
        problem("phone_missing")
    else:
        try:
            phone = normalise_phone(raw_phone, region)
        except InvalidPhone:
            problem("phone_invalid", value=_short(raw_phone))
    name = record.get("name", "")
    if len(name) > NAME_MAX:
        problem("name_too_long", max=NAME_MAX)
    priority = 0
    if record.get("priority"):
        try:
            priority = int(record["priority"])
        except ValueError:
            problem("priority_not_number", value=_short(record["priority"]))
        else:
            if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
                problem("priority_out_of_range", value=priority, min=PRIORITY_MIN, max=PRIORITY_MAX)
                priority = 0
    tz = record.get("timezone") or None
    if tz:
        try:
            zone(tz)
        except RuleError:
            problem("timezone_unknown", value=_short(tz))
            tz = None
    client_no = record.get("client_no") or None
    client_id: int | None = None
    if record.get("client_id"):
        if record["client_id"].isdigit() and len(record["client_id"]) <= 9:
            client_id = int(record["client_id"])
        else:
            problem("client_id_invalid", value=_short(record["client_id"]))
    extra: dict[str, Any] = {}
    met_at = record.get("met_at", "")
    if met_at:
        if _LOOKS_LIKE_DATE.match(met_at):
            problem("met_at_is_date", value=_short(met_at))
        elif len(met_at) > MET_AT_MAX:
            problem("met_at_too_long", max=MET_AT_MAX)
        else:
            extra["met_at"] = met_at
    met_date = record.get("met_date", "")
    if met_date:
        parsed = parse_date(met_date)
        if parsed is None:
            problem("met_date_invalid", value=_short(met_date))
        elif parsed > today:
            problem("met_date_future", value=parsed.isoformat())
        else:
            extra["met_date"] = parsed.isoformat()
    for col, value in record.items():
        if col in HEADERS.values() or not value:
            continue
        if len(value) > EXTRA_MAX:
            problem("value_too_long", column=_short(col), max=EXTRA_MAX)
        else:
            extra[col] = value
    return CheckedRow(row, phone, name[:NAME_MAX], priority, tz, client_no, client_id, extra, problems)


# --- the import -----------------------------------------------------------------------------------------


class _Rejected(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__("rejected")
        self.report = report


def _batches(rows: Iterator[Any], size: int) -> Iterator[list[tuple[int, list[str]]]]:
    batch: list[tuple[int, list[str]]] = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_lead_file(
    sessions: sessionmaker[Session],
    campaign_id: int,
    source: LeadFile,
    now: datetime,
    *,
    today: date | None = None,
    region: str = "CN",
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import a lead file into a campaign: every row or none (see the module docstring).

    ``today`` (the local date; default ``now``'s date) bounds ``met_date``. ``on_batch(rows so far)`` is called
    after each batch (a progress display). Raises ``LeadFileError`` for a file that cannot be read at all."""
    local_today = today or now.date()
    source.kind  # noqa: B018 - refuses a file of the wrong type before any database work

    def work(s: Session) -> ImportReport:
        q = select(Campaign).where(Campaign.id == campaign_id)
        if dialect_name(s) == "postgresql":
            q = q.with_for_update()  # one import at a time per campaign: "earlier in the file" stays exact
        campaign = s.scalars(q).first()
        if campaign is None:
            raise LeadFileError("no_campaign", id=campaign_id)
        if campaign.state == "finished":
            raise LeadFileError("campaign_finished", id=campaign_id)
        before = s.scalar(select(func.max(Lead.id)).where(Lead.campaign_id == campaign_id)) or 0
        report = ImportReport()
        rows = read_rows(source)
        columns = _columns(next(rows))  # type: ignore[arg-type]  # read_rows yields the header (a list) first
        table = cast(Table, Lead.__table__)
        for batch in _batches(rows, batch_size):
            checked = [check_row(row, columns, values, local_today, region) for row, values in batch]
            report.rows += len(checked)
            phones = sorted({c.phone for c in checked if c.phone})
            existing = dict(s.execute(select(Lead.phone, Lead.id).where(
                Lead.campaign_id == campaign_id, Lead.phone.in_(phones))).all()) if phones else {}
            dnc = set(s.scalars(select(DncEntry.phone).where(
                DncEntry.phone.in_(phones), or_(DncEntry.campaign_id.is_(None),
                                                DncEntry.campaign_id == campaign_id)))) if phones else set()
            nos = sorted({c.client_no for c in checked if c.client_no})
            by_no = dict(s.execute(select(Client.client_no, Client.id).where(Client.client_no.in_(nos))).all()) \
                if nos else {}
            ids = sorted({c.client_id for c in checked if c.client_id is not None})
            known_ids = set(s.scalars(select(Client.id).where(Client.id.in_(ids)))) if ids else set()
            first_in_batch: dict[str, int] = {}
            inserts: list[dict[str, Any]] = []
            for c in checked:
                if c.client_no is not None:
                    c.client_id = by_no.get(c.client_no)
                    if c.client_id is None:
                        c.problems.append(RowProblem(c.row, "client_unknown", {"value": _short(c.client_no)}))
                elif c.client_id is not None and c.client_id not in known_ids:
                    c.problems.append(RowProblem(c.row, "client_unknown", {"value": c.client_id}))
                    c.client_id = None
                if c.phone is not None:
                    shown = mask_phone(c.phone)
                    if c.phone in first_in_batch:
                        c.problems.append(RowProblem(c.row, "phone_repeated",
                                                     {"phone": shown, "first": first_in_batch[c.phone]}))
                    elif c.phone in existing:
                        code = "phone_repeated_earlier" if existing[c.phone] > before else "phone_in_campaign"
                        c.problems.append(RowProblem(c.row, code, {"phone": shown}))
                    else:
                        # inserted even when another field is wrong, so a later repeat of it is still found
                        first_in_batch[c.phone] = c.row
                        status = "dnc" if c.phone in dnc else "new"
                        report.dnc += status == "dnc"
                        inserts.append({
                            "campaign_id": campaign_id, "client_id": c.client_id, "name": c.name, "phone": c.phone,
                            "timezone": c.timezone or campaign.timezone, "priority": c.priority, "status": status,
                            "attempts": 0, "extra": c.extra, "created_at": now, "updated_at": now})
                for p in c.problems:
                    report.problem_count += 1
                    if len(report.problems) < MAX_LISTED:
                        report.problems.append(p)
            if inserts:
                s.execute(table.insert(), inserts)  # Core executemany
            report.created += len(inserts)
            if on_batch is not None:
                on_batch(report.rows)
        if not report.imported:
            raise _Rejected(report)  # rolls the whole file back
        return report

    try:
        return run_in_transaction(sessions, work)
    except _Rejected as rejected:
        report = rejected.report
        report.created = report.dnc = 0
        return report


def import_leads(core: Deps, campaign_id: int, path: Path | str, *, region: str = "CN",
                 on_batch: Callable[[int], None] | None = None) -> ImportReport:
    """``import_lead_file`` for a file on disk, with the engine's clock and time zone."""
    now = core.clock()
    return import_lead_file(core.sessions, campaign_id, LeadFile.from_path(path), now,
                            today=now.astimezone(core.settings.tz).date(), region=region, on_batch=on_batch)


# --- programmatic leads ---------------------------------------------------------------------------------


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


def add_leads(core: Deps, campaign_id: int, rows: list[LeadRow]) -> ImportResult:
    """Programmatic leads (segments, care call-backs, tests): duplicates merged, DNC numbers kept as ``dnc``."""
    result = _save_into(core, campaign_id, rows)
    result.rows = len(rows)
    return result


def _save_into(core: Deps, campaign_id: int, rows: list[LeadRow]) -> ImportResult:
    """Merge duplicate rows and save them, in one transaction, into a campaign that exists and is not finished."""
    merged_rows, merged = merge_rows(rows)
    now = core.clock()

    def work(s: Session) -> ImportResult:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            raise LeadFileError("no_campaign", id=campaign_id)
        if campaign.state == "finished":
            raise LeadFileError("campaign_finished", id=campaign_id)
        return save_leads(s, campaign, merged_rows, now)

    result = run_in_transaction(core.sessions, work)
    result.merged += merged
    return result
