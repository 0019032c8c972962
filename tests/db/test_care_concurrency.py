"""Concurrent runs of the same day (threads, each with its own sessions; on PostgreSQL when configured): every
client gets each message once, and the runs' counts add up."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import func, select

from callcenter.services.care.dispatch import run_daily_reminders
from callcenter.services.care.events import EventInput, add_event
from callcenter.services.care.sms import SimulatedSms
from callcenter.store.db import run_in_transaction
from callcenter.store.models.care import CareDelivery
from tests.db.test_care_support import client_holding, utc


class LockedOutbox(SimulatedSms):
    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def send(self, to, body, *, reference, kind=""):  # type: ignore[no-untyped-def]
        with self.lock:
            return super().send(to, body, reference=reference)


def test_concurrent_runs_send_each_message_once(core):
    clients = [client_holding(core, {"600000": 100}, birthday=date(1980, 3, 6)) for _ in range(12)]
    add_event(core.sessions, EventInput("dividend", "600000", date(2026, 3, 10)), utc(2026, 3, 1))
    sms = LockedOutbox()
    reports = []
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            reports.append(run_daily_reminders(core, date(2026, 3, 6), sms=sms, now=utc(2026, 3, 6)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    # each client: one dividend reminder (event) and one birthday greeting
    assert len(sms.outbox) == 24 == sum(r.sent for r in reports)
    assert len({(m.to, m.body) for m in sms.outbox}) == 24
    assert sum(r.lost_race + r.skipped.get("already_sent", 0) for r in reports) == 3 * 24
    count = run_in_transaction(core.sessions, lambda s: s.scalar(select(func.count()).select_from(CareDelivery)))
    assert count == 24 and len(clients) == 12
