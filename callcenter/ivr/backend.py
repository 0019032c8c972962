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
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Protocol

from callcenter.care.rules import TOPICS
from callcenter.domain.masking import mask_account
from callcenter.domain import throttle
from callcenter.domain.throttle import Backoff, Counter
from callcenter.i18n import t
from callcenter.ivr.interpreter import ActionResult, RunAction

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

    digit: str  # "1".."5"
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
    raise ValueError(f"unknown action {cmd.name!r}")


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


# The 财经秘书 keys of the IVR menu, in order (the same as callcenter.care.subscriptions.IVR_TOPICS; a test
# keeps them equal — this module stays free of the store).
IVR_TOPIC_ORDER: tuple[str, ...] = ("corporate_actions", "ipo", "bulletin", "market_close", "birthday")


def _default_backoff(free_setting: str) -> Backoff:
    """The IVR backoff of the default settings (``# throttles`` in callcenter/settings.py)."""
    from callcenter.settings import Settings

    f = Settings.model_fields
    return Backoff(f[free_setting].default, f["ivr_backoff_base_s"].default, f["ivr_backoff_max_s"].default,
                   f["ivr_backoff_forget_minutes"].default * 60.0)


def _topic_label(topic: str, lang: str) -> str:
    return t(f"ivr.care_topic.{topic}", lang)


def demo_backend(now: Callable[[], datetime] | None = None) -> FakeIvrBackend:
    """A fake with one demo client: fund account 1234567890123456, PIN 123456, two banks, three holdings."""
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
    backend.bulletins["zh-CN"] = Bulletin("B-1", "今日沪深两市正常交易，银证转账服务时间为交易日九点至十六点。")
    backend.bulletins["en"] = Bulletin("B-1", "Markets are open today. Bank-securities transfers run from 9:00 to "
                                              "16:00 on trading days.")
    return backend
