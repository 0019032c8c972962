"""Corporate events worth a reminder: stored, added one by one or from a supervisor's CSV upload.

CSV columns (header row required, UTF-8, with or without BOM):
    kind, code, name, event_date, start_date, end_date, price, ratio, note
``kind`` is one of the English kinds or its Chinese name (配股, 增发, 权证最后交易日, 权证行权, 新股申购, 分红);
``event_date`` is the date reminders count back from (see ``CareEvent``). Only kind, code and event_date are
required. A row with an error is reported (line number and message) and not imported; the other rows are.
Re-importing the same file changes nothing: (kind, code, event_date) is the natural key and rows update.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from callcenter.i18n import t
from callcenter.store.db import run_in_transaction
from callcenter.store.models.care import EVENT_KINDS, CareEvent

KIND_ALIASES = {
    "配股": "rights_issue",
    "增发": "placing",
    "权证最后交易日": "warrant_last_trading",
    "权证到期": "warrant_last_trading",
    "权证行权": "warrant_exercise",
    "行权": "warrant_exercise",
    "新股申购": "ipo_subscription",
    "分红": "dividend",
} | {k: k for k in EVENT_KINDS}

REQUIRED = ("kind", "code", "event_date")
COLUMNS = ("kind", "code", "name", "event_date", "start_date", "end_date", "price", "ratio", "note")
_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class EventInput:
    kind: str
    code: str
    event_date: date
    security_name: str = ""
    start_date: date | None = None
    end_date: date | None = None
    price: Decimal | None = None
    ratio: str = ""
    note: str = ""


@dataclass
class RowError:
    line: int  # 1-based line of the file (the header is line 1)
    messages: list[str]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_csv(text: str, lang: str = "zh-CN") -> tuple[list[tuple[int, EventInput]], list[RowError]]:
    """Pure: rows that parse, and an error list naming each bad row's line and every problem in it."""
    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        return [], [RowError(1, [t("care.csv.missing_column", lang, column=c) for c in missing])]
    reader.fieldnames = header
    good: list[tuple[int, EventInput]] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str, date], int] = {}
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        value = {c: (row.get(c) or "").strip() for c in COLUMNS}
        problems: list[str] = []
        kind = KIND_ALIASES.get(value["kind"])
        if kind is None:
            problems.append(t("care.csv.bad_kind", lang, value=value["kind"]))
        if not _CODE.fullmatch(value["code"]):
            problems.append(t("care.csv.bad_code", lang, value=value["code"]))
        dates: dict[str, date | None] = {}
        for column in ("event_date", "start_date", "end_date"):
            raw = value[column]
            if not raw and column != "event_date":
                dates[column] = None
                continue
            try:
                dates[column] = date.fromisoformat(raw)
            except ValueError:
                problems.append(t("care.csv.bad_date", lang, column=column, value=raw))
                dates[column] = None
        price: Decimal | None = None
        if value["price"]:
            try:
                price = Decimal(value["price"])
                if not price.is_finite() or price < 0:
                    raise InvalidOperation
            except InvalidOperation:
                problems.append(t("care.csv.bad_price", lang, value=value["price"]))
        start, end = dates.get("start_date"), dates.get("end_date")
        if start and end and start > end:
            problems.append(t("care.csv.bad_period", lang))
        if not problems and kind and dates["event_date"]:
            key = (kind, value["code"], dates["event_date"])
            if key in seen:
                problems.append(t("care.csv.duplicate_row", lang, line=seen[key]))
            else:
                seen[key] = line
        if problems:
            errors.append(RowError(line, problems))
            continue
        assert kind is not None and dates["event_date"] is not None
        good.append((line, EventInput(kind, value["code"], dates["event_date"], value["name"][:32], start, end,
                                      price, value["ratio"][:32], value["note"])))
    return good, errors


def _upsert(s: Session, item: EventInput, now: datetime, source: str) -> str:
    existing = s.scalars(
        select(CareEvent).where(CareEvent.kind == item.kind, CareEvent.code == item.code,
                                CareEvent.event_date == item.event_date)
    ).one_or_none()
    fields = dict(security_name=item.security_name, start_date=item.start_date, end_date=item.end_date,
                  price=item.price, ratio=item.ratio, note=item.note)
    if existing is None:
        s.add(CareEvent(kind=item.kind, code=item.code, event_date=item.event_date, source=source,
                        created_at=now, updated_at=now, **fields))
        return "created"
    changed = False
    for name, val in fields.items():
        current = getattr(existing, name)
        if name == "price" and current is not None and val is not None:
            same = Decimal(current) == val
        else:
            same = current == val
        if not same:
            setattr(existing, name, val)
            changed = True
    if changed:
        existing.updated_at = now
        existing.source = source
        return "updated"
    return "unchanged"


def import_events_csv(
    sessions: sessionmaker[Session], text: str, now: datetime, *, source: str = "csv", lang: str = "zh-CN"
) -> ImportReport:
    """Parse and store the good rows in one transaction; the report lists every bad row."""
    good, errors = parse_csv(text, lang)
    report = ImportReport(errors=errors)

    def work(s: Session) -> None:
        report.created = report.updated = report.unchanged = 0
        for _line, item in good:
            outcome = _upsert(s, item, now, source[:32])
            setattr(report, outcome, getattr(report, outcome) + 1)

    run_in_transaction(sessions, work)
    return report


def add_event(sessions: sessionmaker[Session], item: EventInput, now: datetime, *, source: str = "manual") -> int:
    def work(s: Session) -> int:
        _upsert(s, item, now, source)
        s.flush()
        return s.scalars(select(CareEvent.id).where(CareEvent.kind == item.kind, CareEvent.code == item.code,
                                                    CareEvent.event_date == item.event_date)).one()

    return run_in_transaction(sessions, work)


def upcoming_events(s: Session, since: date, until: date) -> list[CareEvent]:
    return list(s.scalars(select(CareEvent).where(CareEvent.event_date >= since, CareEvent.event_date <= until)
                          .order_by(CareEvent.event_date, CareEvent.id)))
