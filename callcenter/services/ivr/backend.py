"""The port between the hotline and the brokerage: what the IVR may ask, as a small typed Protocol.

Methods are synchronous (they talk to the database); async adapters call them with
``asyncio.to_thread``.  The DB-backed implementation lives with the store; :class:`FakeIvrBackend`
here keeps everything in memory for tests, the text phone and the benchmark, and models the same
rules (PIN throttles across calls, transfer idempotency).

Rules every implementation keeps:
- ``authenticate`` is throttled per fund account (the number typed, known or not) and per caller ID, across
  calls, by the one rule of ``callcenter.domain.throttle`` (exponential backoff after a free allowance; a
  success clears the account's counter). An attempt is admitted — and counted — before the PIN is checked, so
  simultaneous calls cannot race the counters (row lock / one critical section). While a counter backs off
  the outcome is ``locked``. ``unknown_account``, ``wrong_pin`` and ``locked`` are reported to the flow, which
  says the same thing for all three.
- ``transfer`` applies a transfer at most once per ``idempotency_key``: a repeated call with the same key
  returns the first result without moving money again.
- ``record_event`` stores one step of a call; ``detail`` never holds a PIN or a typed amount.
- Phone orders (电话委托): ``place_order`` checks the trading password (交易密码, its own throttle per fund account)
  and then places the order at most once per ``idempotency_key`` (``<call id>:<step>``), recording the channel and
  the caller's number; ``preview_order`` answers the rules (freeze, fees or the refusal) without placing anything;
  ``change_secret`` changes the PIN or the trading password (old one checked under its throttle, the new one
  twice, ``callcenter.domain.credentials`` strength rules).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Literal, Protocol

from callcenter.domain.reminders import TOPICS
from callcenter.domain.masking import mask_account
from callcenter.domain import throttle
from callcenter.domain.throttle import Backoff, Counter
from callcenter.i18n import t
from callcenter.domain.ivr.interpreter import ActionResult, RunAction

AuthOutcome = Literal["ok", "wrong_pin", "locked", "unknown_account", "call_limit"]
Direction = Literal["bank_to_broker", "broker_to_bank"]


@dataclass(frozen=True)
class AuthResult:
    outcome: AuthOutcome
    client_id: str | None = None
    masked_account: str | None = None  # domain.masking.mask_account, e.g. "3100****3456"
    locked_until: datetime | None = None
    failures: int = 0  # consecutive failures so far (after this attempt)


@dataclass(frozen=True)
class AccountBalance:
    fund_account_id: str
    masked_account: str
    account_tail: str  # last 4 digits, read to the caller
    bank_code: str  # "icbc", "ccb", ... ; prompt ivr.bank.<code> names it
    bank_name: str
    main: bool
    available_fen: int
    frozen_fen: int
    total_assets_fen: int


@dataclass(frozen=True)
class Holding:
    code: str  # "600000"
    name: str
    quantity: int
    market_value_fen: int


@dataclass(frozen=True)
class TransferAccount:
    fund_account_id: str
    account_tail: str
    bank_code: str
    bank_name: str


@dataclass(frozen=True)
class TransferResult:
    ok: bool
    reference: str | None = None
    error_code: str | None = None  # outside_hours | insufficient_funds | over_limit | bank_unavailable | ...


@dataclass(frozen=True)
class Subscription:
    """One 财经秘书 topic as the IVR reads it: the key that toggles it, and whether the client gets it."""

    digit: str  # "1".."7"
    topic: str  # corporate_actions | ipo | bulletin | market_close | birthday (prompt ivr.care_topic.<topic>)
    enabled: bool
    label: str = ""  # the topic's name in the caller's language (for text carriers)


@dataclass(frozen=True)
class Bulletin:
    bulletin_id: str
    text: str
    audio_path: str | None = None  # a recorded version, played instead of synthesised speech


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming one Twilio webhook (see ``twilio_voice.CallStateStore``): ``mine`` (handle it), or the first delivery's stored answer
    (``response`` None while that one is still being handled, claimed at ``claimed_at``)."""

    mine: bool
    response: str | None = None
    claimed_at: datetime | None = None


@dataclass(frozen=True)
class StockQuote:
    code: str
    name: str
    last_fen: int
    prev_close_fen: int

    @property
    def change_fen(self) -> int:
        return self.last_fen - self.prev_close_fen


@dataclass(frozen=True)
class OrderPreview:
    """The rules' answer before the trading password: what the order would freeze (buys) or cost (fees)."""

    ok: bool
    error_code: str | None = None  # a domain.orders.Rule value
    price_fen: int = 0  # the limit price, or a market buy's freeze price
    amount_fen: int = 0  # price x quantity
    frozen_fen: int = 0
    fees_fen: int = 0
    queued: bool = False  # outside a session: it waits for the next one


@dataclass(frozen=True)
class PlaceResult:
    outcome: Literal["filled", "accepted", "rejected", "wrong_password", "locked"]
    order_id: str | None = None
    status: str = ""
    filled_qty: int = 0
    frozen_fen: int = 0
    error_code: str | None = None


@dataclass(frozen=True)
class PhoneOrder:
    order_id: str
    code: str
    name: str
    side: str  # buy / sell
    quantity: int
    price_fen: int
    status: str  # queued pending open partial filled cancelled rejected expired
    filled_qty: int


