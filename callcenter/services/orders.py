"""Phone orders (电话委托): the one use case the hotline, the CLI and the tests call.

    place(PlaceOrder)      rules under the client's lock, freeze the cash (fund -> frozen), record the order with
                           its key, channel and caller number; send it to the gateway (idempotent on the order's
                           reference); record the gateway's answer and any immediate fill
    cancel(...)            cancel what has not filled; the freeze of the cancelled part goes back
    quote / open_orders / trades_today     reads
    estimate(...)          the rules' answer without placing (the hotline's read-back before the trading password)
    sync(now)              apply the gateway's new fills (each exec id once) and send queued orders
    settle(day)            end of day: open orders expire, trades settle into holdings and the journal

Exactly once: the key (``<call id>:<step>`` on the IVR) is unique per actor; a retry after a dropped connection
answers the stored outcome, or resumes an order that was recorded but not yet acknowledged by the gateway.

Journal (``callcenter.store.ledger``), per fund account: accept a buy: fund -> frozen. Buy fill: frozen -> market
(value) and fees; what the fill no longer needs of the freeze goes back to fund. Settlement: market -> stock
(the holding's book: its shares at cost); a sell settles fund += proceeds - fees, stock -= average cost,
market takes the difference (the client's realised gain or loss).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.domain.access import Actor
from callcenter.domain.orders import (
    OrderError,
    OrderRequest,
    OrderRules,
    Position,
    Rule,
    buy_freeze_needed,
    check_cancel_time,
    cost_of_sold,
    decide,
    fill_fees,
    format_price,
    session_at,
    trade_value_fen,
)
from callcenter.i18n import t
from callcenter.ports.calendar import Calendar
from callcenter.ports.trading import GatewayOrderState, NewOrder, TradingGateway
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.ledger import balances, book, post
from callcenter.store.models import Client, FundAccount, Holding, Order, Security, Trade

if TYPE_CHECKING:
    from callcenter.settings import Settings

FINAL = ("filled", "cancelled", "rejected", "expired")
OPEN = ("queued", "pending", "open", "partial")


@dataclass(frozen=True)
class Confirmation:
    """What the hotline read back and the caller confirmed: written as an ``order_confirmations`` row in the
    order's own transaction (so an order placed on the hotline never lacks its record, whatever happens next)."""

    call_id: str
    lang: str = "zh-CN"
    caller_masked: str = ""


