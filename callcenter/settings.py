"""Settings: defaults in config/callcenter.toml, overridden by CALLCENTER_* environment variables.

The settings file is the ``config/callcenter.toml`` shipped with the engine (``callcenter.shipped``), or the file
named by ``CALLCENTER_CONFIG``. Relative paths (the SQLite file, ``var/prompts``, ``ivr_flows_dir``,
``scripts_dir``) are relative to ``home`` (``CALLCENTER_HOME``), by default the current directory.

Settings are built once by the entry point (``load_settings``) and passed down; nothing here is global.
"""

from __future__ import annotations

import os
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from callcenter.shipped import shipped_dir


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it in one line."""


def _config_file() -> Path | None:
    explicit = os.environ.get("CALLCENTER_CONFIG")
    if explicit:
        return Path(explicit)
    default = shipped_dir("config") / "callcenter.toml"
    return default if default.exists() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLCENTER_", extra="forbid", validate_default=True)

    # storage
    database_url: str = "sqlite:///var/callcenter.db"
    # live events reach the screens of every engine process on the same PostgreSQL (LISTEN/NOTIFY bridge)
    events_across_processes: bool = True
    # telephony
    telephony_backend: Literal["simulated", "asterisk", "twilio"] = "simulated"
    # the simulated PBX's customers (CustomerModel fields: p_human, human_answer_min_s, talk_mean_s, ...), and seed
    simulated_pbx_model: dict[str, float] = Field(default_factory=dict)
    simulated_pbx_seed: int = 0
    # a dialler process holds its agents and calls while it renews this lease; another takes them over after it
    dialer_lease_s: float = Field(30.0, ge=1.0, le=3600.0)
    ami_servers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1:5038"])
    ami_username: str = "callcenter"
    ami_secret: SecretStr = SecretStr("")
    ami_connect_timeout_s: float = 5.0
    # the agent's phone: the extension they give at login (or an admin set) through this template
    agent_phone_template: str = "PJSIP/{extension}"
    # agents' phones as PJSIP endpoints (issue 18, config/asterisk/pjsip.conf): the digest realm (pjsip.conf's
    # default_realm), the include file the engine writes its agents' endpoints to (as the engine sees Asterisk's
    # pjsip_agents.conf; empty: not written) and the AMI account allowed to reload res_pjsip after a change (its
    # own, with the "config" write privilege the engine's call account does not have; empty: reload by hand)
    sip_realm: str = Field("callcenter", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    asterisk_pjsip_agents_path: str = ""
    ami_phones_username: str = ""
    ami_phones_secret: SecretStr = SecretStr("")
    # the browser softphone: the WSS address of Asterisk's SIP-over-WebSocket (http.conf's TLS server, path /ws)
    # and the host of the agents' SIP addresses (empty: the host of that address); the desk refuses "ready" while
    # the phone the agent sits at is not registered, as reported within this many seconds
    softphone_ws_url: str = ""
    softphone_sip_domain: str = ""
    phone_report_stale_s: float = Field(25.0, ge=2.0, le=600.0)
    asterisk_sound_prefix: str = Field("cc", pattern=r"^[A-Za-z0-9_.\-/]{1,64}$")  # our prompts under Asterisk's sounds dir
    ami_dial_template: str = "PJSIP/{number}@trunk"  # the Channel of an outbound Originate
    ami_amd: bool = True  # answered outbound calls run AMD() in the dialplan (context cc-outbound-amd)
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(4573, ge=1, le=65535)
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_from_number: str = ""
    twilio_public_url: str = "http://127.0.0.1:8000"
    # signs the prompt URLs carriers fetch (GET /prompts/<signature>/<name>.wav); empty: derived from the
    # Twilio auth token
    prompt_url_key: SecretStr = SecretStr("")
    # agentless notification calls: the number they show (per message kind -- the subject's prefix: event,
    # birthday, bulletin, market_close -- else notify_caller_id, else company_hotline), and what "0" does:
    # "agent" hands the caller to the call core (an agent, or the sorry prompt and a call back after
    # handoff_wait_s), "callback" books a call back at once when no agent is ready
    notify_caller_id: str = ""
    notify_caller_ids: dict[str, str] = Field(default_factory=dict)
    notify_zero: Literal["agent", "callback"] = "agent"
    sms_backend: Literal["simulated", "twilio", "aliyun"] = "simulated"
    # Aliyun SMS (adapters/sms_aliyun.py): the AccessKey, the registered signature (短信签名), a registered
    # template code per message kind (event, birthday, bulletin, market_close, trading; "default" for the
    # rest) and the template variable the message goes in; receipts pushed to POST /sms/aliyun/report/<token>
    aliyun_access_key_id: str = ""
    aliyun_access_key_secret: SecretStr = SecretStr("")
    aliyun_sms_sign_name: str = ""
    aliyun_sms_templates: dict[str, str] = Field(default_factory=dict)
    aliyun_sms_template_param: str = "content"
    aliyun_sms_endpoint: str = "https://dysmsapi.aliyuncs.com/"
    aliyun_sms_report_token: SecretStr = SecretStr("")
    # web
    web_host: str = "127.0.0.1"
    web_port: int = Field(8000, ge=1, le=65535)
    session_idle_minutes: int = Field(30, ge=1)
    session_absolute_hours: int = Field(12, ge=1)
    max_request_bytes: int = Field(1_000_000, ge=1024)
    # web exposure (hardening, helper a): who may read the API docs (/docs, /redoc, /openapi.json): anyone,
    # logged-in staff only, or nobody; and whether X-Forwarded-Proto from the proxy in front says "https" (HSTS)
    api_docs: Literal["public", "staff", "off"] = "staff"
    trust_forwarded_proto: bool = False
    # GET /metrics (Prometheus): an administrator's session, or any request from loopback (127.0.0.1 / ::1) while
    # this is true. Behind a reverse proxy on the same host every request comes from loopback: set it false there
    metrics_from_loopback: bool = True
    # business
    company_name: str = "示例证券"  # spoken in talk scripts and messages
    company_name_en: str = "Example Securities"
    company_hotline: str = "95500"
    timezone: str = "Asia/Shanghai"
    transfer_window_start: time = time(9, 0)
    transfer_window_end: time = time(16, 0)
    transfer_per_limit_yuan: Decimal = Decimal("500000.00")
    transfer_daily_limit_yuan: Decimal = Decimal("1000000.00")
    ivr_pin_attempts_per_call: int = Field(3, ge=1)
    market_closures: list[str] = Field(default_factory=list)  # extra non-trading days (YYYY-MM-DD)
    # data and state directories (issue 9: packaging)
    home: Path | None = None  # CALLCENTER_HOME: base of relative paths; default: the current directory
    ivr_flows_dir: Path | None = None  # the operator's IVR flows; default: the flows shipped with the engine
    scripts_dir: Path | None = None  # the operator's talk scripts; default: the shipped scripts_templates
    prompts_dir: Path = Path("var") / "prompts"  # rendered IVR prompts (callcenter prompts build)
    # engine parts (callcenter.supervisor): a part that fails is restarted after 5 s, 10 s, 20 s ... up to the cap;
    # one that had run longer than the cap starts over at the first delay
    restart_backoff_initial_s: float = Field(5.0, gt=0)
    restart_backoff_max_s: float = Field(120.0, gt=0)
    # IVR carriers: FastAGI limits, the PIN check's hashing pool, Twilio replays (hardening 8, 9, 12)
    agi_header_timeout_s: float = Field(5.0, gt=0)  # the whole AGI environment must arrive within this
    agi_reply_timeout_s: float = Field(60.0, gt=0)  # each AGI answer (plus the command's own wait, e.g. GET DATA)
    agi_max_connections: int = Field(500, ge=1)  # FastAGI sessions at once; more are refused (logged)
    ivr_wait_prompt_after_s: float = Field(0.0, ge=0)  # "请稍候" when the PIN check takes longer (0: always, at once)
    ivr_typeahead_poll_ms: int = Field(250, ge=10, le=5000)  # WAIT FOR DIGIT slices that keep type-ahead keys
    # an IVR hand-off waiting longer for an agent hears cc/<lang>/handoff_sorry and gets a call back booked
    handoff_wait_s: float = Field(120.0, ge=5.0, le=3600.0)
    # the wall board's service level: today's hand-offs an agent answered within this many seconds (80/20)
    service_level_s: float = Field(20.0, ge=1.0, le=3600.0)
    # the dialler's limits (DialerEngine): an answered call nobody takes within abandon_after_s of its pick-up
    # hears the safe-harbour prompt (the regulator's 2 s); an outbound call rings at most originate_timeout_s;
    # a due callback is still placed up to callback_grace_s late; an agent's wrap-up ends by itself after
    # wrap_up_limit_s (0: only on their screen)
    abandon_after_s: float = Field(2.0, gt=0, le=60.0)
    originate_timeout_s: float = Field(30.0, ge=5.0, le=300.0)
    callback_grace_s: float = Field(7200.0, ge=0)
    wrap_up_limit_s: float = Field(0.0, ge=0)
    argon2_workers: int = Field(0, ge=0)  # argon2 computations at once; 0 = os.cpu_count()
    argon2_time_cost: int = Field(3, ge=1)  # argon2id parameters of new hashes (stored hashes keep their own)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    twilio_replay_wait_s: float = Field(10.0, ge=0)  # a replay waits this long for the first delivery's answer
    # an IVR action (PIN check, transfer) done within this is answered in its own webhook; a slower one goes on
    # behind a <Gather> that keeps the keys typed meanwhile ("please wait" for the PIN check)
    twilio_action_inline_s: float = Field(0.3, ge=0, le=10)
    # a recording's file is fetched once Twilio's completed callback came, waited for at most this long after the leg
    twilio_recording_wait_s: float = Field(600.0, gt=0)
    # throttles: failed staff logins and IVR PINs, per account and per source, exponential backoff
    # (callcenter/domain/throttle.py): the first N failures are free, then each failure doubles the wait
    # from base_s up to max_s; failures are forgotten after forget_minutes without one.
    login_free_attempts_per_user: int = Field(5, ge=1)
    login_free_attempts_per_ip: int = Field(50, ge=1)
    login_backoff_base_s: float = Field(2.0, gt=0)
    login_backoff_max_s: float = Field(300.0, gt=0)
    login_backoff_forget_minutes: int = Field(60, ge=1)
    ivr_free_attempts_per_account: int = Field(5, ge=1)
    ivr_free_attempts_per_caller: int = Field(10, ge=1)
    ivr_backoff_base_s: float = Field(30.0, gt=0)
    ivr_backoff_max_s: float = Field(1800.0, gt=0)
    ivr_backoff_forget_minutes: int = Field(1440, ge=1)
    # depository bank: the engine's gateway client, and the simulated bank (`callcenter bank serve`)
    bank_url: str = "http://127.0.0.1:8010"  # where the engine reaches the bank gateway
    bank_timeout_seconds: float = Field(5.0, gt=0, le=120)  # no answer within this: the outcome is unknown
    bank_simulator: bool = True  # `callcenter run` / `serve` start the simulated bank at bank_url beside the engine
    bank_database_url: str = "sqlite:///var/bank.db"  # the simulated bank's own books, never the engine's database
    bank_fault_refuse_rate: float = Field(0.0, ge=0, le=1)  # share of transfers the bank refuses
    bank_fault_timeout_before_rate: float = Field(0.0, ge=0, le=1)  # hang and drop before applying
    bank_fault_timeout_after_rate: float = Field(0.0, ge=0, le=1)  # apply, then hang and drop the answer
    bank_fault_down_rate: float = Field(0.0, ge=0, le=1)  # the bank process dies on the request
    bank_fault_hang_seconds: float = Field(10.0, ge=0, le=600)  # how long a timed-out request hangs
    bank_fault_seed: int = 0  # 0: a fresh random sequence; otherwise a repeatable one
    reconcile_grace_seconds: int = Field(120, ge=0)  # reconcile leaves pending transfers younger than this alone
    # phone orders (callcenter/domain/orders.py): the figures the exchanges and the broker revise
    order_limit_pct_main: Decimal = Field(Decimal("0.10"), gt=0, lt=1)  # daily limit, fraction of the previous close
    order_limit_pct_chinext: Decimal = Field(Decimal("0.20"), gt=0, lt=1)
    order_limit_pct_star: Decimal = Field(Decimal("0.20"), gt=0, lt=1)
    order_limit_pct_etf: Decimal = Field(Decimal("0.10"), gt=0, lt=1)
    order_limit_pct_st: Decimal = Field(Decimal("0.05"), gt=0, lt=1)  # risk-warning stocks on the main boards
    order_new_listing_free_days: int = Field(5, ge=0)  # trading days without a limit after listing
    order_max_qty_main: int = Field(1_000_000, ge=100)  # per-order maximum, limit orders (main board and ETFs)
    order_max_qty_chinext: int = Field(300_000, ge=100)
    order_max_qty_star: int = Field(100_000, ge=200)
    order_max_market_qty_main: int = Field(1_000_000, ge=100)  # per-order maximum, market orders
    order_max_market_qty_chinext: int = Field(150_000, ge=100)
    order_max_market_qty_star: int = Field(50_000, ge=200)
    order_commission_rate: Decimal = Field(Decimal("0.00025"), ge=0, lt=Decimal("0.01"))
    order_commission_min_yuan: Decimal = Field(Decimal("5"), ge=0)
    order_stamp_duty_rate: Decimal = Field(Decimal("0.0005"), ge=0, lt=Decimal("0.01"))  # sells only
    order_transfer_fee_rate: Decimal = Field(Decimal("0.00001"), ge=0, lt=Decimal("0.01"))
    order_outside_session: Literal["refuse", "queue"] = "refuse"  # orders entered outside the sessions
    order_exchange_seed: int = 7  # the simulated exchange's price walk
    # 预约服务 appointments (callcenter/domain/appointments.py): slots on trading days, capacity per slot and kind
    appointment_slot_minutes: int = Field(30, ge=10, le=240)
    appointment_min_lead_minutes: int = Field(60, ge=0, le=7 * 24 * 60)  # booked at least this long ahead
    appointment_horizon_trading_days: int = Field(10, ge=1, le=60)  # and at most this many trading days ahead
    appointment_capacity_group_callback: int = Field(3, ge=0, le=100)  # per slot
    appointment_capacity_analyst_callback: int = Field(1, ge=0, le=100)
    appointment_capacity_branch_visit: int = Field(2, ge=0, le=100)
    appointment_max_open_per_client: int = Field(3, ge=1, le=20)
    appointment_reminder_minutes: int = Field(120, ge=5, le=24 * 60)  # the SMS reminder, this long before
    # call recordings and quality inspection (issue 14; callcenter/services/recordings.py, quality.py)
    recordings_backend: Literal["filesystem", "s3"] = "filesystem"
    recordings_dir: Path = Path("var") / "recordings"  # filesystem store: one file per recording
    recordings_s3_bucket: str = ""  # S3-compatible store (AWS S3, MinIO, Ceph RGW)
    recordings_s3_prefix: str = Field("recordings/", pattern=r"^[A-Za-z0-9._/-]{0,64}$")
    recordings_s3_endpoint_url: str = ""  # empty: AWS; e.g. http://127.0.0.1:9000 for MinIO
    recordings_s3_region: str = ""
    recordings_s3_access_key: str = ""  # empty: boto3's own credential chain
    recordings_s3_secret_key: SecretStr = SecretStr("")
    # whole years a recording is kept after the call, per retention class (the CSRC asks 3 for call-backs and
    # complaint files); the daily purge deletes what has expired unless it is on legal hold
    recording_retention_years_callback: int = Field(3, ge=1, le=100)
    recording_retention_years_complaint: int = Field(3, ge=1, le=100)
    recording_retention_years_order: int = Field(3, ge=1, le=100)
    recording_retention_years_ordinary: int = Field(3, ge=1, le=100)
    recording_agent_may_listen: bool = False  # agents may play the recordings of their own calls
    record_calls: bool = True  # record every call that reaches an agent (MixMonitor / the simulated PBX's WAV)
    # the folder the shipped dialplan's MixMonitor writes to (its CC_RECORDINGS_DIR) as this engine reads it (a
    # shared folder; the same path when both run on one host). Empty: no audio is kept of Asterisk calls.
    asterisk_recordings_dir: str = ""
    # record hotline (IVR) sessions — menus, read-backs, the order confirmation: on Asterisk in MixMonitor segments
    # stopped while the caller types a PIN or a password (needs the folder above), on Twilio one Recordings-API
    # recording paused (silence) around those <Gather>s (services.ivr.recording)
    record_ivr: bool = True
    # 质检 sampling per agent per ISO week: qa_sample_count random calls, or (when qa_sample_rate > 0) that
    # share of the agent's recorded calls; every call with a complaint is sampled besides
    qa_sample_count: int = Field(3, ge=0, le=1000)
    qa_sample_rate: float = Field(0.0, ge=0, le=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("ami_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ami_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, got {server!r}")
        return value

    @field_validator("simulated_pbx_model")
    @classmethod
    def _customer_model(cls, value: dict[str, float]) -> dict[str, float]:
        from callcenter.domain.shift_simulation import CustomerModel

        try:
            CustomerModel(**value)
        except TypeError as exc:
            raise ValueError(f"not a customer model field: {exc}") from None
        return value

    @field_validator("ami_dial_template")
    @classmethod
    def _check_dial_template(cls, value: str) -> str:
        from callcenter.ports.telephony import check_dial_template

        return check_dial_template(value)

    @field_validator("agent_phone_template")
    @classmethod
    def _check_agent_phone_template(cls, value: str) -> str:
        from callcenter.ports.telephony import check_agent_phone_template

        return check_agent_phone_template(value)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value

    @field_validator("transfer_per_limit_yuan", "transfer_daily_limit_yuan")
    @classmethod
    def _positive_money(cls, value: Decimal) -> Decimal:
        exponent = value.as_tuple().exponent
        if value <= 0 or not isinstance(exponent, int) or exponent < -2:  # NaN/Infinity have a str exponent
            raise ValueError("must be a positive amount in yuan with at most 2 decimals")
        return value

    @model_validator(mode="after")
    def _check_window(self) -> "Settings":
        if self.transfer_window_start >= self.transfer_window_end:
            raise ValueError("transfer_window_start must be before transfer_window_end")
        if self.telephony_backend == "twilio" and not self.twilio_account_sid:
            raise ValueError("telephony_backend is 'twilio' but twilio_account_sid is empty")
        # An empty auth token is an HMAC key anyone can use: Twilio is never half configured.
        for name, chosen in (("telephony_backend", self.telephony_backend == "twilio"),
                             ("sms_backend", self.sms_backend == "twilio")):
            if chosen and not self.twilio_auth_token.get_secret_value():
                raise ValueError(f"{name} is 'twilio' but twilio_auth_token is empty")
        return self

    @model_validator(mode="after")
    def _check_recordings(self) -> "Settings":
        if self.recordings_backend == "s3" and not self.recordings_s3_bucket:
            raise ValueError("recordings_backend is 's3' but recordings_s3_bucket is empty")
        return self

    @property
    def recordings_path(self) -> Path:
        return self.path(self.recordings_dir)

    def retention_years(self) -> dict[str, int]:
        """Years kept per retention class (``callcenter.domain.recordings.RETENTION_CLASSES``)."""
        return {cls: int(getattr(self, f"recording_retention_years_{cls}"))
                for cls in ("callback", "complaint", "order", "ordinary")}

    @model_validator(mode="after")
    def _check_throttles(self) -> "Settings":
        for area in ("login", "ivr"):
            base, cap = getattr(self, f"{area}_backoff_base_s"), getattr(self, f"{area}_backoff_max_s")
            if cap < base:
                raise ValueError(f"{area}_backoff_max_s must be at least {area}_backoff_base_s")
            if getattr(self, f"{area}_backoff_forget_minutes") * 60 < cap:
                raise ValueError(f"{area}_backoff_forget_minutes must be at least {area}_backoff_max_s")
        return self

    @field_validator("bank_url")
    @classmethod
    def _check_bank_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected http://host:port")
        return value

    @field_validator("bank_database_url")
    @classmethod
    def _check_bank_db(cls, value: str) -> str:
        return cls._check_db(value)

    @model_validator(mode="after")
    def _check_bank(self) -> "Settings":
        faults = (self.bank_fault_refuse_rate + self.bank_fault_timeout_before_rate
                  + self.bank_fault_timeout_after_rate + self.bank_fault_down_rate)
        if faults > 1:
            raise ValueError("the bank_fault_*_rate settings add up to more than 1")
        if self.resolved_bank_database_url() == self.resolved_database_url():
            raise ValueError("bank_database_url must not be the engine's database_url (the bank keeps its own books)")
        return self

    def resolved_bank_database_url(self) -> str:
        """Like ``resolved_database_url``: a relative SQLite path is relative to ``home``."""
        return self._resolve_sqlite(self.bank_database_url)

    def _resolve_sqlite(self, url: str) -> str:
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rel = url[len(prefix):]
            if rel and rel != ":memory:":
                return prefix + str(self.path(Path(rel)))
        return url

    @property
    def twilio_configured(self) -> bool:
        """True when webhooks can be verified: only then are the Twilio routes mounted."""
        return bool(self.twilio_auth_token.get_secret_value())

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def transfer_per_limit_fen(self) -> int:
        return int(self.transfer_per_limit_yuan * 100)

    @property
    def transfer_daily_limit_fen(self) -> int:
        return int(self.transfer_daily_limit_yuan * 100)

    # --- data and state directories (issue 9: packaging) ---
    @property
    def home_path(self) -> Path:
        """``home`` as an absolute path (the current directory when unset)."""
        return (self.home or Path.cwd()).expanduser().resolve()

    def path(self, value: Path) -> Path:
        """``value`` made absolute: a relative path is relative to ``home``."""
        value = value.expanduser()
        return value if value.is_absolute() else self.home_path / value

    @property
    def flows_path(self) -> Path:
        """The folder of IVR flows: ``ivr_flows_dir``, else the flows shipped with the engine."""
        return self.path(self.ivr_flows_dir) if self.ivr_flows_dir else shipped_dir("ivr_flows")

    @property
    def scripts_path(self) -> Path:
        """The folder of talk scripts: ``scripts_dir``, else the scripts shipped with the engine."""
        return self.path(self.scripts_dir) if self.scripts_dir else shipped_dir("scripts_templates")

    @property
    def prompts_path(self) -> Path:
        return self.path(self.prompts_dir)

    def resolved_database_url(self) -> str:
        """A relative SQLite path is relative to ``home`` (default: the current directory), so ``make run`` in
        the checkout uses ``<checkout>/var/callcenter.db`` and an installed engine a ``var/`` where it runs."""
        return self._resolve_sqlite(self.database_url)


def load_settings(**overrides: Any) -> Settings:
    """Build settings or raise SettingsError with one line naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        env = f"CALLCENTER_{name.upper()}" if first["loc"] else "settings"
        raise SettingsError(f"invalid setting {name} ({env}): {first['msg']}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise SettingsError(f"cannot read settings: {exc}") from None