@dataclass(frozen=True)
class PhoneTrade:
    code: str
    name: str
    side: str
    quantity: int
    price_fen: int
    value_fen: int


@dataclass(frozen=True)
class AppointmentSlot:
    """A free slot the hotline offers: ``start`` (ISO 8601, local time with offset) and how it is said."""

    start: str
    label: str


@dataclass(frozen=True)
class BookedAppointment:
    appointment_id: str
    kind: str  # domain.appointments.KINDS (prompt ivr.appt_kind.<kind>)
    start: str
    label: str


@dataclass(frozen=True)
class BookingResult:
    ok: bool
    appointment_id: str | None = None
    error_code: str | None = None  # a domain.appointments.Rule value


SecretKind = Literal["pin", "trading"]
SecretOutcome = Literal["ok", "wrong_old", "locked", "weak"]


@dataclass(frozen=True)
class SecretChange:
    outcome: SecretOutcome
    weak_code: str | None = None  # mismatch | same_as_old | domain.credentials.WEAK_CODES


class IvrBackend(Protocol):
    def authenticate(self, fund_account: str, pin: str, caller: str, call_id: str) -> AuthResult:
        """Check fund account + PIN. Caller ID is recorded, never trusted as proof of identity."""
        ...

    def balances(self, client_id: str) -> list[AccountBalance]:
        """One entry per fund account of the client, main account first."""
        ...

    def holdings(self, client_id: str) -> list[Holding]:
        """Largest market value first."""
        ...

    def transfer_accounts(self, client_id: str) -> list[TransferAccount]:
        """Fund accounts with a linked bank (third-party custody) that may transfer."""
        ...

    def transfer(
        self,
        client_id: str,
        fund_account_id: str,
        direction: Direction,
        amount_fen: int,
        idempotency_key: str,
        channel: str,
        caller_phone: str,
    ) -> TransferResult:
        """Move money between the bank and the fund account, exactly once per idempotency_key."""
        ...

    def latest_bulletin(self, lang: str) -> Bulletin | None:
        ...

    def record_event(self, call_id: str, step: str, detail: dict[str, Any]) -> int | None:
        """Record one step of the call; returns the call record's id when the backend keeps one (the IVR
        session's id: a hand-off's call id is made from it)."""
        ...

    def subscriptions(self, client_id: str, lang: str) -> list[Subscription]:
        """The client's 财经秘书 topics in IVR key order (defaults filled in)."""
        ...

    def toggle_subscription(self, client_id: str, digit: str, lang: str) -> Subscription | None:
        """Switch the topic behind ``digit``; the topic's new state, or None for a key with no topic."""
        ...

    # --- phone orders ----------------------------------------------------------------------------------
    def quote(self, code: str) -> StockQuote | None:
        """None for a code that is not tradable."""
        ...

    def preview_order(self, client_id: str, side: str, code: str, kind: str, price_fen: int | None,
                      quantity: int) -> OrderPreview:
        ...

    def place_order(self, client_id: str, side: str, code: str, kind: str, price_fen: int | None, quantity: int,
                    trading_password: str, idempotency_key: str, channel: str, caller_phone: str,
                    lang: str = "zh-CN") -> PlaceResult:
        """Check the trading password (throttled), then place the order once per ``idempotency_key``."""
        ...

    def orders_today(self, client_id: str) -> list[PhoneOrder]:
        ...

    def open_orders(self, client_id: str) -> list[PhoneOrder]:
        ...

    def trades_today(self, client_id: str) -> list[PhoneTrade]:
        ...

    def cancel_order(self, client_id: str, order_id: str) -> tuple[bool, str | None]:
        """(cancelled, refusal code). Cancelling an order already cancelled answers (True, None)."""
        ...

    def change_secret(self, client_id: str, which: SecretKind, old: str, new: str, again: str) -> SecretChange:
        ...

    def market_summary(self) -> list[StockQuote]:
        ...

    def set_price_alert(self, client_id: str, code: str, direction: str, price_fen: int) -> str | None:
        """Arm a price alert; None when set, else a refusal code (unknown_code, bad_threshold)."""
        ...

    # --- 预约服务 appointments ------------------------------------------------------------------------------
    def appointment_slots(self, client_id: str, kind: str, lang: str) -> list[AppointmentSlot]:
        """The next free slots of ``kind`` (a handful, in time order)."""
        ...

    def book_appointment(self, client_id: str, kind: str, start: str, idempotency_key: str, channel: str,
                         call_id: str) -> BookingResult:
        """Book ``kind`` at ``start`` once per ``idempotency_key``."""
        ...

    def appointments(self, client_id: str, lang: str) -> list[BookedAppointment]:
        """The client's upcoming booked appointments."""
        ...


# --- running an interpreter RunAction against a backend (shared by every adapter) --------------
@dataclass(frozen=True)
class CallContext:
    call_id: str
    caller: str
    channel: str  # "ivr-agi" | "ivr-twilio" | "ivr-text"
    lang: str = "zh-CN"


def _balance_dict(b: AccountBalance) -> dict[str, Any]:
    return {"id": b.fund_account_id, "masked_account": b.masked_account, "account_tail": b.account_tail,
            "bank_code": b.bank_code, "bank_name": b.bank_name, "main": b.main,
            "available_fen": b.available_fen, "frozen_fen": b.frozen_fen, "total_fen": b.total_assets_fen}


