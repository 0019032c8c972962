"""Wiring: build the engine, adapters and services once from settings. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from datetime import datetime, timedelta, timezone

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.adapters.bank_http import HttpBank
from callcenter.adapters.trading_calendar import TradingCalendar
from callcenter.domain.custody import Limits
from callcenter.services.bus import EventBus
from callcenter.services.metrics import Metrics
from callcenter.ports.bank import DepositoryBank
from callcenter.services.transfers import Checkpoint, TransferService, _no_checkpoint
from callcenter.settings import Settings
from callcenter.supervisor import PartBoard
from callcenter.store.db import make_engine, make_session_factory
from callcenter.ports.telephony import Telephony

if TYPE_CHECKING:
    from callcenter.bank.runner import BankProcess
    from callcenter.services.care.notify_calls import NotificationLine
    from callcenter.parts.scheduler import CampaignScheduler

if TYPE_CHECKING:
    from callcenter.adapters.pg_events import PgEventBridge


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class App:
    settings: Settings
    database: Engine  # SQLAlchemy's engine: the connection pool of the engine's database
    sessions: sessionmaker[Session]
    calendar: TradingCalendar
    bank: DepositoryBank
    transfers: TransferService
    clock: Callable[[], datetime] = utc_now
    bus: EventBus = field(default_factory=EventBus)
    ivr: Any = None  # callcenter.services.ivr.store_backend.StoreIvrBackend, the hotline's backend
    hash_pool: Any = None  # callcenter.services.hash_pool.HashPool: the bound on argon2 work (IVR PIN checks)
    parts: PartBoard = field(default_factory=PartBoard)  # the engine parts' states (runtime supervisor)
    # Built once here, used by the parts (each part takes what it needs from these typed fields):
    telephony: Callable[[], Telephony] = field(default=lambda: _no_telephony())  # a fresh backend per dialler start
    notifications: NotificationLine | None = None  # the dialler part's notification caller, for the care part
    twilio_line: Any = None  # adapters/telephony/twilio_calls.TwilioLine: the Twilio backend, for its webhooks
    scheduler: CampaignScheduler | None = None  # the campaign schedules; the scheduler part starts it
    bank_process: BankProcess | None = None  # the simulated bank's child process (bank_simulator), not started
    metrics: Metrics = field(kw_only=True)  # this App's Prometheus registry and the parts' callbacks (/metrics)
    orders: Any = None  # callcenter.services.orders.OrderService: phone orders (电话委托), see _wire_orders
    recordings: Any = None  # callcenter.services.recordings.RecordingService (issue 14), see _wire_recordings
    appointments: Any = None  # callcenter.services.appointments.AppointmentService: 预约服务 (issue 15)
    phones: Any = None  # callcenter.services.phones.PhonePublisher: agents' PJSIP endpoints to Asterisk (issue 18)

    def close(self) -> None:
        self.database.dispose()
        close_bank = getattr(self.bank, "close", None)
        if close_bank is not None:
            close_bank()


def _no_telephony() -> Telephony:
    raise RuntimeError("no telephony backend wired")


def telephony_from_settings(settings: Settings, twilio_line: Any = None) -> Telephony:
    """A fresh telephony backend for ``telephony_backend``: Asterisk over AMI, Twilio, or the simulated PBX."""
    backend = settings.telephony_backend
    if backend == "asterisk":
        from callcenter.adapters.telephony.ami import AmiOptions, AmiPool, servers_from_settings

        options = AmiOptions(dial_template=settings.ami_dial_template, amd=settings.ami_amd,
                             connect_timeout_s=settings.ami_connect_timeout_s,
                             recordings_dir=settings.asterisk_recordings_dir)
        return AmiPool(servers_from_settings(settings), options)
    if backend == "twilio":
        from callcenter.adapters.telephony.twilio_calls import TwilioCalls

        client = twilio_client(settings)
        signer = prompt_signer(settings)
        return TwilioCalls(client, settings.twilio_from_number, settings.twilio_public_url,
                           machine_detection=settings.ami_amd, prompt_url=signer.url, line=twilio_line,
                           recording_wait_s=settings.twilio_recording_wait_s)
    from callcenter.adapters.telephony.simulated import CustomerModel, LoopClock, SimulatedPbx

    return SimulatedPbx(CustomerModel(**settings.simulated_pbx_model), clock=LoopClock(), seed=settings.simulated_pbx_seed)


def twilio_client(settings: Settings) -> Any:
    """The twilio REST client; the recordings' media come back as bytes through its HTTP client (the library's
    own decodes text)."""
    from twilio.rest import Client

    from callcenter.adapters.telephony.twilio_calls import MediaHttpClient

    return Client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                  http_client=MediaHttpClient())


def prompt_signer(settings: Settings) -> Any:
    """The signer of the prompt URLs carriers fetch (``adapters/ivr/prompt_files.PromptSigner``)."""
    from callcenter.adapters.ivr.prompt_files import PromptSigner, derive_key

    return PromptSigner(settings.twilio_public_url, derive_key(settings.prompt_url_key.get_secret_value(),
                                                               settings.twilio_auth_token.get_secret_value()))


def prompt_files(settings: Settings) -> Any:
    """The rendered prompts (``prompts build``'s tree) by prompt name, rendered on demand."""
    from callcenter.adapters.ivr.prompt_files import PromptFiles
    from callcenter.adapters.ivr.prompts import Company

    return PromptFiles(settings.prompts_path, Company.from_settings(settings))


def sms_sender(settings: Settings) -> Any:
    """The SMS gateway of ``sms_backend``: Aliyun (adapters/sms_aliyun.py), else Twilio or the simulator."""
    if settings.sms_backend == "aliyun":
        from callcenter.adapters.sms_aliyun import AliyunSms

        return AliyunSms(settings.aliyun_access_key_id, settings.aliyun_access_key_secret.get_secret_value(),
                         settings.aliyun_sms_sign_name, settings.aliyun_sms_templates,
                         template_param=settings.aliyun_sms_template_param, endpoint=settings.aliyun_sms_endpoint)
    from callcenter.services.care.sms import make_sms_sender

    return make_sms_sender(settings)


def limits_from(settings: Settings) -> Limits:
    return Limits(
        per_transfer_fen=settings.transfer_per_limit_fen,
        daily_fen=settings.transfer_daily_limit_fen,
        window_start=settings.transfer_window_start,
        window_end=settings.transfer_window_end,
    )


# --- live events across processes (callcenter/adapters/pg_events.py) -----------------------------------------


def event_bridge_for(settings: Settings, bus: EventBus) -> PgEventBridge | None:
    """The LISTEN/NOTIFY bridge that carries ``bus``'s events to the other engine processes on the same
    PostgreSQL database; None on SQLite (one process) or when ``events_across_processes`` is off.
    Not started: ``runtime.run_engine`` starts and closes it."""
    url = settings.resolved_database_url()
    if not settings.events_across_processes or not url.startswith("postgresql"):
        return None
    from callcenter.adapters.pg_events import PgEventBridge, conninfo_from_url

    return PgEventBridge(conninfo_from_url(url), bus)


def _twilio_calls_type() -> type:
    from callcenter.adapters.telephony.twilio_calls import TwilioCalls

    return TwilioCalls


def bootstrap(
    settings: Settings,
    *,
    database: Engine | None = None,
    bank: DepositoryBank | None = None,
    clock: Callable[[], datetime] = utc_now,
    checkpoint: Checkpoint = _no_checkpoint,
    telephony: Telephony | None = None,
) -> App:
    """Build every part of the engine once. ``telephony``: the backend every dialler start uses (tests); by
    default a fresh one from the settings at every dialler (re)start."""
    database = database or make_engine(settings.resolved_database_url())
    sessions = make_session_factory(database)
    calendar = TradingCalendar(settings.market_closures)
    metrics = Metrics(sessions, clock, settings.tz)
    # The depository bank over its HTTP gateway protocol (the simulated bank runs as its own service).
    bank = bank or HttpBank(settings.bank_url, timeout=settings.bank_timeout_seconds)
    transfers = TransferService(
        sessions, bank, calendar, limits_from(settings), settings.tz, clock=clock, checkpoint=checkpoint,
        reconcile_grace=timedelta(seconds=settings.reconcile_grace_seconds), observer=metrics.transfer_observed,
    )
    app = App(settings, database, sessions, calendar, bank, transfers, clock, metrics=metrics)
    metrics.watch_bus(app.bus.subscriber_counts)
    metrics.watch_parts(app.parts.snapshot, settings.telephony_backend)
    given = telephony
    if settings.telephony_backend == "twilio" or (given is not None and isinstance(given, _twilio_calls_type())):
        from callcenter.adapters.telephony.twilio_calls import TwilioLine

        app.twilio_line = TwilioLine()
        if given is not None:
            app.twilio_line.plug(given)
    app.telephony = (lambda: telephony_from_settings(settings, app.twilio_line)) if given is None else (lambda: given)
    from callcenter.services.care.notify_calls import NotificationLine
    from callcenter.parts.scheduler import CampaignScheduler

    app.notifications = NotificationLine()
    app.scheduler = CampaignScheduler(app)
    if settings.bank_simulator:
        from callcenter.bank.runner import BankProcess

        app.bank_process = BankProcess(settings)
    from callcenter.services.auth import set_parameters
    from callcenter.services.hash_pool import HashPool
    from callcenter.services.ivr.store_backend import StoreIvrBackend
    from callcenter.services.throttles import ThrottlePolicies

    set_parameters(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    app.hash_pool = HashPool(settings.argon2_workers)
    _wire_orders(app)
    _wire_recordings(app)
    app.phones = phone_publisher_from_settings(settings)
    app.ivr = StoreIvrBackend(sessions, transfers, clock, policies=ThrottlePolicies.from_settings(settings),
                              bus=app.bus, verify=app.hash_pool.verify, orders=app.orders,
                              appointments=app.appointments, recordings=app.recordings)
    return app


def phone_publisher_from_settings(settings: Settings) -> Any:
    """Where the agents' PJSIP endpoints go (issue 18): the include file and the reload account, or nowhere."""
    from callcenter.adapters.telephony.pjsip_agents import publisher_from

    return publisher_from(settings.asterisk_pjsip_agents_path, settings.ami_servers[0] if settings.ami_servers else "",
                          settings.ami_phones_username, settings.ami_phones_secret.get_secret_value())


# --- phone orders (issue 15): the order service over the simulated exchange -----------------------------------


def _wire_orders(app: App) -> None:
    from callcenter.services.orders import OrderService, rules_from
    from callcenter.adapters.trading_exchange import SimulatedExchange

    rules = rules_from(app.settings)
    exchange = SimulatedExchange(app.sessions, app.calendar, rules, app.settings.tz, seed=app.settings.order_exchange_seed)
    app.orders = OrderService(app.sessions, exchange, app.calendar, rules, app.settings.tz, clock=app.clock,
                              confirmation_years=app.settings.recording_retention_years_order)
    from callcenter.services.appointments import AppointmentService
    from callcenter.services.appointments import rules_from as slot_rules_from

    app.appointments = AppointmentService(app.sessions, app.calendar, slot_rules_from(app.settings), app.settings.tz,
                                          clock=app.clock)


# --- call recordings (issue 14): the recording service over the configured store -------------------------------


def recording_store_from_settings(settings: Settings) -> Any:
    """The recording store the settings name: the filesystem (``recordings_dir``) or an S3-compatible store."""
    if settings.recordings_backend == "s3":
        from callcenter.adapters.recordings_s3 import S3RecordingStore, make_s3_client

        client = make_s3_client(settings.recordings_s3_endpoint_url, settings.recordings_s3_region,
                                settings.recordings_s3_access_key,
                                settings.recordings_s3_secret_key.get_secret_value())
        return S3RecordingStore(client, settings.recordings_s3_bucket, settings.recordings_s3_prefix)
    from callcenter.adapters.recordings_fs import FileRecordingStore

    return FileRecordingStore(settings.recordings_path)


def _wire_recordings(app: App) -> None:
    from callcenter.services.recordings import RecordingService

    s = app.settings
    app.recordings = RecordingService(app.sessions, recording_store_from_settings(s), app.clock, s.retention_years(),
                                      s.recording_agent_may_listen)
