"""A-share order rules (电话委托) — pure, standard library only, time passed in.

Sources: 上海证券交易所交易规则 (2023年修订) and 深圳证券交易所交易规则 (2023年修订), 创业板 and 科创板 trading
special rules; the figures that the exchanges revise (daily limits, per-order maxima, fees) are settings and
arrive here in a frozen ``OrderRules``.

* Boards: SH/SZ main board (600/601/603/605, 000/001/002/003), ChiNext (300/301), STAR (688/689), ETFs
  (51x/56x/58x/159), risk-warning (ST) stocks (a flag of the instrument).
* Quantity: buys in board lots of 100 (main, ChiNext, ETF); STAR: at least 200, then steps of 1. A sell of an
  odd lot (余股) must sell the odd part whole in one order. A per-order maximum per board (limit and market).
* Price: tick 0.01 yuan for shares, 0.001 for funds. Daily limits around the previous close:
  ``limit = prev_close × (1 ± pct)``, "计算结果按照四舍五入原则取至价格最小变动单位" — half-up to the tick (both
  exchanges' rules, section 价格涨跌幅限制). A new listing has no limit for its first N trading days (setting; since
  the 2023 full registration reform this holds for every board). Market orders only in continuous trading, only
  where a limit exists (the buy freezes cash at the limit-up price), the unfilled rest is cancelled.
* Sessions on trading days: 09:15–09:25 opening call auction (cancels only 09:15–09:20), 09:30–11:30 and
  13:00–14:57 continuous, 14:57–15:00 closing call auction (no cancels). Outside: refused, or queued for the next
  session (setting ``outside_session``).
* T+1: shares bought today are not sellable today; sells are limited to yesterday's settled shares less what
  open sells already hold. A buy freezes price × quantity + fees when accepted.
* Fees: commission (rate, minimum 5 yuan), stamp duty on sells (0.05 %), transfer fee (0.001 %), each rounded
  half-up to the fen; ETFs pay no stamp duty and no transfer fee.

Prices are integer li (厘, 0.001 yuan) so the fund tick is a whole number; money is integer fen. A refusal is an
``OrderError`` with a ``Rule`` code; its sentence is i18n key ``orders.<code>`` (zh-CN and en, like custody's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum

# ---------------------------------------------------------------------------------------------------- codes


class Rule(StrEnum):
    """Machine-readable codes of every order rule; the human sentence is i18n key ``orders.<code>``."""

    UNKNOWN_CODE = "unknown_code"
    BAD_SIDE = "bad_side"
    BAD_KIND = "bad_order_kind"
    PRICE_INVALID = "price_invalid"
    PRICE_TICK = "price_not_on_tick"
    PRICE_ABOVE_LIMIT = "price_above_limit_up"
    PRICE_BELOW_LIMIT = "price_below_limit_down"
    QUANTITY_INVALID = "quantity_invalid"
    LOT = "quantity_not_board_lot"
    STAR_MINIMUM = "star_minimum_200"
    ODD_LOT_WHOLE = "odd_lot_sell_whole"
    OVER_MAXIMUM = "over_per_order_maximum"
    NOT_TRADING_DAY = "not_trading_day"
    OUTSIDE_SESSION = "outside_session"
    MARKET_NOT_CONTINUOUS = "market_order_outside_continuous"
    MARKET_NO_LIMIT = "market_order_without_limit"
    NO_CANCEL_NOW = "cancel_not_allowed_now"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INSUFFICIENT_SHARES = "insufficient_shares"
    T_PLUS_ONE = "bought_today_not_sellable"
    NOT_MAIN_ACCOUNT = "only_main_account_trades"
    ACCOUNT_LOCKED = "account_locked"
    UNKNOWN_ACCOUNT = "unknown_account"
    NOT_PERMITTED = "orders_by_client_only"
    UNKNOWN_ORDER = "unknown_order"
    NOT_CANCELLABLE = "order_not_cancellable"
    KEY_INVALID = "idempotency_key_invalid"
    KEY_CONFLICT = "idempotency_conflict"
    GATEWAY_REJECTED = "gateway_rejected"


class OrderError(Exception):
    def __init__(self, rule: Rule, detail: str = "") -> None:
        super().__init__(f"{rule.value}: {detail}" if detail else rule.value)
        self.rule = rule
        self.detail = detail


# ---------------------------------------------------------------------------------------------------- boards

MAIN = "main"
CHINEXT = "chinext"
STAR = "star"
ETF = "etf"
BOARDS = (MAIN, CHINEXT, STAR, ETF)

SIDES = ("buy", "sell")
KINDS = ("limit", "market")


def board_of(code: str) -> str:
    """The board of a six-digit A-share or fund code (raises OrderError(UNKNOWN_CODE) for anything else)."""
    if len(code) != 6 or not code.isdigit():
        raise OrderError(Rule.UNKNOWN_CODE, code[:12])
    if code.startswith(("300", "301")):
        return CHINEXT
    if code.startswith(("688", "689")):
        return STAR
    if code.startswith(("600", "601", "603", "605", "000", "001", "002", "003")):
        return MAIN
    if code.startswith(("510", "511", "512", "513", "515", "516", "517", "518", "560", "561", "562", "563", "588",
                        "159")):
        return ETF
    raise OrderError(Rule.UNKNOWN_CODE, code)


def exchange_of(code: str) -> str:
    return "SSE" if code[0] in "56" else "SZSE"


@dataclass(frozen=True)
class Instrument:
    code: str
    name: str
    board: str
    st: bool = False  # risk warning (ST / *ST)
    listed_on: date | None = None  # first trading day (new listings: no daily limit for the first days)

    @property
    def is_fund(self) -> bool:
        return self.board == ETF

    @property
    def tick_li(self) -> int:
        return 1 if self.is_fund else 10

    @property
    def exchange(self) -> str:
        return exchange_of(self.code)


# ---------------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class OrderRules:
    """Every figure the exchanges or the broker revise, built once from the settings (``rules_from`` in the
    service layer). Percentages as Decimal fractions (0.10 = 10 %)."""

    limit_pct: dict[str, Decimal] = field(default_factory=lambda: {
        MAIN: Decimal("0.10"), CHINEXT: Decimal("0.20"), STAR: Decimal("0.20"), ETF: Decimal("0.10")})
    st_limit_pct: Decimal = Decimal("0.05")  # risk-warning stocks on the main board (ChiNext/STAR ST keep 20 %)
    new_listing_free_days: int = 5  # trading days without a daily limit after listing (0: none)
    max_limit_qty: dict[str, int] = field(default_factory=lambda: {
        MAIN: 1_000_000, CHINEXT: 300_000, STAR: 100_000, ETF: 1_000_000})
    max_market_qty: dict[str, int] = field(default_factory=lambda: {
        MAIN: 1_000_000, CHINEXT: 150_000, STAR: 50_000, ETF: 1_000_000})
    commission_rate: Decimal = Decimal("0.00025")
    commission_min_fen: int = 500
    stamp_duty_rate: Decimal = Decimal("0.0005")  # sells only
    transfer_fee_rate: Decimal = Decimal("0.00001")
    outside_session: str = "refuse"  # refuse | queue


# ---------------------------------------------------------------------------------------------------- prices


def parse_price(text: str | Decimal, instrument: Instrument) -> int:
    """'10.00' -> 10000 li. The IVR's '*' as the decimal point is accepted. Off-tick prices are refused."""
    if isinstance(text, (float, bool)):
        raise OrderError(Rule.PRICE_INVALID, "prices are strings or Decimals")
    raw = str(text).strip().replace("*", ".")
    try:
        dec = Decimal(raw)
    except InvalidOperation:
        raise OrderError(Rule.PRICE_INVALID, raw[:12]) from None
    if not dec.is_finite() or dec <= 0 or dec > Decimal("100000"):
        raise OrderError(Rule.PRICE_INVALID, raw[:12])
    li = dec * 1000
    if li != li.to_integral_value() or int(li) % instrument.tick_li:
        raise OrderError(Rule.PRICE_TICK, f"{raw} (tick {Decimal(instrument.tick_li) / 1000})")
    return int(li)


