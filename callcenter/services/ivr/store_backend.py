"""The hotline's backend on the real store: authentication with backoff throttles, balances, holdings, transfers through
the custody service, bulletins, the call record, and phone orders (电话委托) through ``App.orders`` as the client
themself (``Actor.client``), confirmed by the trading password (its own ``trading_pwd`` throttle). Implements
``callcenter.services.ivr.backend.IvrBackend``."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.care.subscriptions import IVR_TOPICS, SubscriptionService
from callcenter.domain.access import Actor
from callcenter.domain.events import HandoffWaiting
from callcenter.domain.masking import mask_account
from callcenter.domain.money import fen_to_yuan
from callcenter.i18n import t
from callcenter.services.ivr.backend import (AccountBalance, AppointmentSlot, AuthResult, BookedAppointment,
                                    BookingResult, Bulletin, Claim, Holding, OrderPreview, PhoneOrder,
                                    PhoneTrade, PlaceResult, SecretChange, SecretKind, StockQuote, Subscription,
                                    TransferAccount, TransferResult)
from callcenter.services import clients as client_views
from callcenter.services.auth import dummy_hash, hash_secret, verify_secret
from callcenter.domain.throttle import Admission
from callcenter.services import throttles
from callcenter.services.bus import EventBus
from callcenter.services.throttles import Scope, ThrottlePolicies, subject_of
from callcenter.services.transfers import IdempotencyConflict, TransferCommand, TransferService
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Bulletin as BulletinRow
from callcenter.store.models import Client, FundAccount, IvrSession, IvrStep, TwilioCallState, TwilioWebhook

log = logging.getLogger(__name__)

# custody rule codes -> the IVR's prompt keys (transfer_error.<code>)
IVR_ERRORS = {
    "outside_transfer_window": "outside_hours", "not_trading_day": "outside_hours",
    "insufficient_funds": "insufficient_funds", "bank_insufficient_funds": "insufficient_bank_funds",
    "over_per_transfer_limit": "over_limit", "over_daily_limit": "daily_limit",
    "account_locked": "account_locked", "pending": "pending",
}


# how many instruments the market summary reads
MARKET_SUMMARY_SIZE = 5


def _fen(price: str | None) -> int:
    from decimal import Decimal

    return int(Decimal(price or "0") * 100)


def _price_text(price_fen: int | None) -> str | None:
    return None if price_fen is None else f"{price_fen // 100}.{price_fen % 100:02d}"


class _OrdersMixin:
    """Phone orders on the store (mixed into StoreIvrBackend)."""

    _sessions: sessionmaker[Session]
    _orders: Any
    _policies: ThrottlePolicies
    _clock: Callable[[], datetime]
    _verify: Callable[[str, str], bool]
    _recordings: Any
    _appointments: Any

    def _main_account(self, client_id: str) -> str | None:
        return run_in_transaction(self._sessions, lambda s: s.execute(
            select(FundAccount.account_no).where(FundAccount.client_id == int(client_id), FundAccount.is_main.is_(True))
        ).scalar_one_or_none())

    def quote(self, code: str) -> StockQuote | None:
        from callcenter.domain.orders import OrderError

        try:
            q = self._orders.quote(code)
        except OrderError:
            return None
        return StockQuote(q.code, q.name, _fen(q.last), _fen(q.prev_close))

    def preview_order(self, client_id: str, side: str, code: str, kind: str, price_fen: int | None,
                      quantity: int) -> OrderPreview:
        account = self._main_account(client_id)
        if account is None:
            return OrderPreview(False, "unknown_account")
        out = self._orders.estimate(account, side, code, quantity, _price_text(price_fen), kind,
                                    actor=Actor.client(int(client_id)))
        if not out.ok:
            return OrderPreview(False, out.code)
        price = _fen(out.reference)
        return OrderPreview(True, None, price, price * quantity, out.frozen_fen, out.fees_fen, out.status == "queued")

    def _check_secret(self, scope: Scope, account_no: str, secret: str, column: str) -> str:
        """Admit one attempt under ``scope``'s throttle, then verify: ok | wrong | locked (the same argon2 work for
        every outcome)."""
        keys = [(scope, subject_of(scope, account_no))]
        now = self._clock()

        def admit(s: Session) -> tuple[Admission, str]:
            admission = throttles.admit(s, keys, self._policies, now)
            row = s.execute(select(FundAccount).where(FundAccount.account_no == account_no)).scalar_one()
            return admission, getattr(row, column) or ""

        admission, stored = run_in_transaction(self._sessions, admit)
        ok = self._verify(stored or dummy_hash(), secret or " ") and bool(stored) and secret.isdigit()
        if not admission.admitted:
            return "locked"
        if not ok:
            return "wrong"
        run_in_transaction(self._sessions, lambda s: throttles.succeeded(s, keys))
        return "ok"

    def place_order(self, client_id: str, side: str, code: str, kind: str, price_fen: int | None, quantity: int,
                    trading_password: str, idempotency_key: str, channel: str, caller_phone: str,
                    lang: str = "zh-CN") -> PlaceResult:
        from callcenter.domain.masking import mask_phone
        from callcenter.services.orders import Confirmation, PlaceOrder

        account = self._main_account(client_id)
        if account is None:
            return PlaceResult("rejected", error_code="unknown_account")
        checked = self._check_secret(Scope.TRADING_PWD, account, trading_password, "trading_pwd_hash")
        if checked != "ok":
            return PlaceResult("locked" if checked == "locked" else "wrong_password")
        call_id = idempotency_key.rsplit(":", 1)[0]
        out = self._orders.place(PlaceOrder(idempotency_key, account, side, code, quantity,
                                            None if kind == "market" else _price_text(price_fen), kind=kind,
                                            channel=channel[:16], caller_phone=caller_phone[:20],
                                            actor=Actor.client(int(client_id)),
                                            confirmation=Confirmation(call_id, lang, mask_phone(caller_phone))))
        if out.order_id and not out.replayed:
            self._keep_recording_as_order(out.order_id)
        order_id = str(out.order_id) if out.order_id else None
        if not out.ok:
            return PlaceResult("rejected", order_id, out.status, error_code=out.code)
        return PlaceResult("filled" if out.status == "filled" else "accepted", order_id, out.status, out.filled_qty,
                           out.frozen_fen)

    def _keep_recording_as_order(self, order_id: int) -> None:
        """A recording of the call that placed an order is kept under the ``order`` retention class (through the
        recording service's own reclassify; the confirmation record holds its id)."""
        if self._recordings is None:
            return
        from callcenter.store.models import OrderConfirmation

        recording_id = run_in_transaction(self._sessions, lambda s: s.execute(
            select(OrderConfirmation.recording_id).where(OrderConfirmation.order_id == order_id)).scalar_one_or_none())
        if recording_id is not None:
            try:
                self._recordings.reclassify(recording_id, "order")
            except Exception:  # noqa: BLE001 - the order stands; the purge keeps the longer class anyway
                log.exception("could not keep recording %s under the order class", recording_id)

    def _phone_orders(self, client_id: str, which: str) -> list[PhoneOrder]:
        account = self._main_account(client_id)
        if account is None:
            return []
        rows = getattr(self._orders, which)(account, actor=Actor.client(int(client_id)))
        return [PhoneOrder(str(o.order_id), o.code, o.name, o.side, o.quantity, _fen(o.price), o.status, o.filled_qty)
                for o in rows]

    def orders_today(self, client_id: str) -> list[PhoneOrder]:
        return self._phone_orders(client_id, "orders_today")

    def open_orders(self, client_id: str) -> list[PhoneOrder]:
        return self._phone_orders(client_id, "open_orders")

    def trades_today(self, client_id: str) -> list[PhoneTrade]:
        account = self._main_account(client_id)
        if account is None:
            return []
        return [PhoneTrade(t_.code, t_.name, t_.side, t_.quantity, _fen(t_.price), t_.value_fen)
                for t_ in self._orders.trades_today(account, actor=Actor.client(int(client_id)))]

    def cancel_order(self, client_id: str, order_id: str) -> tuple[bool, str | None]:
        account = self._main_account(client_id)
        if account is None or not order_id.isdigit():
            return False, "unknown_order"
        out = self._orders.cancel(account, int(order_id), actor=Actor.client(int(client_id)))
        return bool(out.ok), out.code

    def change_secret(self, client_id: str, which: SecretKind, old: str, new: str, again: str) -> SecretChange:
        """The old secret under its throttle (the PIN's is the login's ``ivr_account`` counter), then the strength
        rules; a PIN is every account's of the client (one IVR PIN per client), a trading password the main
        account's."""
        from callcenter.domain.credentials import check_new_secret

        account = self._main_account(client_id)
        if account is None:
            return SecretChange("wrong_old")
        scope, column = (Scope.IVR_ACCOUNT, "pin_hash") if which == "pin" else (Scope.TRADING_PWD, "trading_pwd_hash")
        checked = self._check_secret(scope, account, old, column)
        if checked != "ok":
            return SecretChange("locked" if checked == "locked" else "wrong_old")
        birthday = run_in_transaction(self._sessions, lambda s: s.get_one(Client, int(client_id)).birthday)
        weak = check_new_secret(new, again, birthday, old)
        if weak is not None:
            return SecretChange("weak", weak)
        hashed = hash_secret(new)

        def store(s: Session) -> None:
            q = select(FundAccount).where(FundAccount.client_id == int(client_id))
            if which == "trading":
                q = q.where(FundAccount.is_main.is_(True))
            for row in s.execute(q).scalars():
                setattr(row, column, hashed)

        run_in_transaction(self._sessions, store)
        return SecretChange("ok")

    def market_summary(self) -> list[StockQuote]:
        out = []
        for code in self._orders.instruments()[:MARKET_SUMMARY_SIZE]:
            q = self.quote(code)
            if q is not None:
                out.append(q)
        return out

    def set_price_alert(self, client_id: str, code: str, direction: str, price_fen: int) -> str | None:
        from callcenter.services.care.trading_alerts import AlertRefused, set_price_alert

        try:
            set_price_alert(self._sessions, self._orders, int(client_id), code, direction, price_fen * 10,
                            source="ivr", now=self._clock())
        except AlertRefused as exc:
            return exc.code
        return None


class _AppointmentsMixin:
    """预约服务 on the store (mixed into StoreIvrBackend): the client books as themself (``Actor.client``)."""

    _sessions: sessionmaker[Session]
    _appointments: Any

    def appointment_slots(self, client_id: str, kind: str, lang: str) -> list[AppointmentSlot]:
        from callcenter.domain.appointments import AppointmentError
        from callcenter.services.appointments import slot_label

        try:
            slots = self._appointments.free_slots(kind)
        except AppointmentError:
            return []
        return [AppointmentSlot(x.isoformat(), slot_label(x, self._appointments.tz, lang)) for x in slots]

    def book_appointment(self, client_id: str, kind: str, start: str, idempotency_key: str, channel: str,
                         call_id: str) -> BookingResult:
        from callcenter.domain.appointments import AppointmentError
        from callcenter.services.appointments import BookAppointment

        try:
            at = datetime.fromisoformat(start)
        except ValueError:
            return BookingResult(False, error_code="off_grid")
        sess_id = run_in_transaction(self._sessions, lambda s: s.execute(
            select(IvrSession.id).where(IvrSession.call_id == call_id[:64])).scalar_one_or_none())
        try:
            view = self._appointments.book(BookAppointment(f"ivr:{idempotency_key}", int(client_id), kind, at,
                                                           channel[:16], Actor.client(int(client_id)),
                                                           ivr_session_id=sess_id))
        except AppointmentError as exc:
            return BookingResult(False, error_code=exc.rule.value)
        return BookingResult(True, str(view.id))

    def appointments(self, client_id: str, lang: str) -> list[BookedAppointment]:
        from callcenter.services.appointments import slot_label

        return [BookedAppointment(str(a.id), a.kind, a.slot_start.isoformat(),
                                  slot_label(a.slot_start, self._appointments.tz, lang))
                for a in self._appointments.of_client(int(client_id), Actor.client(int(client_id)))]


class StoreIvrBackend(_OrdersMixin, _AppointmentsMixin):
    def __init__(self, sessions: sessionmaker[Session], transfers: TransferService, clock: Callable[[], datetime],
                 *, policies: ThrottlePolicies | None = None, bus: EventBus | None = None,
                 verify: Callable[[str, str], bool] = verify_secret, orders: Any = None, appointments: Any = None,
                 recordings: Any = None) -> None:
        self._sessions = sessions
        self._orders = orders  # callcenter.services.orders.OrderService (phone orders)
        self._appointments = appointments  # callcenter.services.appointments.AppointmentService (预约服务)
        self._recordings = recordings  # callcenter.services.recordings.RecordingService: reclassify only
        self._transfers = transfers
        self._clock = clock
        self._policies = policies or ThrottlePolicies.defaults()
        self._verify = verify  # the argon2 check (injectable: tests count the checks)
        self._bus = bus

    # -------------------------------------------------------------- authentication
    def authenticate(self, fund_account: str, pin: str, caller: str, call_id: str) -> AuthResult:
        """Throttled per fund account (the number typed, known or not) and per caller ID, with exponential
        backoff (``callcenter.domain.throttle``). The attempt is admitted under the counters' row locks before
        any PIN is checked. Every outcome but ``ok`` costs the same work — one admission transaction and one
        argon2 verification (against a dummy hash when the account is unknown, closed or backing off) — and the
        flow says the same sentence for all of them, so neither words nor timing tell which it was."""
        fund_account = subject_of(Scope.IVR_ACCOUNT, fund_account)
        keys = [(Scope.IVR_ACCOUNT, fund_account), (Scope.IVR_CALLER, subject_of(Scope.IVR_CALLER, caller))]
        now = self._clock()

        def admit(s: Session) -> tuple[Admission, tuple[str, int, str] | None]:
            admission = throttles.admit(s, keys, self._policies, now)
            if not admission.admitted:
                return admission, None
            row = s.execute(select(FundAccount).where(FundAccount.account_no == fund_account)).scalar_one_or_none()
            if row is None or row.status == "closed" or not row.pin_hash:
                return admission, None
            return admission, (row.pin_hash, row.client_id, row.account_no)

        admission, found = run_in_transaction(self._sessions, admit)
        # the same argon2 work whatever the outcome; an empty PIN must not skip it either
        ok = self._verify(found[0] if found else dummy_hash(), pin or " ") and found is not None and pin.isdigit()
        failures = admission.counters[0].failures
        if not admission.admitted:
            return AuthResult("locked", locked_until=now + admission.retry_after, failures=failures)
        if found is None:
            return AuthResult("unknown_account", failures=failures)
        if not ok:
            return AuthResult("wrong_pin", failures=failures)
        run_in_transaction(self._sessions, lambda s: throttles.succeeded(s, keys))
        result = AuthResult("ok", client_id=str(found[1]), masked_account=mask_account(found[2]))
        self._with_session(call_id, lambda sess: self._identify(sess, found[1], result, caller))
        return result

    @staticmethod
    def _identify(sess: IvrSession, client_id: int, result: AuthResult, caller: str) -> None:
        sess.client_id = client_id
        sess.caller = caller[:32]
        sess.masked_account = result.masked_account or ""

    # -------------------------------------------------------------- reads
    def balances(self, client_id: str) -> list[AccountBalance]:
        def work(s: Session) -> list[AccountBalance]:
            funds = {f.id: f for f in s.execute(select(FundAccount).where(FundAccount.client_id == int(client_id))).scalars()}
            out = []
            for b in client_views.account_balances(s, int(client_id)):
                if b.status == "closed":
                    continue
                f = funds[b.fund_account_id]
                out.append(AccountBalance(str(b.fund_account_id), b.account_masked, f.account_no[-4:],
                                          f.bank_account.bank_code.lower(), b.bank_name, b.is_main, b.available_fen,
                                          b.frozen_fen, b.total_assets_fen))
            return sorted(out, key=lambda a: not a.main)

        return run_in_transaction(self._sessions, work)

    def holdings(self, client_id: str) -> list[Holding]:
        def work(s: Session) -> list[Holding]:
            return [Holding(h.code, h.name, h.quantity, h.market_value_fen)
                    for h in client_views.holdings(s, int(client_id))]

        return run_in_transaction(self._sessions, work)

    def transfer_accounts(self, client_id: str) -> list[TransferAccount]:
        def work(s: Session) -> list[TransferAccount]:
            funds = s.execute(select(FundAccount).where(FundAccount.client_id == int(client_id),
                                                        FundAccount.status == "active").order_by(FundAccount.seq)).scalars()
            return [TransferAccount(str(f.id), f.account_no[-4:], f.bank_account.bank_code.lower(),
                                    f.bank_account.bank_name) for f in funds]

        return run_in_transaction(self._sessions, work)

    def latest_bulletin(self, lang: str) -> Bulletin | None:
        def work(s: Session) -> Bulletin | None:
            row = s.execute(select(BulletinRow).where(BulletinRow.lang == lang, BulletinRow.published_at <= self._clock())
                            .order_by(BulletinRow.published_at.desc()).limit(1)).scalar_one_or_none()
            if row is None:
                return None
            return Bulletin(str(row.id), row.text, row.audio_path or None)

        return run_in_transaction(self._sessions, work)

    # -------------------------------------------------------------- 财经秘书 subscriptions
    def subscriptions(self, client_id: str, lang: str) -> list[Subscription]:
        topics = SubscriptionService(self._sessions, self._clock).get(int(client_id)).topics
        return [Subscription(str(i), tp, topics[tp], t(f"ivr.care_topic.{tp}", lang))
                for i, tp in enumerate(IVR_TOPICS, start=1)]

    def toggle_subscription(self, client_id: str, digit: str, lang: str) -> Subscription | None:
        changed = SubscriptionService(self._sessions, self._clock).ivr_toggle(int(client_id), digit, lang)
        if changed is None:
            return None
        topic, enabled, _said = changed
        return Subscription(digit, topic, enabled, t(f"ivr.care_topic.{topic}", lang))

    # -------------------------------------------------------------- money
    def transfer(self, client_id: str, fund_account_id: str, direction: str, amount_fen: int, idempotency_key: str,
                 channel: str, caller_phone: str) -> TransferResult:
        kind = {"bank_to_broker": "bank_to_fund", "broker_to_bank": "fund_to_bank"}.get(direction)
        if kind is None or amount_fen <= 0:
            return TransferResult(False, error_code="bad_amount")

        def account_no(s: Session) -> str | None:
            f = s.get(FundAccount, int(fund_account_id))
            return f.account_no if f is not None and f.client_id == int(client_id) else None

        number = run_in_transaction(self._sessions, account_no)
        if number is None:
            return TransferResult(False, error_code="unknown_account")
        cmd = TransferCommand(idempotency_key=f"ivr:{idempotency_key}", kind=kind, fund_account_no=number,
                              amount_yuan=str(fen_to_yuan(amount_fen)), channel=channel[:16],
                              caller_phone=caller_phone[:20], actor=Actor.client(int(client_id)))
        try:
            out = self._transfers.transfer(cmd)
        except IdempotencyConflict:
            return TransferResult(False, error_code="rejected")
        if out.status == "done":
            call_id = idempotency_key.split(":", 1)[0]
            self._with_session(call_id, lambda sess: self._add_ref(sess, out.reference))
            return TransferResult(True, reference=out.reference)
        code = "pending" if out.status == "pending" else out.error_code
        return TransferResult(False, reference=out.reference or None, error_code=IVR_ERRORS.get(code, "rejected"))

    @staticmethod
    def _add_ref(sess: IvrSession, reference: str) -> None:
        refs = [r for r in sess.transfer_refs.split(",") if r]
        if reference not in refs:
            sess.transfer_refs = ",".join(refs + [reference])

    # -------------------------------------------------------------- records
    def record_event(self, call_id: str, step: str, detail: dict[str, Any]) -> int:
        detail = {k: v for k, v in detail.items() if k not in ("pin", "digits", "amount", "amount_fen")}
        now = self._clock()

        def apply(sess: IvrSession) -> None:
            if step == "start":
                sess.lang = str(detail.get("lang", sess.lang))[:8]
            elif step == "handoff":
                sess.handed_off = True
                sess.summary = str(detail.get("summary", ""))[:2000]
            elif step == "end":
                sess.ended_at = now
                sess.end_reason = str(detail.get("reason", ""))[:32]
            elif step == "twilio_status" and detail.get("CallStatus") == "completed" and sess.ended_at is None:
                sess.ended_at, sess.end_reason = now, "completed"

        sess_id = self._with_session(call_id, apply, step=step, detail=detail, caller=str(detail.get("caller", "")))
        if step == "handoff" and self._bus is not None:
            self._bus.emit_threadsafe(HandoffWaiting(ivr_session_id=sess_id))  # a nudge: the hand-off is in the DB
        return sess_id

    def _with_session(self, call_id: str, change: Callable[[IvrSession], None], *, step: str | None = None,
                      detail: dict[str, Any] | None = None, caller: str = "") -> int:
        call_id = call_id[:64]
        now = self._clock()

        def work(s: Session) -> int:
            sess = s.execute(select(IvrSession).where(IvrSession.call_id == call_id)).scalar_one_or_none()
            if sess is None:
                sess = IvrSession(call_id=call_id, channel="ivr", caller=caller[:32], started_at=now)
                s.add(sess)
                s.flush()
            change(sess)
            if step is not None:
                s.add(IvrStep(session_id=sess.id, at=now, step=step[:48],
                              detail=json.dumps(detail or {}, ensure_ascii=False, default=str)[:4000]))
            return sess.id

        try:
            return run_in_transaction(self._sessions, work)
        except IntegrityError:  # two events of a new call raced to create its session
            return run_in_transaction(self._sessions, work)


class StoreCallStateStore:
    """Twilio call state and webhook claims in the database, so any web process can take a call's next webhook
    and a replay reaching another process has no second effect (the claim is a row insert under a primary key)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    def load(self, call_sid: str) -> dict[str, Any] | None:
        def work(s: Session) -> dict[str, Any] | None:
            row = s.get(TwilioCallState, call_sid[:64])
            return None if row is None else json.loads(row.state)

        return run_in_transaction(self._sessions, work)

    def claim(self, call_sid: str, key: str, token: str | None) -> Claim:
        sid, token = call_sid[:64], (token or None) and token[:128]

        def existing(s: Session) -> Claim | None:
            row = None
            if token:
                row = s.execute(select(TwilioWebhook).where(TwilioWebhook.call_sid == sid,
                                                            TwilioWebhook.token == token)).scalars().first()
            row = row or s.get(TwilioWebhook, (sid, key))
            return None if row is None else Claim(False, row.response, row.claimed_at)

        def insert(s: Session) -> Claim:
            found = existing(s)
            if found is not None:
                return found
            s.add(TwilioWebhook(call_sid=sid, key=key, token=token, claimed_at=self._clock()))
            s.flush()  # the primary key decides: a twin insert from another process fails here or at commit
            return Claim(True)

        try:
            return run_in_transaction(self._sessions, insert)
        except IntegrityError:  # another process claimed it between our read and our insert
            found = run_in_transaction(self._sessions, existing)
            assert found is not None
            return found

    def answer(self, call_sid: str, key: str, response: str, state: dict[str, Any] | None) -> None:
        text = None if state is None else json.dumps(state, ensure_ascii=False)
        sid = call_sid[:64]

        def work(s: Session) -> None:
            hook = s.get(TwilioWebhook, (sid, key))
            assert hook is not None, "answer() without claim()"
            hook.response, hook.answered_at = response, self._clock()
            if text is None:
                return
            row = s.get(TwilioCallState, sid)
            if row is None:
                s.add(TwilioCallState(call_sid=sid, state=text, updated_at=self._clock()))
            else:
                row.state, row.updated_at = text, self._clock()

        run_in_transaction(self._sessions, work)

    def answered(self, call_sid: str, key: str) -> str | None:
        def work(s: Session) -> str | None:
            hook = s.get(TwilioWebhook, (call_sid[:64], key))
            return None if hook is None else hook.response

        return run_in_transaction(self._sessions, work)