def run_action(backend: IvrBackend, cmd: RunAction, ctx: CallContext, lang: str | None = None) -> ActionResult:
    """Carry out one RunAction; backend exceptions become the ``error`` outcome."""
    try:
        return _run(backend, cmd, ctx, lang or ctx.lang)
    except Exception as exc:  # noqa: BLE001 - the caller hears "system busy", the record says why
        return ActionResult(cmd.name, "error", {"error_code": type(exc).__name__})


def _run(backend: IvrBackend, cmd: RunAction, ctx: CallContext, lang: str) -> ActionResult:
    a = cmd.args
    if cmd.name == "authenticate":
        auth = backend.authenticate(str(a.get("fund_account") or ""), str(a.get("pin") or ""), ctx.caller,
                                    ctx.call_id)
        data: dict[str, Any] = {}
        if auth.outcome == "ok":
            data = {"client_id": auth.client_id, "masked_account": auth.masked_account}
        return ActionResult(cmd.name, auth.outcome, data)
    if cmd.name == "balances":
        rows = backend.balances(str(a["client_id"]))
        return ActionResult(cmd.name, "ok" if rows else "none", {"balances": [_balance_dict(b) for b in rows]})
    if cmd.name == "holdings":
        items = sorted(backend.holdings(str(a["client_id"])), key=lambda h: -h.market_value_fen)
        return ActionResult(cmd.name, "ok" if items else "none", {"holdings": [
            {"code": h.code, "name": h.name, "quantity": h.quantity, "market_value_fen": h.market_value_fen}
            for h in items]})
    if cmd.name == "transfer_accounts":
        accounts = [{"id": t.fund_account_id, "account_tail": t.account_tail, "bank_code": t.bank_code,
                     "bank_name": t.bank_name} for t in backend.transfer_accounts(str(a["client_id"]))]
        if not accounts:
            return ActionResult(cmd.name, "none", {"transfer_accounts": []})
        if len(accounts) == 1:
            return ActionResult(cmd.name, "one", {"transfer_accounts": accounts, "account": accounts[0]})
        return ActionResult(cmd.name, "several", {"transfer_accounts": accounts})
    if cmd.name == "transfer":
        account = a.get("account") or {}
        if not cmd.idempotency_key:
            raise ValueError("transfer without idempotency key")
        res = backend.transfer(str(a["client_id"]), str(account["id"]), a["direction"], int(a["amount_fen"]),
                               cmd.idempotency_key, ctx.channel, ctx.caller)
        data = {"reference": res.reference, "error_code": res.error_code}
        return ActionResult(cmd.name, "ok" if res.ok else "rejected", data)
    if cmd.name == "bulletin":
        bulletin = backend.latest_bulletin(lang)
        if bulletin is None:
            return ActionResult(cmd.name, "none", {"bulletin_text": None})
        return ActionResult(cmd.name, "ok", {"bulletin_text": bulletin.text, "bulletin_id": bulletin.bulletin_id,
                                             "bulletin_audio": bulletin.audio_path})
    if cmd.name == "subscriptions":
        subs = backend.subscriptions(str(a["client_id"]), lang)
        return ActionResult(cmd.name, "ok" if subs else "none", {"subscriptions": [_sub_dict(x) for x in subs]})
    if cmd.name == "toggle_subscription":
        changed = backend.toggle_subscription(str(a["client_id"]), str(a.get("digit") or ""), lang)
        if changed is None:
            return ActionResult(cmd.name, "invalid", {"topic": None})
        return ActionResult(cmd.name, "enabled" if changed.enabled else "disabled", {"topic": changed.topic})
    if cmd.name in ORDER_ACTIONS:
        return _run_order_action(backend, cmd, ctx, lang)
    if cmd.name in APPOINTMENT_ACTIONS:
        return _run_appointment_action(backend, cmd, ctx, lang)
    raise ValueError(f"unknown action {cmd.name!r}")


APPOINTMENT_ACTIONS = frozenset({"appointment_slots", "book_appointment", "appointments"})


def _run_appointment_action(backend: IvrBackend, cmd: RunAction, ctx: CallContext, lang: str) -> ActionResult:
    a = cmd.args
    if cmd.name == "appointment_slots":
        slots = [{"start": x.start, "label": x.label}
                 for x in backend.appointment_slots(str(a["client_id"]), str(a.get("appt_kind") or ""), lang)]
        return ActionResult(cmd.name, "ok" if slots else "none", {"slots": slots})
    if cmd.name == "book_appointment":
        if not cmd.idempotency_key:
            raise ValueError("book_appointment without idempotency key")
        slot = a.get("slot") or {}
        r = backend.book_appointment(str(a["client_id"]), str(a.get("appt_kind") or ""), str(slot.get("start") or ""),
                                     cmd.idempotency_key, ORDER_CHANNELS.get(ctx.channel, ctx.channel), ctx.call_id)
        return ActionResult(cmd.name, "ok" if r.ok else "rejected",
                            {"appointment_id": r.appointment_id, "error_code": r.error_code})
    rows = [{"id": x.appointment_id, "kind": x.kind, "start": x.start, "label": x.label}
            for x in backend.appointments(str(a["client_id"]), lang)]
    return ActionResult(cmd.name, "ok" if rows else "none", {"my_appointments": rows})


