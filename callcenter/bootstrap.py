"""Wiring: build the engine, adapters and services once from settings. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.bank_http import HttpBank
from callcenter.adapters.trading_calendar import TradingCalendar
from callcenter.domain.custody import Limits
from callcenter.services.bus import EventBus
from callcenter.services.metrics import Metrics
from callcenter.services.ports import DepositoryBank
from callcenter.services.transfers import Checkpoint, TransferService, _no_checkpoint
from callcenter.settings import Settings
from callcenter.supervisor import PartBoard
from callcenter.store.db import make_engine, make_session_factory


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    calendar: TradingCalendar
    bank: DepositoryBank
    transfers: TransferService
    clock: Callable[[], datetime] = utc_now
    bus: EventBus = field(default_factory=EventBus)
    ivr: Any = None  # callcenter.services.ivr_backend.StoreIvrBackend, the hotline's backend
    hash_pool: Any = None  # callcenter.services.hash_pool.HashPool: the bound on argon2 work (IVR PIN checks)
    extras: dict[str, object] = field(default_factory=dict)
    parts: PartBoard = field(default_factory=PartBoard)  # the engine parts' states (runtime supervisor)
    metrics: Metrics = field(kw_only=True)  # this App's Prometheus registry and the parts' callbacks (/metrics)

    def close(self) -> None:
        self.engine.dispose()
        close_bank = getattr(self.bank, "close", None)
        if close_bank is not None:
            close_bank()


def limits_from(settings: Settings) -> Limits:
    return Limits(
        per_transfer_fen=settings.transfer_per_limit_fen,
        daily_fen=settings.transfer_daily_limit_fen,
        window_start=settings.transfer_window_start,
        window_end=settings.transfer_window_end,
    )


def bootstrap(
    settings: Settings,
    *,
    engine: Engine | None = None,
    bank: DepositoryBank | None = None,
    clock: Callable[[], datetime] = utc_now,
    checkpoint: Checkpoint = _no_checkpoint,
) -> App:
    engine = engine or make_engine(settings.resolved_database_url())
    sessions = make_session_factory(engine)
    calendar = TradingCalendar(settings.market_closures)
    metrics = Metrics(sessions, clock, settings.tz)
    # The depository bank over its HTTP gateway protocol (the simulated bank runs as its own service).
    bank = bank or HttpBank(settings.bank_url, timeout=settings.bank_timeout_seconds)
    transfers = TransferService(
        sessions, bank, calendar, limits_from(settings), settings.tz, clock=clock, checkpoint=checkpoint,
        reconcile_grace=timedelta(seconds=settings.reconcile_grace_seconds), observer=metrics.transfer_observed,
    )
    app = App(settings, engine, sessions, calendar, bank, transfers, clock, metrics=metrics)
    metrics.watch_bus(app.bus.subscriber_counts)
    metrics.watch_parts(app.parts.snapshot, settings.telephony_backend)
    from callcenter.services.auth import set_parameters
    from callcenter.services.hash_pool import HashPool
    from callcenter.services.ivr_backend import StoreIvrBackend
    from callcenter.services.throttles import ThrottlePolicies

    set_parameters(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    app.hash_pool = HashPool(settings.argon2_workers)
    app.ivr = StoreIvrBackend(sessions, transfers, clock, policies=ThrottlePolicies.from_settings(settings),
                              bus=app.bus, verify=app.hash_pool.verify)
    return app
