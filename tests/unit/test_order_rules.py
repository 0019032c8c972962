"""Every A-share order rule on each board (callcenter/domain/orders.py), with the boundaries issue 15 lists."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from callcenter.domain.orders import (
    CHINEXT,
    ETF,
    MAIN,
    STAR,
    Instrument,
    OrderError,
    OrderRequest,
    OrderRules,
    Position,
    Quote,
    Rule,
    board_of,
    buy_freeze_needed,
    check_cancel_time,
    cost_of_sold,
    decide,
    fees_for,
    fill_fees,
    limit_pct,
    parse_price,
    price_limits,
    session_at,
    trade_value_fen,
)
from callcenter.i18n import t

RULES = OrderRules()
PUFA = Instrument("600000", "浦发银行", MAIN)
CATL = Instrument("300750", "宁德时代", CHINEXT)
SMIC = Instrument("688981", "中芯国际", STAR)
HS300 = Instrument("510300", "沪深300ETF", ETF)
ST = Instrument("600899", "ST演示", MAIN, st=True)
DAY = date(2026, 11, 25)
AT = datetime(2026, 11, 25, 10, 30)
Q10 = Quote(10000, 10000, 11000, 9000)


def refusal(req: OrderRequest, inst: Instrument | None = PUFA, *, quote: Quote = Q10, pos: Position = Position(),
            cash: int = 10**9, at: datetime = AT, trading: bool = True, rules: OrderRules = RULES) -> Rule | None:
    try:
        decide(req, inst, quote, pos, available_fen=cash, local_now=at, is_trading_day=trading, rules=rules)
    except OrderError as exc:
        return exc.rule
    return None


def buy(qty: int, price: str | None = "10.00", code: str = "600000", kind: str = "limit") -> OrderRequest:
    return OrderRequest(code, "buy", qty, price, kind)


def sell(qty: int, price: str | None = "10.00", code: str = "600000", kind: str = "limit") -> OrderRequest:
    return OrderRequest(code, "sell", qty, price, kind)


def test_boards_by_code() -> None:
    assert [board_of(c) for c in ("600000", "000001", "002594", "300750", "301599", "688981", "689009",
                                  "510300", "159915")] == [MAIN, MAIN, MAIN, CHINEXT, CHINEXT, STAR, STAR, ETF, ETF]
    for bad in ("12345", "abcdef", "900901", "400001"):
        with pytest.raises(OrderError) as exc:
            board_of(bad)
        assert exc.value.rule is Rule.UNKNOWN_CODE
    assert refusal(buy(100), None) is Rule.UNKNOWN_CODE


def test_every_rule_has_a_chinese_and_english_sentence() -> None:
    for rule in Rule:
        zh, en = t(f"orders.{rule.value}", "zh-CN"), t(f"orders.{rule.value}", "en")
        assert zh and en and zh != en


@pytest.mark.parametrize("pct_board, prev, up, down", [
    (PUFA, 10000, 11000, 9000),
    (PUFA, 9850, 10840, 8870),  # 9.85 × 1.1 = 10.835 -> 10.84 (half up); 9.85 × 0.9 = 8.865 -> 8.87
    (CATL, 25680, 30820, 20540),  # 25.68 × 1.2 = 30.816 -> 30.82; × 0.8 = 20.544 -> 20.54
    (SMIC, 9850, 11820, 7880),
    (ST, 3210, 3370, 3050),  # ±5 %: 3.21 × 1.05 = 3.3705 -> 3.37; × 0.95 = 3.0495 -> 3.05
    (HS300, 3985, 4384, 3587),  # fund tick 0.001: 4.3835 -> 4.384; 3.5865 -> 3.587
])
def test_limit_prices_round_half_up_to_the_tick(pct_board: Instrument, prev: int, up: int, down: int) -> None:
    assert price_limits(prev, pct_board, limit_pct(pct_board, RULES, DAY, None)) == (up, down)


def test_st_is_five_percent_on_the_main_board_only_and_new_listings_have_no_limit() -> None:
    assert limit_pct(ST, RULES, DAY, None) == Decimal("0.05")
    assert limit_pct(Instrument("300999", "ST创", CHINEXT, st=True), RULES, DAY, None) == Decimal("0.20")
    assert limit_pct(CATL, RULES, DAY, 5) is None and limit_pct(CATL, RULES, DAY, 6) == Decimal("0.20")
    free = Quote(35000, 60000, None, None)
    assert refusal(buy(100, "90.00", "301599"), Instrument("301599", "新", CHINEXT), quote=free) is None
    assert refusal(buy(100, None, "301599", "market"), Instrument("301599", "新", CHINEXT), quote=free) \
        is Rule.MARKET_NO_LIMIT


def test_price_outside_the_limits_and_off_the_tick() -> None:
    assert refusal(buy(100, "11.00")) is None and refusal(buy(100, "11.01")) is Rule.PRICE_ABOVE_LIMIT
    assert refusal(buy(100, "9.00")) is None and refusal(buy(100, "8.99")) is Rule.PRICE_BELOW_LIMIT
    assert refusal(buy(100, "10.005")) is Rule.PRICE_TICK
    assert parse_price("3.985", HS300) == 3985 and parse_price("10*50", PUFA) == 10500
    assert refusal(buy(100, "abc")) is Rule.PRICE_INVALID and refusal(buy(100, "-1")) is Rule.PRICE_INVALID


def test_board_lots_on_the_main_board_and_star_steps() -> None:
    assert refusal(buy(100)) is None and refusal(buy(150)) is Rule.LOT
    star = dict(inst=SMIC)
    assert refusal(buy(200, code="688981"), **star) is None
    assert refusal(buy(201, code="688981"), **star) is None
    assert refusal(buy(199, code="688981"), **star) is Rule.STAR_MINIMUM
    assert refusal(buy(0)) is Rule.QUANTITY_INVALID


def test_per_order_maximum_per_board() -> None:
    assert refusal(buy(1_000_000, "10.00"), cash=10**12) is None
    assert refusal(buy(1_000_100, "10.00"), cash=10**12) is Rule.OVER_MAXIMUM
    q = Quote(100000, 100000, 120000, 80000)
    assert refusal(buy(300_000, "100.00", "300750"), CATL, quote=q, cash=10**12) is None
    assert refusal(buy(300_100, "100.00", "300750"), CATL, quote=q, cash=10**12) is Rule.OVER_MAXIMUM
    assert refusal(buy(100_001, "100.00", "688981"), SMIC, quote=q, cash=10**12) is Rule.OVER_MAXIMUM


def test_odd_lots_are_sold_whole() -> None:
    pos = Position(settled_qty=250)
    assert refusal(sell(250), pos=pos) is None
    assert refusal(sell(200), pos=pos) is None
    assert refusal(sell(50), pos=pos) is None  # the odd part, whole
    assert refusal(sell(30), pos=pos) is Rule.ODD_LOT_WHOLE
    assert refusal(sell(150), pos=pos) is None  # one lot and the odd 50
    star = Position(settled_qty=150)
    assert refusal(sell(150, code="688981"), SMIC, pos=star) is None
    assert refusal(sell(100, code="688981"), SMIC, pos=star) is Rule.ODD_LOT_WHOLE
    assert refusal(sell(201, code="688981"), SMIC, pos=Position(settled_qty=500)) is None


def test_t_plus_one_and_sellable_shares() -> None:
    assert refusal(sell(100), pos=Position(settled_qty=0, bought_today_qty=100)) is Rule.T_PLUS_ONE
    assert refusal(sell(100), pos=Position(settled_qty=100, reserved_qty=100)) is Rule.INSUFFICIENT_SHARES
    assert refusal(sell(100), pos=Position(settled_qty=200, reserved_qty=100)) is None


def test_sessions_cancels_and_boundaries() -> None:
    def at(h: int, m: int, s: int = 0) -> datetime:
        return datetime(2026, 11, 25, h, m, s)

    assert refusal(buy(100), at=at(9, 15)) is None and refusal(buy(100), at=at(9, 14, 59)) is Rule.OUTSIDE_SESSION
    assert refusal(buy(100), at=at(9, 25)) is Rule.OUTSIDE_SESSION
    assert refusal(buy(100), at=at(11, 29, 59)) is None and refusal(buy(100), at=at(11, 30)) is Rule.OUTSIDE_SESSION
    assert refusal(buy(100), at=at(13, 0)) is None and refusal(buy(100), at=at(12, 59, 59)) is Rule.OUTSIDE_SESSION
    assert refusal(buy(100), at=at(14, 59)) is None and refusal(buy(100), at=at(15, 0)) is Rule.OUTSIDE_SESSION
    assert refusal(buy(100), trading=False) is Rule.NOT_TRADING_DAY
    assert session_at(at(14, 57), True) == "closing_auction"
    check_cancel_time(at(9, 19, 59), True)
    for no in (at(9, 20), at(9, 24), at(14, 57), at(14, 59, 59), at(15, 0), at(12, 0)):
        with pytest.raises(OrderError) as exc:
            check_cancel_time(no, True)
        assert exc.value.rule is Rule.NO_CANCEL_NOW
    check_cancel_time(at(13, 0), True)
    # market orders: continuous trading only
    assert refusal(buy(100, None, kind="market")) is None
    assert refusal(buy(100, None, kind="market"), at=at(9, 16)) is Rule.MARKET_NOT_CONTINUOUS
    assert refusal(buy(100, None, kind="market"), at=at(14, 58)) is Rule.MARKET_NOT_CONTINUOUS


def test_outside_sessions_queued_when_set() -> None:
    queue = OrderRules(outside_session="queue")
    accepted = decide(buy(100), PUFA, Q10, Position(), available_fen=10**9, local_now=datetime(2026, 11, 25, 8, 0),
                      is_trading_day=True, rules=queue)
    assert accepted.queued and accepted.frozen_fen > 0
    assert refusal(buy(100, None, kind="market"), at=datetime(2026, 11, 25, 8, 0), rules=queue) \
        is Rule.MARKET_NOT_CONTINUOUS


def test_buy_freezes_value_plus_fees_and_needs_the_cash() -> None:
    accepted = decide(buy(1000), PUFA, Q10, Position(), available_fen=10**9, local_now=AT, is_trading_day=True,
                      rules=RULES)
    # 10.00 × 1000 = 10,000 yuan; commission max(5, 2.50) = 5; transfer 0.001 % = 0.10
    assert accepted.frozen_fen == 1_000_000 + 500 + 10
    assert refusal(buy(1000), cash=1_000_509) is Rule.INSUFFICIENT_FUNDS
    assert refusal(buy(1000), cash=1_000_510) is None
    market = decide(buy(100, None, kind="market"), PUFA, Q10, Position(), available_fen=10**9, local_now=AT,
                    is_trading_day=True, rules=RULES)
    assert market.price_li == 11000  # frozen at the limit up


def test_fees() -> None:
    assert fees_for("buy", 100_000_00, PUFA, RULES).total_fen == 2500 + 100  # 0.025 % and 0.001 %
    assert fees_for("sell", 100_000_00, PUFA, RULES).total_fen == 2500 + 5000 + 100  # + stamp duty 0.05 %
    assert fees_for("sell", 100_000_00, HS300, RULES).total_fen == 2500  # funds: no stamp duty, no transfer fee
    assert fees_for("buy", 1000_00, PUFA, RULES).commission_fen == 500  # the 5-yuan minimum
    assert fill_fees("buy", 0, 1000_00, PUFA, RULES) + fill_fees("buy", 1000_00, 1000_00, PUFA, RULES) \
        == fees_for("buy", 2000_00, PUFA, RULES).total_fen  # the minimum once per order


# ------------------------------------------------------------------------------------- property (pure model)

class Book:
    """A pure model of one account through orders, fills, cancels and settlements, with the same functions the
    service uses; the property: cash + frozen + holdings at cost + fees paid - realised = initial."""

    def __init__(self, cash: int) -> None:
        self.cash, self.frozen, self.initial = cash, 0, cash
        self.qty = self.cost = self.fees = self.realised = 0
        self.orders: dict[str, dict[str, int]] = {}
        self.pending: list[tuple[str, int, int, int]] = []  # side, qty, value, fees awaiting settlement

    def place(self, key: str, side: str, qty: int, price: int) -> None:
        if key in self.orders:
            return
        sellable = self.qty - sum(o["qty"] - o["cancelled"] for o in self.orders.values() if o["sell"])
        req = OrderRequest("600000", side, qty, f"{price / 1000:.2f}")
        try:
            acc = decide(req, PUFA, Q10, Position(self.qty, self.qty - sellable), available_fen=self.cash,
                         local_now=AT, is_trading_day=True, rules=RULES)
        except OrderError:
            return
        self.cash -= acc.frozen_fen
        self.frozen += acc.frozen_fen
        self.orders[key] = {"qty": qty, "price": acc.price_li, "filled": 0, "value": 0, "cancelled": 0,
                            "frozen": acc.frozen_fen, "sell": side == "sell"}

    def fill(self, key: str, qty: int, price: int) -> None:
        o = self.orders.get(key)
        if o is None:
            return
        rest = o["qty"] - o["filled"] - o["cancelled"]
        qty = min(qty, rest)
        if qty <= 0 or (not o["sell"] and price > o["price"]) or (o["sell"] and price < o["price"]):
            return
        value = trade_value_fen(price, qty)
        side = "sell" if o["sell"] else "buy"
        fees = fill_fees(side, o["value"], value, PUFA, RULES)
        o["filled"] += qty
        o["value"] += value
        if side == "buy":
            take = min(value + fees, o["frozen"])
            o["frozen"] -= take
            self.frozen -= take
            self.cash -= value + fees - take
            self.fees += fees
            self.cost += value  # (held in 'market' until settled: count at cost at once)
            self._release(o)
        self.pending.append((side, qty, value, fees))

    def _release(self, o: dict[str, int]) -> None:
        if o["sell"]:
            return
        need = buy_freeze_needed(o["price"], o["qty"] - o["filled"] - o["cancelled"], o["value"], PUFA, RULES)
        back = o["frozen"] - need
        assert back >= 0
        o["frozen"] -= back
        self.frozen -= back
        self.cash += back

    def cancel(self, key: str) -> None:
        o = self.orders.get(key)
        if o is None:
            return
        o["cancelled"] = o["qty"] - o["filled"]
        self._release(o)

    def settle(self) -> None:
        for side, qty, value, fees in self.pending:
            if side == "buy":
                self.qty += qty
            else:
                cost = cost_of_sold(self.cost, self.qty, qty)
                self.cost -= cost
                self.qty -= qty
                self.cash += value - fees
                self.fees += fees
                self.realised += value - cost
        self.pending.clear()
        for o in self.orders.values():
            o["cancelled"] = o["qty"] - o["filled"]
            self._release(o)
            if o["sell"]:
                self.cash += o["frozen"]
                self.frozen -= o["frozen"]
                o["frozen"] = 0
        self.orders.clear()

    def check(self) -> None:
        assert self.cash >= 0 and self.frozen >= 0 and self.qty >= 0 and self.cost >= 0
        assert self.cash + self.frozen + self.cost + self.fees - self.realised == self.initial


steps = st.lists(st.one_of(
    st.tuples(st.just("place"), st.integers(0, 5), st.sampled_from(["buy", "sell"]), st.integers(1, 30),
              st.integers(900, 1100)),
    st.tuples(st.just("fill"), st.integers(0, 5), st.integers(1, 3000), st.integers(9000, 11000)),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("settle"),),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(cash=st.integers(0, 200_000_00), script=steps)
def test_property_money_and_shares_conserved(cash: int, script: list[tuple]) -> None:  # type: ignore[type-arg]
    book = Book(cash)
    for step in script:
        if step[0] == "place":
            _, k, side, lots, price = step
            book.place(f"k{k}", side, lots * 100, price * 10)
        elif step[0] == "fill":
            _, k, qty, price = step
            book.fill(f"k{k}", qty // 100 * 100 or 100, price)
        elif step[0] == "cancel":
            book.cancel(f"k{step[1]}")
        else:
            book.settle()
        book.check()