# --- phone orders: the flow's variables ------------------------------------------------------------------
ORDER_ACTIONS = frozenset({"quote", "preview_order", "place_order", "orders_today", "trades_today", "open_orders",
                           "cancel_order", "change_pin", "change_trading_password", "market_summary",
                           "set_price_alert"})
# the carrier's channel -> the order's channel (the CSRC record of a phone order)
ORDER_CHANNELS = {"ivr-agi": "ivr", "ivr-twilio": "twilio", "ivr-text": "text"}


def _quote_dict(q: StockQuote) -> dict[str, Any]:
    change = q.change_fen
    return {"code": q.code, "name": q.name, "last_fen": q.last_fen, "change_abs_fen": abs(change),
            "up": change > 0, "down": change < 0, "flat": change == 0}


def _order_dict(o: PhoneOrder) -> dict[str, Any]:
    return {"id": o.order_id, "code": o.code, "name": o.name, "buy": o.side == "buy", "sell": o.side == "sell",
            "quantity": o.quantity, "price_fen": o.price_fen, "status": o.status, "filled_qty": o.filled_qty}


def _trade_dict(t_: PhoneTrade) -> dict[str, Any]:
    return {"code": t_.code, "name": t_.name, "buy": t_.side == "buy", "sell": t_.side == "sell",
            "quantity": t_.quantity, "price_fen": t_.price_fen, "value_fen": t_.value_fen}


def _price(a: dict[str, Any]) -> int | None:
    if a.get("kind") == "market":
        return None
    return int(a.get("price_fen") or 0) or None


def _quantity(a: dict[str, Any]) -> int:
    raw = str(a.get("quantity") or "")
    return int(raw) if raw.isdigit() else 0


def _run_order_action(backend: IvrBackend, cmd: RunAction, ctx: CallContext, lang: str = "zh-CN") -> ActionResult:
    a = cmd.args
    name = cmd.name
    if name == "quote":
        q = backend.quote(str(a.get("code") or ""))
        if q is None:
            return ActionResult(name, "unknown", {"stock": None, "stock_code": str(a.get("code") or "")})
        return ActionResult(name, "ok", {"stock": _quote_dict(q), "stock_name": q.name, "stock_code": q.code})
    if name == "preview_order":
        p = backend.preview_order(str(a["client_id"]), str(a.get("side")), str(a.get("code")),
                                  str(a.get("kind") or "limit"), _price(a), _quantity(a))
        if not p.ok:
            return ActionResult(name, "rejected", {"error_code": p.error_code, "preview": None})
        return ActionResult(name, "ok", {"error_code": None, "preview": {
            "price_fen": p.price_fen, "amount_fen": p.amount_fen, "frozen_fen": p.frozen_fen, "fees_fen": p.fees_fen,
            "queued": p.queued, "buy": a.get("side") == "buy", "sell": a.get("side") == "sell",
            "market": a.get("kind") == "market"}})
    if name == "place_order":
        if not cmd.idempotency_key:
            raise ValueError("place_order without idempotency key")
        r = backend.place_order(str(a["client_id"]), str(a.get("side")), str(a.get("code")),
                                str(a.get("kind") or "limit"), _price(a), _quantity(a),
                                str(a.get("trading_password") or ""), cmd.idempotency_key,
                                ORDER_CHANNELS.get(ctx.channel, ctx.channel), ctx.caller, lang=lang)
        return ActionResult(name, r.outcome, {"order_id": r.order_id, "order_status": r.status,
                                              "filled_qty": r.filled_qty, "error_code": r.error_code})
    if name in ("orders_today", "open_orders"):
        rows = [_order_dict(o) for o in getattr(backend, name)(str(a["client_id"]))]
        var = "orders" if name == "orders_today" else "open_orders"
        return ActionResult(name, "ok" if rows else "none", {var: rows})
    if name == "trades_today":
        trades = [_trade_dict(x) for x in backend.trades_today(str(a["client_id"]))]
        return ActionResult(name, "ok" if trades else "none", {"trades": trades})
    if name == "cancel_order":
        order = a.get("order") or {}
        ok, code = backend.cancel_order(str(a["client_id"]), str(order.get("id") or ""))
        return ActionResult(name, "ok" if ok else "rejected", {"order_id": order.get("id"), "error_code": code})
    if name in ("change_pin", "change_trading_password"):
        which: SecretKind = "pin" if name == "change_pin" else "trading"
        change = backend.change_secret(str(a["client_id"]), which, str(a.get("old_secret") or ""),
                                       str(a.get("new_secret") or ""), str(a.get("new_secret_again") or ""))
        return ActionResult(name, change.outcome, {"weak_code": change.weak_code})
    if name == "market_summary":
        market = [_quote_dict(q) for q in backend.market_summary()]
        return ActionResult(name, "ok" if market else "none", {"market": market})
    if name == "set_price_alert":
        code = backend.set_price_alert(str(a["client_id"]), str(a.get("code") or ""), str(a.get("direction") or ""),
                                       int(a.get("price_fen") or 0))
        return ActionResult(name, "ok" if code is None else "invalid", {"error_code": code})
    raise ValueError(f"unknown action {name!r}")