@dataclass(frozen=True)
class PlaceOrder:
    key: str  # idempotency key: '<call id>:<step>' on the IVR
    account_no: str  # the fund account (must be the client's main account)
    side: str  # buy / sell
    code: str
    quantity: int
    price: str | None  # '10.00' or '10*00'; None: market order
    kind: str = "limit"
    channel: str = "api"  # ivr / twilio / text / cli / api
    caller_phone: str = ""  # the calling number (CSRC record of a phone order)
    actor: Actor = field(kw_only=True)  # the client themself (IVR) or a back-office tool; never staff
    confirmation: Confirmation | None = field(default=None, kw_only=True)  # the hotline's read-back record

    def fingerprint(self) -> str:
        body = {k: v for k, v in asdict(self).items()
                if k not in ("key", "caller_phone", "actor", "channel", "confirmation")}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class OrderOutcome:
    ok: bool
    code: str | None = None  # refusal code (domain.orders.Rule) or None
    message: str = ""  # the sentence in the service's language
    order_id: int | None = None
    reference: str = ""
    status: str = ""
    frozen_fen: int = 0  # frozen when accepted (buys: value + fees)
    fees_fen: int = 0  # estimated fees of the whole order
    filled_qty: int = 0
    replayed: bool = False

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("replayed")
        return json.dumps(data, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class OrderView:
    order_id: int
    reference: str
    code: str
    name: str
    side: str
    kind: str
    quantity: int
    price: str
    status: str
    filled_qty: int
    cancelled_qty: int
    frozen_fen: int
    channel: str
    created_at: datetime


@dataclass(frozen=True)
class TradeView:
    exec_id: int
    order_id: int
    code: str
    name: str
    side: str
    quantity: int
    price: str
    value_fen: int
    fees_fen: int
    at: datetime


@dataclass(frozen=True)
class QuoteView:
    code: str
    name: str
    board: str
    prev_close: str
    last: str
    limit_up: str | None
    limit_down: str | None
    change_pct: str

    def as_dict(self) -> dict[str, str | None]:
        return {k: v for k, v in asdict(self).items() if k != "change_pct"}


class OrderService:
    def __init__(self, sessions: sessionmaker[Session], gateway: TradingGateway, calendar: Calendar,
                 rules: OrderRules, tz: ZoneInfo, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 lang: str = "zh-CN", confirmation_years: int = 3) -> None:
        self._sessions = sessions
        self._gateway = gateway
        self._calendar = calendar
        self._rules = rules
        self._tz = tz
        self._clock = clock
        self._lang = lang
        self._confirmation_years = confirmation_years  # the ``order`` retention class (recording_retention_years_order)
        self._pg = dialect_name(sessions) == "postgresql"

    # ------------------------------------------------------------------ reads
    def quote(self, code: str, *, at: datetime | None = None) -> QuoteView:
        """Raises OrderError(UNKNOWN_CODE)."""
        inst = self._gateway.instrument(code)
        if inst is None:
            raise OrderError(Rule.UNKNOWN_CODE, code[:12])
        q = self._gateway.quote(code, at or self._clock()).quote
        change = (Decimal(q.last_li - q.prev_close_li) * 100 / q.prev_close_li).quantize(Decimal("0.01"))
        return QuoteView(code, inst.name, inst.board, format_price(q.prev_close_li, inst), format_price(q.last_li, inst),
                         None if q.limit_up_li is None else format_price(q.limit_up_li, inst),
                         None if q.limit_down_li is None else format_price(q.limit_down_li, inst), str(change))

    def open_orders(self, account_no: str, *, actor: Actor, at: datetime | None = None) -> list[OrderView]:
        self.sync(at)
        return self._orders(account_no, actor, open_only=True)

    def orders_today(self, account_no: str, *, actor: Actor, at: datetime | None = None) -> list[OrderView]:
        self.sync(at)
        return self._orders(account_no, actor, open_only=False, day=self._local(at).date())

    def trades_today(self, account_no: str, *, actor: Actor, at: datetime | None = None) -> list[TradeView]:
        self.sync(at)
        day = self._local(at).date()

        def work(s: Session) -> list[TradeView]:
            fund = self._readable(s, account_no, actor)
            rows = s.execute(select(Trade).where(Trade.fund_account_id == fund.id, Trade.trade_date == day)
                             .order_by(Trade.exec_id)).scalars()
            return [self._trade_view(r) for r in rows]

        return run_in_transaction(self._sessions, work)

    def instruments(self) -> list[str]:
        """The tradable codes, in the gateway's order (the hotline's market summary reads the first few)."""
        return [inst.code for inst in self._gateway.instruments()]

    def estimate(self, account_no: str, side: str, code: str, quantity: int, price: str | None, kind: str = "limit",
                 *, actor: Actor, at: datetime | None = None) -> OrderOutcome:
        """The rules' answer for an order *without* placing it: what it would freeze and cost, or the refusal (the
        hotline reads this back before asking for the trading password). ``reference`` carries the price as
        decided (a market order's freeze price). Nothing is written."""
        now = at or self._clock()
        inst = self._gateway.instrument(code)
        if inst is None:
            return self._refusal(Rule.UNKNOWN_CODE)
        quote = self._gateway.quote(code, now).quote
        local = now.astimezone(self._tz)

        def work(s: Session) -> OrderOutcome:
            try:
                fund = self._readable(s, account_no, actor)
                if not fund.is_main:
                    raise OrderError(Rule.NOT_MAIN_ACCOUNT)
                if fund.status != "active":
                    raise OrderError(Rule.ACCOUNT_LOCKED)
                if side not in ("buy", "sell") or kind not in ("limit", "market"):
                    raise OrderError(Rule.BAD_SIDE if side not in ("buy", "sell") else Rule.BAD_KIND)
                accepted = decide(OrderRequest(code, side, quantity, price, kind), inst, quote,
                                  self._position(s, fund.id, code), available_fen=balances(s, "fund", [fund.id])[fund.id],
                                  local_now=local, is_trading_day=self._calendar.is_trading_day(local.date()),
                                  rules=self._rules)
            except OrderError as exc:
                return self._refusal(exc.rule)
            return OrderOutcome(True, None, "", None, format_price(accepted.price_li, inst),
                                "queued" if accepted.queued else "estimate", accepted.frozen_fen,
                                accepted.fees_estimate_fen)

        return run_in_transaction(self._sessions, work)

    # ------------------------------------------------------------------ place
    def place(self, cmd: PlaceOrder, *, at: datetime | None = None) -> OrderOutcome:
        """Apply ``cmd`` once; the same key again answers the first outcome (a different body: idempotency_conflict).
        ``at`` evaluates the rules at that instant (default: the clock)."""
        now = at or self._clock()
        if not cmd.key or len(cmd.key) > 128:
            return self._refusal(Rule.KEY_INVALID)
        inst = self._gateway.instrument(cmd.code)
        quote = self._gateway.quote(cmd.code, now).quote if inst is not None else None
        fingerprint = cmd.fingerprint()
        for _ in range(5):
            try:
                order_id, outcome = run_in_transaction(
                    self._sessions, lambda s: self._accept(s, cmd, fingerprint, inst, quote, now))
                break
            except IntegrityError:
                continue  # a twin inserted the same key (or a reference collided): look again
        else:  # pragma: no cover
            raise RuntimeError("could not record order")
        if outcome is not None:
            return outcome
        return self._send(order_id, now)

    def _accept(self, s: Session, cmd: PlaceOrder, fingerprint: str, inst: object, quote: object,
                now: datetime) -> tuple[int, OrderOutcome | None]:
        from callcenter.domain.orders import Instrument, Quote

        existing = self._by_key(s, cmd)
        if existing is not None:
            return self._existing(existing, fingerprint)
        if cmd.actor.role not in ("client", "back_office"):
            return 0, self._refusal(Rule.NOT_PERMITTED)  # 全权委托 is forbidden: staff never order for a client
        fund = s.execute(select(FundAccount).where(FundAccount.account_no == cmd.account_no)).scalar_one_or_none()
        if fund is None or (cmd.actor.role == "client" and cmd.actor.client_id != fund.client_id):
            return 0, self._refusal(Rule.UNKNOWN_ACCOUNT)
        self._lock_client(s, fund.client_id)
        existing = self._by_key(s, cmd)
        if existing is not None:
            return self._existing(existing, fingerprint)
        local = now.astimezone(self._tz)
        order = Order(idempotency_scope=cmd.actor.scope, idempotency_key=cmd.key, request_hash=fingerprint,
                      reference=f"{local:%y%m%d}{secrets.randbelow(10**10):010d}", client_id=fund.client_id,
                      fund_account_id=fund.id, code=cmd.code[:6], side=cmd.side[:4], kind=cmd.kind[:6],
                      quantity=cmd.quantity if isinstance(cmd.quantity, int) and 0 <= cmd.quantity < 2**31 else 0,
                      price_li=0, status="pending", channel=cmd.channel[:16], caller_phone=cmd.caller_phone[:20],
                      trade_date=self._trade_date(local), created_at=now, updated_at=now)
        try:
            if not fund.is_main:
                raise OrderError(Rule.NOT_MAIN_ACCOUNT)
            if fund.status != "active":
                raise OrderError(Rule.ACCOUNT_LOCKED)
            assert inst is None or isinstance(inst, Instrument)
            assert quote is None or isinstance(quote, Quote)
            if inst is None or quote is None:
                raise OrderError(Rule.UNKNOWN_CODE, cmd.code[:12])
            if cmd.side not in ("buy", "sell") or cmd.kind not in ("limit", "market"):
                raise OrderError(Rule.BAD_SIDE if cmd.side not in ("buy", "sell") else Rule.BAD_KIND)
            accepted = decide(OrderRequest(cmd.code, cmd.side, cmd.quantity, cmd.price, cmd.kind), inst, quote,
                              self._position(s, fund.id, cmd.code), available_fen=balances(s, "fund", [fund.id])[fund.id],
                              local_now=local, is_trading_day=self._calendar.is_trading_day(local.date()),
                              rules=self._rules)
        except OrderError as exc:
            order.status, order.error_code = "rejected", exc.rule.value
            order.cancelled_qty = order.quantity
            s.add(order)
            s.flush()
            outcome = self._refusal(exc.rule)
            outcome.order_id, outcome.reference, outcome.status = order.id, order.reference, "rejected"
            order.response_json = outcome.to_json()
            self._confirm(s, cmd, order, inst, 0, 0, now)
            return order.id, outcome
        order.price_li = accepted.price_li
        order.frozen_fen = accepted.frozen_fen
        order.status = "queued" if accepted.queued else "pending"
        s.add(order)
        s.flush()
        if accepted.frozen_fen:
            post(s, now, f"order {order.reference} freeze", [("fund", fund.id, -accepted.frozen_fen),
                                                            ("frozen", fund.id, accepted.frozen_fen)])
        outcome = OrderOutcome(True, None, t("orders.queued" if accepted.queued else "orders.placed", self._lang),
                               order.id, order.reference, order.status, accepted.frozen_fen, accepted.fees_estimate_fen)
        order.response_json = outcome.to_json()
        self._confirm(s, cmd, order, inst, accepted.frozen_fen, accepted.fees_estimate_fen, now)
        return order.id, (outcome if accepted.queued else None)

    def _confirm(self, s: Session, cmd: PlaceOrder, order: Order, inst: object, frozen_fen: int, fees_fen: int,
                 now: datetime) -> None:
        """The hotline's confirmation record of ``order`` (nothing for orders without one: CLI, API)."""
        c = cmd.confirmation
        if c is None:
            return
        from callcenter.domain.orders import Instrument
        from callcenter.domain.recordings import add_years
        from callcenter.store.models import IvrSession, OrderConfirmation
        from callcenter.store.models.recordings import Recording

        name = inst.name if isinstance(inst, Instrument) else ""
        sess_id = s.execute(select(IvrSession.id).where(IvrSession.call_id == c.call_id[:64])).scalar_one_or_none()
        recording_id = None
        if sess_id is not None:  # a recording of this IVR session, when the telephony made one
            recording_id = s.execute(select(Recording.id).where(Recording.ivr_session_id == sess_id)
                                     .order_by(Recording.id.desc()).limit(1)).scalar_one_or_none()
        lang = c.lang if c.lang in ("zh-CN", "en") else "zh-CN"
        price_li = order.price_li or (int(Decimal(cmd.price.replace("*", ".")) * 1000)
                                      if cmd.price and cmd.price.replace("*", "").replace(".", "").isdigit() else 0)
        heard = t("orders.confirmation_heard", lang, side=t(f"orders.side_{order.side}", lang), name=name,
                  code=order.code, kind=t(f"orders.kind_{order.kind}", lang),
                  price=format_price(price_li, inst if isinstance(inst, Instrument) else None),
                  quantity=order.quantity, frozen=f"{Decimal(frozen_fen) / 100:.2f}",
                  fees=f"{Decimal(fees_fen) / 100:.2f}")
        s.add(OrderConfirmation(order_id=order.id, client_id=order.client_id, call_id=c.call_id[:64],
                                ivr_session_id=sess_id, recording_id=recording_id, channel=order.channel,
                                caller_masked=c.caller_masked[:32], lang=lang, code=order.code, name=name[:64],
                                side=order.side, kind=order.kind, quantity=order.quantity, price_li=price_li,
                                frozen_fen=frozen_fen, fees_fen=fees_fen, heard=heard[:2000], outcome=order.status,
                                confirmed_at=now, retention_class="order",
                                keep_until=add_years(now, self._confirmation_years)))
        s.flush()

    def _send(self, order_id: int, now: datetime) -> OrderOutcome:
        """Send a recorded order to the gateway (idempotent on its reference) and record the answer."""
        o = run_in_transaction(self._sessions, lambda s: s.get_one(Order, order_id))
        ack = self._gateway.place(NewOrder(o.reference, o.code, o.side, o.kind, o.quantity, o.price_li, now))  # type: ignore[arg-type]

        def record(s: Session) -> None:
            order = s.get_one(Order, order_id)
            self._lock_client(s, order.client_id)
            s.refresh(order)
            if order.status == "pending":
                if ack.status == "rejected":
                    order.status, order.error_code = "rejected", ack.code or Rule.GATEWAY_REJECTED.value
                    order.cancelled_qty = order.quantity - order.filled_qty
                    self._refreeze(s, order, now)
                else:
                    order.status = "open"
                order.updated_at = now

        run_in_transaction(self._sessions, record)
        self.sync(now)
        self._apply_state(order_id, self._gateway.order_status(o.reference, now), now)
        return self._final(order_id)

    def _final(self, order_id: int) -> OrderOutcome:
        def work(s: Session) -> OrderOutcome:
            order = s.get_one(Order, order_id)
            stored = json.loads(order.response_json)
            outcome = OrderOutcome(**stored)
            outcome.status, outcome.filled_qty = order.status, order.filled_qty
            if order.status == "rejected":
                outcome.ok, outcome.code = False, order.error_code
                outcome.message = self._sentence(order.error_code)
            return outcome

        return run_in_transaction(self._sessions, work)

    def _existing(self, existing: Order, fingerprint: str) -> tuple[int, OrderOutcome | None]:
        if existing.request_hash != fingerprint:
            out = self._refusal(Rule.KEY_CONFLICT)
            return existing.id, out
        if existing.status == "pending":
            return existing.id, None  # recorded, not acknowledged: resume (the gateway is idempotent)
        outcome = OrderOutcome(**json.loads(existing.response_json))
        outcome.status, outcome.filled_qty, outcome.replayed = existing.status, existing.filled_qty, True
        return existing.id, outcome

    # ------------------------------------------------------------------ cancel
    def cancel(self, account_no: str, order_id: int, *, actor: Actor, at: datetime | None = None) -> OrderOutcome:
        """Cancel the unfilled part of an open order. Cancelling a cancelled order again answers ok (a retry)."""
        now = at or self._clock()
        local = now.astimezone(self._tz)

        def check(s: Session) -> tuple[str, str] | OrderOutcome:
            if actor.role not in ("client", "back_office"):
                return self._refusal(Rule.NOT_PERMITTED)
            fund = s.execute(select(FundAccount).where(FundAccount.account_no == account_no)).scalar_one_or_none()
            order = s.get(Order, order_id)
            if (fund is None or order is None or order.fund_account_id != fund.id
                    or (actor.role == "client" and actor.client_id != fund.client_id)):
                return self._refusal(Rule.UNKNOWN_ORDER)
            if order.status == "cancelled":
                return OrderOutcome(True, None, t("orders.cancelled", self._lang), order.id, order.reference,
                                    order.status, order.frozen_fen, 0, order.filled_qty, replayed=True)
            if order.status in FINAL:
                return self._refusal(Rule.NOT_CANCELLABLE)
            if order.status == "queued":
                self._lock_client(s, order.client_id)
                order.cancelled_qty = order.quantity - order.filled_qty
                order.status, order.updated_at = "cancelled", now
                self._refreeze(s, order, now)
                return OrderOutcome(True, None, t("orders.cancelled", self._lang), order.id, order.reference,
                                    "cancelled", 0, 0, order.filled_qty)
            try:
                check_cancel_time(local, self._calendar.is_trading_day(local.date()))
            except OrderError as exc:
                return self._refusal(exc.rule)
            return order.reference, order.status

        checked = run_in_transaction(self._sessions, check)
        if isinstance(checked, OrderOutcome):
            return checked
        self.sync(now)
        state = self._gateway.cancel(checked[0], now)
        self._apply_state(order_id, state, now)

        def answer(s: Session) -> OrderOutcome:
            order = s.get_one(Order, order_id)
            if order.status != "cancelled":
                return self._refusal(Rule.NOT_CANCELLABLE)
            return OrderOutcome(True, None, t("orders.cancelled", self._lang), order.id, order.reference,
                                order.status, 0, 0, order.filled_qty)

        return run_in_transaction(self._sessions, answer)

    # ------------------------------------------------------------------ fills, state, settlement
    def sync(self, at: datetime | None = None) -> int:
        """Send queued orders whose session has opened; apply the gateway's new fills. Returns fills applied."""
        now = at or self._clock()
        local = now.astimezone(self._tz)
        if session_at(local, self._calendar.is_trading_day(local.date())) is not None:
            queued = run_in_transaction(self._sessions, lambda s: list(s.execute(
                select(Order.id).where(Order.status == "queued", Order.trade_date == local.date())).scalars()))
            for order_id in queued:
                run_in_transaction(self._sessions, lambda s: self._mark_pending(s, order_id))
                self._send(order_id, now)
        since = run_in_transaction(self._sessions, lambda s: s.execute(
            select(func.coalesce(func.max(Trade.exec_id), 0))).scalar_one())
        applied = 0
        for fill in self._gateway.fills(int(since), now):
            applied += run_in_transaction(self._sessions, lambda s: self._apply_fill(s, fill))
        return applied

    @staticmethod
    def _mark_pending(s: Session, order_id: int) -> None:
        order = s.get_one(Order, order_id)
        if order.status == "queued":
            order.status = "pending"

    def _apply_fill(self, s: Session, fill: object) -> int:
        from callcenter.ports.trading import Fill

        assert isinstance(fill, Fill)
        order = s.execute(select(Order).where(Order.reference == fill.reference)).scalar_one_or_none()
        if order is None:
            return 0
        self._lock_client(s, order.client_id)
        if s.execute(select(Trade.id).where(Trade.exec_id == fill.exec_id)).first() is not None:
            return 0  # applied by a twin
        s.refresh(order)
        inst = self._gateway.instrument(order.code)
        assert inst is not None
        value = trade_value_fen(fill.price_li, fill.quantity)
        fees = fill_fees(order.side, order.filled_value_fen, value, inst, self._rules)
        local = fill.at.astimezone(self._tz)
        s.add(Trade(exec_id=fill.exec_id, order_id=order.id, fund_account_id=order.fund_account_id, code=order.code,
                    side=order.side, quantity=fill.quantity, price_li=fill.price_li, value_fen=value, fees_fen=fees,
                    at=fill.at, trade_date=order.trade_date if order.trade_date <= local.date() else local.date()))
        order.filled_qty += fill.quantity
        order.filled_value_fen += value
        order.fees_fen += fees
        order.updated_at = fill.at
        if order.side == "buy":
            cost = value + fees
            from_frozen = min(cost, order.frozen_fen)
            moves = [("frozen", order.fund_account_id, -from_frozen), ("market", 0, value)]
            if fees:
                moves.append(("fees", 0, fees))
            if cost > from_frozen:  # rounding of a fund's third decimal: at most a fen or two
                moves.append(("fund", order.fund_account_id, -(cost - from_frozen)))
            post(s, fill.at, f"order {order.reference} fill {fill.exec_id}", moves)
            order.frozen_fen -= from_frozen
        if order.status not in FINAL:
            order.status = "filled" if order.filled_qty + order.cancelled_qty >= order.quantity else "partial"
        self._refreeze(s, order, fill.at)
        s.flush()
        return 1

    def _apply_state(self, order_id: int, state: GatewayOrderState, now: datetime) -> None:
        """Take the gateway's cancelled part (cancel, market rest, expiry); release what it froze."""
        def work(s: Session) -> None:
            order = s.get_one(Order, order_id)
            self._lock_client(s, order.client_id)
            s.refresh(order)
            if state.cancelled > order.cancelled_qty:
                order.cancelled_qty = min(state.cancelled, order.quantity - order.filled_qty)
            if order.filled_qty + order.cancelled_qty >= order.quantity and order.status not in ("rejected",):
                if order.cancelled_qty == 0:
                    order.status = "filled"
                else:
                    order.status = "expired" if state.status == "expired" else "cancelled"
            order.updated_at = now
            self._refreeze(s, order, now)

        run_in_transaction(self._sessions, work)

    def _refreeze(self, s: Session, order: Order, now: datetime) -> None:
        """Give back whatever the order's freeze holds beyond what its unfilled rest still needs."""
        inst = self._gateway.instrument(order.code)
        assert inst is not None
        rest = order.quantity - order.filled_qty - order.cancelled_qty
        if order.side == "buy":
            needed = buy_freeze_needed(order.price_li, rest, order.filled_value_fen, inst, self._rules)
        else:
            # a sell's freeze covers fees its proceeds might not: kept until its trades settle
            needed = order.frozen_fen if not order.settled and (rest > 0 or order.filled_qty > 0) else 0
        release = order.frozen_fen - needed
        if release > 0:
            post(s, now, f"order {order.reference} release", [("frozen", order.fund_account_id, -release),
                                                             ("fund", order.fund_account_id, release)])
            order.frozen_fen -= release

    def settle(self, day: date, *, at: datetime | None = None) -> dict[str, int]:
        """End of day ``day``: the gateway expires open orders; every trade of the day settles into holdings and
        the journal; today's buys become sellable. Idempotent (settled rows are marked)."""
        close = datetime.combine(day, time(15, 0), self._tz)
        now = at or max(self._clock(), close)
        self._gateway.end_of_day(day)
        self.sync(now)
        open_ids = run_in_transaction(self._sessions, lambda s: list(s.execute(
            select(Order.id, Order.reference).where(Order.status.in_(OPEN), Order.trade_date <= day)).all()))
        for order_id, reference in open_ids:
            self._apply_state(order_id, self._gateway.order_status(reference, now), now)
        clients = run_in_transaction(self._sessions, lambda s: list(s.execute(
            select(Order.client_id).where(Order.settled.is_(False), Order.trade_date <= day).distinct()).scalars()))
        settled = 0
        for client_id in clients:
            settled += run_in_transaction(self._sessions, lambda s: self._settle_client(s, client_id, day, now))
        return {"clients": len(clients), "trades": settled}

    def _settle_client(self, s: Session, client_id: int, day: date, now: datetime) -> int:
        self._lock_client(s, client_id)
        trades = s.execute(select(Trade).join(Order, Order.id == Trade.order_id).where(
            Order.client_id == client_id, Trade.settled.is_(False), Trade.trade_date <= day)
            .order_by(Trade.exec_id)).scalars().all()
        for tr in trades:
            holding = s.execute(select(Holding).where(Holding.fund_account_id == tr.fund_account_id,
                                                      Holding.code == tr.code)).scalar_one_or_none()
            if holding is None:
                self._ensure_security(s, tr.code, tr.price_li)
                holding = Holding(fund_account_id=tr.fund_account_id, code=tr.code, quantity=0, cost_fen=0)
                s.add(holding)
                s.flush()
            stock = book(s, "stock", holding.id)
            if tr.side == "buy":
                post(s, now, f"settle trade {tr.exec_id}", [("market", 0, -tr.value_fen), ("stock", holding.id, tr.value_fen)])
                holding.quantity += tr.quantity
            else:
                s.refresh(stock)
                cost = cost_of_sold(stock.balance_fen, holding.quantity, tr.quantity)
                net = tr.value_fen - tr.fees_fen
                moves = [("fund", tr.fund_account_id, net), ("fees", 0, tr.fees_fen), ("market", 0, -(tr.value_fen - cost))]
                if cost:
                    moves.append(("stock", holding.id, -cost))
                post(s, now, f"settle trade {tr.exec_id}", [m for m in moves if m[2]] or [("fund", tr.fund_account_id, 0)])
                holding.quantity -= tr.quantity
            s.refresh(stock)
            holding.cost_fen = (stock.balance_fen + holding.quantity // 2) // holding.quantity if holding.quantity else 0
            tr.settled = True
        for order in s.execute(select(Order).where(Order.client_id == client_id, Order.settled.is_(False),
                                                   Order.trade_date <= day, Order.status.in_(FINAL))).scalars():
            order.settled = True
            self._refreeze(s, order, now)
        if trades:
            client = s.get_one(Client, client_id)
            client.last_trade_on = max(tr.trade_date for tr in trades)
        return len(trades)

    # ------------------------------------------------------------------ helpers
    def _position(self, s: Session, fund_id: int, code: str) -> Position:
        settled = s.execute(select(Holding.quantity).where(Holding.fund_account_id == fund_id,
                                                           Holding.code == code)).scalar_one_or_none() or 0
        reserved = s.execute(select(func.coalesce(func.sum(Order.quantity - Order.cancelled_qty), 0)).where(
            Order.fund_account_id == fund_id, Order.code == code, Order.side == "sell", Order.settled.is_(False),
            Order.status != "rejected")).scalar_one()
        bought = s.execute(select(func.coalesce(func.sum(Order.filled_qty), 0)).where(
            Order.fund_account_id == fund_id, Order.code == code, Order.side == "buy",
            Order.settled.is_(False))).scalar_one()
        return Position(int(settled), int(reserved), int(bought))

    def _ensure_security(self, s: Session, code: str, price_li: int) -> None:
        if s.get(Security, code) is None:
            inst = self._gateway.instrument(code)
            s.add(Security(code=code, name=inst.name if inst else code, exchange=inst.exchange if inst else "",
                           last_price_fen=price_li // 10))
            s.flush()

    def _orders(self, account_no: str, actor: Actor, *, open_only: bool, day: date | None = None) -> list[OrderView]:
        def work(s: Session) -> list[OrderView]:
            fund = self._readable(s, account_no, actor)
            q = select(Order).where(Order.fund_account_id == fund.id)
            q = q.where(Order.status.in_(OPEN)) if open_only else q.where(Order.trade_date == day)
            return [self._order_view(o) for o in s.execute(q.order_by(Order.id)).scalars()]

        return run_in_transaction(self._sessions, work)

    def _readable(self, s: Session, account_no: str, actor: Actor) -> FundAccount:
        fund = s.execute(select(FundAccount).where(FundAccount.account_no == account_no)).scalar_one_or_none()
        if fund is None or (actor.role == "client" and actor.client_id != fund.client_id):
            raise OrderError(Rule.UNKNOWN_ACCOUNT)
        return fund

    def _order_view(self, o: Order) -> OrderView:
        inst = self._gateway.instrument(o.code)
        return OrderView(o.id, o.reference, o.code, inst.name if inst else "", o.side, o.kind, o.quantity,
                         format_price(o.price_li, inst), o.status, o.filled_qty, o.cancelled_qty, o.frozen_fen,
                         o.channel, o.created_at)

    def _trade_view(self, r: Trade) -> TradeView:
        inst = self._gateway.instrument(r.code)
        return TradeView(r.exec_id, r.order_id, r.code, inst.name if inst else "", r.side, r.quantity,
                         format_price(r.price_li, inst), r.value_fen, r.fees_fen, r.at)

    def _trade_date(self, local: datetime) -> date:
        """The day an order trades: today, or for an order queued after the close / on a closed day the next
        trading day."""
        day = local.date()
        if self._calendar.is_trading_day(day) and local.time() < time(15, 0):
            return day
        return self._calendar.add_trading_days(day, 1)

    @staticmethod
    def _by_key(s: Session, cmd: PlaceOrder) -> Order | None:
        return s.execute(select(Order).where(Order.idempotency_scope == cmd.actor.scope,
                                             Order.idempotency_key == cmd.key)).scalar_one_or_none()

    def _lock_client(self, s: Session, client_id: int) -> None:
        """The same lock as transfers: one client's money moves one at a time (PostgreSQL row lock; SQLite's
        BEGIN IMMEDIATE already holds the write lock)."""
        if self._pg:
            s.execute(select(Client.id).where(Client.id == client_id).with_for_update())

    def _local(self, at: datetime | None) -> datetime:
        return (at or self._clock()).astimezone(self._tz)

    def _sentence(self, code: str) -> str:
        key = f"orders.{code}"
        try:
            return t(key, self._lang)
        except KeyError:
            return code

    def _refusal(self, rule: Rule) -> OrderOutcome:
        return OrderOutcome(False, rule.value, self._sentence(rule.value), status="rejected")


def rules_from(settings: "Settings") -> OrderRules:
    """The frozen OrderRules from the settings' ``order_*`` fields."""
    return OrderRules(
        limit_pct={"main": settings.order_limit_pct_main, "chinext": settings.order_limit_pct_chinext,
                   "star": settings.order_limit_pct_star, "etf": settings.order_limit_pct_etf},
        st_limit_pct=settings.order_limit_pct_st,
        new_listing_free_days=settings.order_new_listing_free_days,
        max_limit_qty={"main": settings.order_max_qty_main, "chinext": settings.order_max_qty_chinext,
                       "star": settings.order_max_qty_star, "etf": settings.order_max_qty_main},
        max_market_qty={"main": settings.order_max_market_qty_main, "chinext": settings.order_max_market_qty_chinext,
                        "star": settings.order_max_market_qty_star, "etf": settings.order_max_market_qty_main},
        commission_rate=settings.order_commission_rate,
        commission_min_fen=int(settings.order_commission_min_yuan * 100),
        stamp_duty_rate=settings.order_stamp_duty_rate,
        transfer_fee_rate=settings.order_transfer_fee_rate,
        outside_session=settings.order_outside_session,
    )