def format_price(li: int, instrument: Instrument | None = None) -> str:
    """10000 -> '10.00' (shares) or '10.000' (funds)."""
    places = 3 if instrument is not None and instrument.is_fund else 2
    return f"{Decimal(li) / 1000:.{places}f}"


def _round_to_tick(value_li: Decimal, tick_li: int) -> int:
    return int((value_li / tick_li).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * tick_li


def limit_pct(instrument: Instrument, rules: OrderRules, day: date, trading_days_listed: int | None) -> Decimal | None:
    """The daily limit as a fraction, or None when the instrument has none today (a new listing's first days).
    ``trading_days_listed``: 1 on the listing day, 2 the next trading day, ... (None: long listed)."""
    if trading_days_listed is not None and trading_days_listed <= rules.new_listing_free_days:
        return None
    if instrument.st and instrument.board == MAIN:
        return rules.st_limit_pct
    return rules.limit_pct[instrument.board]


def price_limits(prev_close_li: int, instrument: Instrument, pct: Decimal | None) -> tuple[int | None, int | None]:
    """(limit up, limit down) in li: prev_close × (1 ± pct) rounded half-up to the tick; (None, None) without
    a limit. The limit down never falls below one tick."""
    if pct is None:
        return None, None
    tick = instrument.tick_li
    up = _round_to_tick(Decimal(prev_close_li) * (1 + pct), tick)
    down = max(tick, _round_to_tick(Decimal(prev_close_li) * (1 - pct), tick))
    return up, down


# ---------------------------------------------------------------------------------------------------- sessions

CALL_AUCTION = "call_auction"
CONTINUOUS = "continuous"
CLOSING_AUCTION = "closing_auction"

_SESSIONS: tuple[tuple[time, time, str], ...] = (
    (time(9, 15), time(9, 25), CALL_AUCTION),
    (time(9, 30), time(11, 30), CONTINUOUS),
    (time(13, 0), time(14, 57), CONTINUOUS),
    (time(14, 57), time(15, 0), CLOSING_AUCTION),
)
CANCEL_AUCTION_END = time(9, 20)


def session_at(local_now: datetime, is_trading_day: bool) -> str | None:
    """The exchange session at ``local_now`` (exchange local time): start inclusive, end exclusive."""
    if not is_trading_day:
        return None
    now = local_now.time()
    for start, end, name in _SESSIONS:
        if start <= now < end:
            return name
    return None


def check_cancel_time(local_now: datetime, is_trading_day: bool) -> None:
    """Cancels: 09:15 ≤ t < 09:20 in the opening auction, and continuous trading; never in the closing auction."""
    session = session_at(local_now, is_trading_day)
    if session == CONTINUOUS or (session == CALL_AUCTION and local_now.time() < CANCEL_AUCTION_END):
        return
    raise OrderError(Rule.NO_CANCEL_NOW, f"{local_now:%H:%M:%S}")


# ---------------------------------------------------------------------------------------------------- fees


def _rate(value_fen: int, rate: Decimal) -> int:
    return int((Decimal(value_fen) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def trade_value_fen(price_li: int, quantity: int) -> int:
    """price × quantity in fen, half-up (fund prices have a third decimal)."""
    return int((Decimal(price_li) * quantity / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Fees:
    commission_fen: int
    stamp_duty_fen: int
    transfer_fee_fen: int

    @property
    def total_fen(self) -> int:
        return self.commission_fen + self.stamp_duty_fen + self.transfer_fee_fen


def fees_for(side: str, value_fen: int, instrument: Instrument, rules: OrderRules) -> Fees:
    """Fees of one trade (or one order's worth: the freeze uses the order's value). Zero value pays nothing."""
    if value_fen <= 0:
        return Fees(0, 0, 0)
    commission = max(rules.commission_min_fen, _rate(value_fen, rules.commission_rate))
    stamp = _rate(value_fen, rules.stamp_duty_rate) if side == "sell" and not instrument.is_fund else 0
    transfer = 0 if instrument.is_fund else _rate(value_fen, rules.transfer_fee_rate)
    return Fees(commission, stamp, transfer)


# ---------------------------------------------------------------------------------------------------- decide


@dataclass(frozen=True)
class OrderRequest:
    code: str
    side: str  # buy / sell
    quantity: int
    price: str | None  # as typed ('10.00', '10*00'); None for a market order
    kind: str = "limit"  # limit / market


@dataclass(frozen=True)
class Position:
    """What the rules need of the client's holding of one code."""

    settled_qty: int = 0  # yesterday's shares after settlement
    reserved_qty: int = 0  # held by today's sells (open or filled, until settled)
    bought_today_qty: int = 0  # filled buys of today (not sellable until settled)

    @property
    def sellable(self) -> int:
        return max(0, self.settled_qty - self.reserved_qty)


@dataclass(frozen=True)
class Quote:
    prev_close_li: int
    last_li: int
    limit_up_li: int | None
    limit_down_li: int | None


@dataclass(frozen=True)
class Accepted:
    """A valid order: what it freezes, and whether it goes to the exchange now or waits (queued)."""

    side: str
    kind: str
    quantity: int
    price_li: int  # the limit price; for a market order the price its cash is frozen at (limit up / last)
    frozen_fen: int  # buys: value + fees frozen; sells: 0
    fees_estimate_fen: int
    queued: bool


def check_quantity(side: str, quantity: int, kind: str, instrument: Instrument, rules: OrderRules,
                   position: Position) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise OrderError(Rule.QUANTITY_INVALID, str(quantity))
    maximum = (rules.max_market_qty if kind == "market" else rules.max_limit_qty)[instrument.board]
    if quantity > maximum:
        raise OrderError(Rule.OVER_MAXIMUM, f"{quantity} > {maximum}")
    star = instrument.board == STAR
    if side == "buy":
        if star and quantity < 200:
            raise OrderError(Rule.STAR_MINIMUM, str(quantity))
        if not star and quantity % 100:
            raise OrderError(Rule.LOT, str(quantity))
        return
    available = position.sellable
    if quantity > available:
        if quantity <= available + position.bought_today_qty:
            raise OrderError(Rule.T_PLUS_ONE, f"{quantity} > {available} sellable")
        raise OrderError(Rule.INSUFFICIENT_SHARES, f"{quantity} > {available}")
    if star:
        # STAR: at least 200, steps of 1; a remainder below 200 is sold whole.
        if quantity < 200 and quantity != available:
            raise OrderError(Rule.ODD_LOT_WHOLE, f"{quantity} of {available}")
        return
    if quantity % 100 and quantity % 100 != available % 100:
        # The odd part (余股) of the position goes in one order, whole.
        raise OrderError(Rule.ODD_LOT_WHOLE, f"{quantity} of {available}")


def decide(
    request: OrderRequest,
    instrument: Instrument | None,
    quote: Quote,
    position: Position,
    *,
    available_fen: int,
    local_now: datetime,
    is_trading_day: bool,
    rules: OrderRules,
) -> Accepted:
    """Apply every order rule to ``request``; return what to freeze or raise OrderError with the first rule broken.

    Order of checks: form (side, kind, code), session, quantity and shares, price, cash — so a caller hears the
    most fundamental problem first. ``instrument`` None: the code is not on the instrument list."""
    if request.side not in SIDES:
        raise OrderError(Rule.BAD_SIDE, request.side[:8])
    if request.kind not in KINDS:
        raise OrderError(Rule.BAD_KIND, request.kind[:8])
    if instrument is None:
        raise OrderError(Rule.UNKNOWN_CODE, request.code[:12])
    session = session_at(local_now, is_trading_day)
    queued = False
    if session is None:
        if rules.outside_session != "queue" or request.kind == "market":
            if not is_trading_day and rules.outside_session != "queue":
                raise OrderError(Rule.NOT_TRADING_DAY, local_now.date().isoformat())
            raise OrderError(Rule.OUTSIDE_SESSION if request.kind == "limit" or rules.outside_session != "queue"
                             else Rule.MARKET_NOT_CONTINUOUS, f"{local_now:%H:%M:%S}")
        queued = True
    if request.kind == "market":
        if session != CONTINUOUS:
            raise OrderError(Rule.MARKET_NOT_CONTINUOUS, f"{local_now:%H:%M:%S}")
        if quote.limit_up_li is None:
            raise OrderError(Rule.MARKET_NO_LIMIT, instrument.code)
    check_quantity(request.side, request.quantity, request.kind, instrument, rules, position)
    if request.kind == "limit":
        if request.price is None:
            raise OrderError(Rule.PRICE_INVALID, "a limit order needs a price")
        price = parse_price(request.price, instrument)
        if quote.limit_up_li is not None and price > quote.limit_up_li:
            raise OrderError(Rule.PRICE_ABOVE_LIMIT, format_price(quote.limit_up_li, instrument))
        if quote.limit_down_li is not None and price < quote.limit_down_li:
            raise OrderError(Rule.PRICE_BELOW_LIMIT, format_price(quote.limit_down_li, instrument))
    else:
        assert quote.limit_up_li is not None and quote.limit_down_li is not None
        price = quote.limit_up_li if request.side == "buy" else quote.limit_down_li
    value = trade_value_fen(price, request.quantity)
    fees = fees_for(request.side, value, instrument, rules)
    frozen = value + fees.total_fen if request.side == "buy" else sell_freeze(price, request.quantity, instrument, rules)
    if frozen > available_fen:
        raise OrderError(Rule.INSUFFICIENT_FUNDS, f"{frozen} > {available_fen} fen")
    return Accepted(request.side, request.kind, request.quantity, price, frozen, fees.total_fen, queued)


# ---------------------------------------------------------------------------------------------------- fills


def fill_fees(side: str, filled_value_before_fen: int, fill_value_fen: int, instrument: Instrument,
              rules: OrderRules) -> int:
    """Fees of one fill: fees are charged per order on its cumulative filled value (the 5-yuan minimum once per
    order, as brokers charge it), so a fill pays F(before + fill) - F(before)."""
    total = fees_for(side, filled_value_before_fen + fill_value_fen, instrument, rules).total_fen
    return total - fees_for(side, filled_value_before_fen, instrument, rules).total_fen


def buy_freeze_needed(price_li: int, rest_qty: int, filled_value_fen: int, instrument: Instrument,
                      rules: OrderRules) -> int:
    """Cash a buy must still hold frozen for its unfilled ``rest_qty`` at its price: their value plus the fees
    they would add to the order. At acceptance (nothing filled) this is value + fees of the whole order."""
    if rest_qty <= 0:
        return 0
    rest_value = trade_value_fen(price_li, rest_qty)
    return rest_value + fill_fees("buy", filled_value_fen, rest_value, instrument, rules)


def sell_freeze(price_li: int, quantity: int, instrument: Instrument, rules: OrderRules) -> int:
    """Cash a sell holds frozen: what its fees could exceed its proceeds by. Fees are cumulative per order and
    proceeds less fees grow with the filled value, so the worst case is the smallest first fill (one lot, or the
    whole order when smaller) at the order's price; for any ordinary order this is 0 (a penny stock's odd lot
    may pay more than it brings)."""
    smallest = trade_value_fen(price_li, min(quantity, 100))
    return max(0, fees_for("sell", smallest, instrument, rules).total_fen - smallest)


def cost_of_sold(cost_total_fen: int, quantity: int, sold: int) -> int:
    """Average cost of ``sold`` out of ``quantity`` shares whose total cost is ``cost_total_fen`` (the rest keeps
    exactly what is not taken, so the sum never drifts)."""
    if sold >= quantity:
        return cost_total_fen
    return cost_total_fen * sold // quantity