def _sub_dict(x: Subscription) -> dict[str, Any]:
    # ``on``/``off`` both present: the flow's ``when`` reads a truthy variable only
    return {"digit": x.digit, "topic": x.topic, "on": x.enabled, "off": not x.enabled, "label": x.label}


# --- the in-memory fake ------------------------------------------------------------------------
@dataclass
class FakeAccount:
    fund_account: str  # the number the caller types
    fund_account_id: str
    pin: str
    client_id: str
    bank_code: str
    bank_name: str
    main: bool = True
    available_fen: int = 0
    frozen_fen: int = 0
    bank_balance_fen: int = 0
    trading_password: str = ""  # 交易密码 ("" : none set, orders refused)
    birthday: date | None = None


@dataclass
class FakeTransfer:
    reference: str
    client_id: str
    fund_account_id: str
    direction: str
    amount_fen: int
    idempotency_key: str
    channel: str


@dataclass
class FakeIvrBackend:
    """In-memory brokerage for tests, the text phone and the benchmark. Thread-safe."""

    now: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))
    account_backoff: Backoff = field(default_factory=lambda: _default_backoff("ivr_free_attempts_per_account"))
    caller_backoff: Backoff = field(default_factory=lambda: _default_backoff("ivr_free_attempts_per_caller"))
    per_call_limit: int = 3
    accounts: dict[str, FakeAccount] = field(default_factory=dict)  # by fund_account number
    holdings_by_client: dict[str, list[Holding]] = field(default_factory=dict)
    bulletins: dict[str, Bulletin] = field(default_factory=dict)  # by lang
    transfers: list[FakeTransfer] = field(default_factory=list)
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    counters: dict[tuple[str, str], Counter] = field(default_factory=dict)  # ("account"|"caller", number)
    call_failures: dict[str, int] = field(default_factory=dict)
    reject_next_transfer: str | None = None  # an error_code to return once (tests)
    topics_by_client: dict[str, dict[str, bool]] = field(default_factory=dict)  # 财经秘书 choices made
    quotes: dict[str, StockQuote] = field(default_factory=dict)  # the tradable codes
    orders: list[PhoneOrder] = field(default_factory=list)
    order_keys: dict[str, PlaceResult] = field(default_factory=dict)
    order_meta: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # order id -> (client, channel, caller)
    trades: list[tuple[str, PhoneTrade]] = field(default_factory=list)  # (client id, trade)
    price_alerts: list[tuple[str, str, str, int]] = field(default_factory=list)  # (client, code, direction, fen)
    # 预约服务: (id, client, kind, start local ISO, channel); the calendar is Monday to Friday, the default slot rules
    booked: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    booking_keys: dict[str, BookingResult] = field(default_factory=dict)
    _by_key: dict[str, TransferResult] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_account(self, account: FakeAccount) -> FakeAccount:
        self.accounts[account.fund_account] = account
        return account

    def _client_accounts(self, client_id: str) -> list[FakeAccount]:
        rows = [a for a in self.accounts.values() if a.client_id == client_id]
        return sorted(rows, key=lambda a: (not a.main, a.fund_account_id))

    @property
    def failures(self) -> dict[str, int]:
        """Counted failures per fund account number."""
        return {k: c.failures for (scope, k), c in self.counters.items() if scope == "account"}

    @property
    def locked_until(self) -> dict[str, datetime]:
        """Fund accounts backing off, and until when."""
        now = self.now()
        out = {}
        for (scope, k), c in self.counters.items():
            until = throttle.blocked_until(c, now, self.account_backoff) if scope == "account" else None
            if until is not None:
                out[k] = until
        return out

    def authenticate(self, fund_account: str, pin: str, caller: str, call_id: str) -> AuthResult:
        with self._lock:
            now = self.now()
            if self.call_failures.get(call_id, 0) >= self.per_call_limit:
                return AuthResult("call_limit")
            keys = [("account", fund_account.strip()[:20]), ("caller", caller.strip()[:64])]
            policies = [self.account_backoff, self.caller_backoff]
            admission = throttle.admit([(self.counters.get(k, Counter()), p) for k, p in zip(keys, policies)], now)
            self.counters.update(zip(keys, admission.counters))
            account = self.accounts.get(keys[0][1])
            failures = admission.counters[0].failures
            if not admission.admitted or account is None or account.pin != pin:
                self.call_failures[call_id] = self.call_failures.get(call_id, 0) + 1
                if not admission.admitted:
                    return AuthResult("locked", locked_until=now + admission.retry_after, failures=failures)
                return AuthResult("unknown_account" if account is None else "wrong_pin", failures=failures)
            self.counters[keys[0]] = throttle.cleared()
            self.counters[keys[1]] = throttle.refunded(self.counters[keys[1]])
            return AuthResult("ok", client_id=account.client_id, masked_account=mask_account(account.fund_account))

    def balances(self, client_id: str) -> list[AccountBalance]:
        with self._lock:
            return [AccountBalance(a.fund_account_id, mask_account(a.fund_account),
                                   a.fund_account[-4:], a.bank_code, a.bank_name, a.main, a.available_fen,
                                   a.frozen_fen, a.available_fen + a.frozen_fen + self._market_value(a))
                    for a in self._client_accounts(client_id)]

    def _market_value(self, account: FakeAccount) -> int:
        if not account.main:
            return 0
        return sum(h.market_value_fen for h in self.holdings_by_client.get(account.client_id, []))

    def holdings(self, client_id: str) -> list[Holding]:
        with self._lock:
            return sorted(self.holdings_by_client.get(client_id, []), key=lambda h: -h.market_value_fen)

    def transfer_accounts(self, client_id: str) -> list[TransferAccount]:
        with self._lock:
            return [TransferAccount(a.fund_account_id, a.fund_account[-4:], a.bank_code, a.bank_name)
                    for a in self._client_accounts(client_id)]

    def transfer(self, client_id: str, fund_account_id: str, direction: Direction, amount_fen: int,
                 idempotency_key: str, channel: str, caller_phone: str) -> TransferResult:
        with self._lock:
            if idempotency_key in self._by_key:
                return self._by_key[idempotency_key]
            account = next((a for a in self.accounts.values()
                            if a.fund_account_id == fund_account_id and a.client_id == client_id), None)
            result: TransferResult
            if account is None:
                result = TransferResult(False, error_code="unknown_account")
            elif amount_fen <= 0:
                result = TransferResult(False, error_code="bad_amount")
            elif self.reject_next_transfer:
                result = TransferResult(False, error_code=self.reject_next_transfer)
                self.reject_next_transfer = None
            elif direction == "broker_to_bank" and account.available_fen < amount_fen:
                result = TransferResult(False, error_code="insufficient_funds")
            elif direction == "bank_to_broker" and account.bank_balance_fen < amount_fen:
                result = TransferResult(False, error_code="insufficient_bank_funds")
            else:
                sign = 1 if direction == "bank_to_broker" else -1
                account.available_fen += sign * amount_fen
                account.bank_balance_fen -= sign * amount_fen
                reference = str(int(hashlib.sha256(idempotency_key.encode()).hexdigest(), 16))[:10]
                self.transfers.append(FakeTransfer(reference, client_id, fund_account_id, direction, amount_fen,
                                                   idempotency_key, channel))
                result = TransferResult(True, reference=reference)
            self._by_key[idempotency_key] = result
            return result

    def latest_bulletin(self, lang: str) -> Bulletin | None:
        with self._lock:
            return self.bulletins.get(lang) or self.bulletins.get("zh-CN")

    def record_event(self, call_id: str, step: str, detail: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((call_id, step, dict(detail)))

    def _topics(self, client_id: str) -> dict[str, bool]:
        return {**TOPICS, **self.topics_by_client.get(client_id, {})}

    def subscriptions(self, client_id: str, lang: str) -> list[Subscription]:
        with self._lock:
            topics = self._topics(client_id)
            return [Subscription(str(i), tp, topics[tp], _topic_label(tp, lang))
                    for i, tp in enumerate(IVR_TOPIC_ORDER, start=1)]

    def toggle_subscription(self, client_id: str, digit: str, lang: str) -> Subscription | None:
        if not digit.isdigit() or not 1 <= int(digit) <= len(IVR_TOPIC_ORDER):
            return None
        with self._lock:
            topic = IVR_TOPIC_ORDER[int(digit) - 1]
            enabled = not self._topics(client_id)[topic]
            self.topics_by_client.setdefault(client_id, {})[topic] = enabled
            return Subscription(digit, topic, enabled, _topic_label(topic, lang))


    # --- phone orders: a small model of the rules (fees 5 yuan minimum + stamp duty on sells; a limit buy at or
    # above the last price fills at once; T+1: what was bought today cannot be sold) ---------------------------
    def _main(self, client_id: str) -> FakeAccount | None:
        return next((a for a in self._client_accounts(client_id) if a.main), None)

    def quote(self, code: str) -> StockQuote | None:
        return self.quotes.get(code)

    def _fees(self, side: str, value_fen: int) -> int:
        return max(500, (value_fen * 25 + 50_000) // 100_000) + ((value_fen * 5 + 5_000) // 10_000 if side == "sell" else 0)

    def _holding(self, client_id: str, code: str) -> int:
        return sum(h.quantity for h in self.holdings_by_client.get(client_id, []) if h.code == code)

    def preview_order(self, client_id: str, side: str, code: str, kind: str, price_fen: int | None,
                      quantity: int) -> OrderPreview:
        with self._lock:
            return self._preview(client_id, side, code, kind, price_fen, quantity)

    def _preview(self, client_id: str, side: str, code: str, kind: str, price_fen: int | None,
                 quantity: int) -> OrderPreview:
        q = self.quotes.get(code)
        account = self._main(client_id)
        if q is None:
            return OrderPreview(False, "unknown_code")
        if account is None:
            return OrderPreview(False, "unknown_account")
        if quantity <= 0 or (side == "buy" and quantity % 100):
            return OrderPreview(False, "quantity_not_board_lot")
        price = q.last_fen if kind == "market" or price_fen is None else price_fen
        value = price * quantity
        fees = self._fees(side, value)
        if side == "buy":
            if value + fees > account.available_fen:
                return OrderPreview(False, "insufficient_funds")
            return OrderPreview(True, None, price, value, value + fees, fees)
        bought = sum(t_.quantity for c, t_ in self.trades if c == client_id and t_.code == code and t_.side == "buy")
        settled = self._holding(client_id, code)  # the holdings are yesterday's shares; today's buys are on top
        if quantity > settled:
            return OrderPreview(False, "bought_today_not_sellable" if quantity <= settled + bought
                                else "insufficient_shares")
        return OrderPreview(True, None, price, value, 0, fees)

    def place_order(self, client_id: str, side: str, code: str, kind: str, price_fen: int | None, quantity: int,
                    trading_password: str, idempotency_key: str, channel: str, caller_phone: str,
                    lang: str = "zh-CN") -> PlaceResult:
        with self._lock:
            account = self._main(client_id)
            number = account.fund_account if account else ""
            key = ("trading", number)
            admission = throttle.admit([(self.counters.get(key, Counter()), self.account_backoff)], self.now())
            self.counters[key] = admission.counters[0]
            if not admission.admitted:
                return PlaceResult("locked")
            if account is None or not account.trading_password or account.trading_password != trading_password:
                return PlaceResult("wrong_password")
            self.counters[key] = throttle.cleared()
            if idempotency_key in self.order_keys:
                return self.order_keys[idempotency_key]
            p = self._preview(client_id, side, code, kind, price_fen, quantity)
            order_id = str(len(self.orders) + 1)
            if not p.ok:
                result = PlaceResult("rejected", order_id, "rejected", error_code=p.error_code)
                status, filled = "rejected", 0
            else:
                q = self.quotes[code]
                fills = side == "sell" or kind == "market" or p.price_fen >= q.last_fen
                status, filled = ("filled", quantity) if fills else ("open", 0)
                if side == "buy":
                    account.available_fen -= p.frozen_fen
                    if fills:
                        self.trades.append((client_id, PhoneTrade(code, q.name, side, quantity, p.price_fen,
                                                                   p.amount_fen)))
                    else:
                        account.frozen_fen += p.frozen_fen
                else:
                    self.trades.append((client_id, PhoneTrade(code, q.name, side, quantity, p.price_fen,
                                                               p.amount_fen)))
                result = PlaceResult("filled" if fills else "accepted", order_id, status, filled,
                                     p.frozen_fen if not fills else 0)
            self.orders.append(PhoneOrder(order_id, code, self.quotes[code].name if code in self.quotes else "", side,
                                          quantity, p.price_fen, status, filled))
            self.order_meta[order_id] = (client_id, channel, caller_phone)
            self.order_keys[idempotency_key] = result
            return result

    def _orders_of(self, client_id: str) -> list[PhoneOrder]:
        return [o for o in self.orders if self.order_meta[o.order_id][0] == client_id]

    def orders_today(self, client_id: str) -> list[PhoneOrder]:
        with self._lock:
            return self._orders_of(client_id)

    def open_orders(self, client_id: str) -> list[PhoneOrder]:
        with self._lock:
            return [o for o in self._orders_of(client_id) if o.status in ("open", "partial", "queued")]

    def trades_today(self, client_id: str) -> list[PhoneTrade]:
        with self._lock:
            return [t_ for c, t_ in self.trades if c == client_id]

    def cancel_order(self, client_id: str, order_id: str) -> tuple[bool, str | None]:
        with self._lock:
            for i, o in enumerate(self.orders):
                if o.order_id == order_id and self.order_meta[order_id][0] == client_id:
                    if o.status == "cancelled":
                        return True, None
                    if o.status not in ("open", "partial", "queued"):
                        return False, "order_not_cancellable"
                    self.orders[i] = PhoneOrder(o.order_id, o.code, o.name, o.side, o.quantity, o.price_fen,
                                                "cancelled", o.filled_qty)
                    account = self._main(client_id)
                    if account is not None and o.side == "buy":
                        released = o.price_fen * o.quantity + self._fees("buy", o.price_fen * o.quantity)
                        account.frozen_fen -= released
                        account.available_fen += released
                    return True, None
            return False, "unknown_order"

    def change_secret(self, client_id: str, which: SecretKind, old: str, new: str, again: str) -> SecretChange:
        from callcenter.domain.credentials import check_new_secret

        with self._lock:
            account = self._main(client_id)
            if account is None:
                return SecretChange("wrong_old")
            key = ("account" if which == "pin" else "trading", account.fund_account)
            admission = throttle.admit([(self.counters.get(key, Counter()), self.account_backoff)], self.now())
            self.counters[key] = admission.counters[0]
            if not admission.admitted:
                return SecretChange("locked")
            current = account.pin if which == "pin" else account.trading_password
            if not current or current != old:
                return SecretChange("wrong_old")
            self.counters[key] = throttle.cleared()
            weak = check_new_secret(new, again, account.birthday, old)
            if weak is not None:
                return SecretChange("weak", weak)
            for a in self._client_accounts(client_id):
                if which == "pin":
                    a.pin = new
                else:
                    a.trading_password = new
            return SecretChange("ok")

    def market_summary(self) -> list[StockQuote]:
        with self._lock:
            return list(self.quotes.values())[:5]

    def set_price_alert(self, client_id: str, code: str, direction: str, price_fen: int) -> str | None:
        with self._lock:
            if code not in self.quotes:
                return "unknown_code"
            if direction not in ("above", "below") or price_fen <= 0:
                return "bad_threshold"
            self.price_alerts.append((client_id, code, direction, price_fen))
            return None

    # --- 预约服务: the domain's slot rules on a Monday-to-Friday calendar, in China Standard Time ---------------
    def _slot_counts(self, kind: str) -> dict[datetime, int]:
        counts: dict[datetime, int] = {}
        for _i, _c, k, start, _ch in self.booked:
            if k == kind:
                at = datetime.fromisoformat(start)
                counts[at] = counts.get(at, 0) + 1
        return counts

    def appointment_slots(self, client_id: str, kind: str, lang: str) -> list[AppointmentSlot]:
        from callcenter.domain.appointments import AppointmentError, SlotRules, free_slots

        with self._lock:
            try:
                slots = free_slots(kind, self.now().astimezone(_CST), _weekday, self._slot_counts(kind), SlotRules())
            except AppointmentError:
                return []
            return [AppointmentSlot(x.isoformat(), _slot_text(x, lang)) for x in slots]

    def book_appointment(self, client_id: str, kind: str, start: str, idempotency_key: str, channel: str,
                         call_id: str) -> BookingResult:
        from callcenter.domain.appointments import AppointmentError, Booked, SlotRules, decide

        with self._lock:
            if idempotency_key in self.booking_keys:
                return self.booking_keys[idempotency_key]
            try:
                at = datetime.fromisoformat(start).astimezone(_CST)
            except ValueError:
                return BookingResult(False, error_code="off_grid")
            mine = [b for b in self.booked if b[1] == client_id]
            booked = Booked(self._slot_counts(kind).get(at, 0), len(mine),
                            sum(1 for b in mine if b[2] == kind and b[3][:10] == at.date().isoformat()))
            try:
                decide(kind, at, self.now().astimezone(_CST), _weekday, booked, SlotRules())
            except AppointmentError as exc:
                return BookingResult(False, error_code=exc.rule.value)
            appt_id = str(len(self.booked) + 1)
            self.booked.append((appt_id, client_id, kind, at.isoformat(), channel))
            result = BookingResult(True, appt_id)
            self.booking_keys[idempotency_key] = result
            return result

    def appointments(self, client_id: str, lang: str) -> list[BookedAppointment]:
        with self._lock:
            return [BookedAppointment(i, k, st, _slot_text(datetime.fromisoformat(st), lang))
                    for i, c, k, st, _ch in self.booked if c == client_id]


_CST = timezone(timedelta(hours=8), "CST")


def _weekday(day: date) -> bool:
    return day.weekday() < 5


def _slot_text(at: datetime, lang: str) -> str:
    return t("appointments.slot_label", lang, month=at.month, day=at.day,
             weekday=t(f"appointments.weekday.{at.isoweekday()}", lang),
             month_name=t(f"appointments.month.{at.month}", lang), time=at.strftime("%H:%M"))


# The 财经秘书 keys of the IVR menu, in order (the same as callcenter.services.care.subscriptions.IVR_TOPICS; a test
# keeps them equal — this module stays free of the store).
IVR_TOPIC_ORDER: tuple[str, ...] = ("corporate_actions", "ipo", "bulletin", "market_close", "birthday",
                                        "trade_confirmation", "price_alert")


def _default_backoff(free_setting: str) -> Backoff:
    """The IVR backoff of the default settings (``# throttles`` in callcenter/settings.py)."""
    from callcenter.settings import Settings

    f = Settings.model_fields
    return Backoff(f[free_setting].default, f["ivr_backoff_base_s"].default, f["ivr_backoff_max_s"].default,
                   f["ivr_backoff_forget_minutes"].default * 60.0)


def _topic_label(topic: str, lang: str) -> str:
    return t(f"ivr.care_topic.{topic}", lang)


def demo_backend(now: Callable[[], datetime] | None = None) -> FakeIvrBackend:
    """A fake with one demo client: fund account 1234567890123456, PIN 123456, trading password 802413, two
    banks, three holdings, four quoted codes."""
    backend = FakeIvrBackend(now=now) if now else FakeIvrBackend()
    backend.add_account(FakeAccount("1234567890123456", "FA-1", "123456", "C-1001", "icbc", "中国工商银行",
                                    main=True, available_fen=1_234_560, frozen_fen=50_000,
                                    bank_balance_fen=10_000_000))
    backend.add_account(FakeAccount("1234567890120002", "FA-2", "654321", "C-1001", "ccb", "中国建设银行",
                                    main=False, available_fen=1_000_005, frozen_fen=0,
                                    bank_balance_fen=2_000_000))
    backend.holdings_by_client["C-1001"] = [
        Holding("000001", "平安银行", 1000, 1_152_000),
        Holding("600519", "贵州茅台", 100, 16_800_000),
        Holding("600000", "浦发银行", 2000, 1_500_000),
    ]
    backend.accounts["1234567890123456"].trading_password = "802413"
    backend.quotes.update({q.code: q for q in (StockQuote("600000", "浦发银行", 750, 740),
                                               StockQuote("600519", "贵州茅台", 168_000, 169_000),
                                               StockQuote("000001", "平安银行", 1152, 1152),
                                               StockQuote("300750", "宁德时代", 20_000, 19_500))})
    backend.bulletins["zh-CN"] = Bulletin("B-1", "今日沪深两市正常交易，银证转账服务时间为交易日九点至十六点。")
    backend.bulletins["en"] = Bulletin("B-1", "Markets are open today. Bank-securities transfers run from 9:00 to "
                                              "16:00 on trading days.")
    return backend
