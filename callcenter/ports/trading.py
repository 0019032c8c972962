"""The trading gateway (the broker's counter / 柜台 and its link to the exchanges, 报盘): what the order service
asks of it. Adapter: ``callcenter.adapters.trading_exchange.SimulatedExchange`` (instrument list, seeded quotes, matching).

The service owns the client side — rules, frozen cash, the journal, holdings, idempotency keys; the gateway owns
the market side: which instruments exist, the price, and which orders trade. Every call that changes something
is idempotent on the order's ``reference`` (our 合同号), so a retry after a dropped connection never doubles an
order or a cancel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from callcenter.domain.orders import Instrument, Quote

GatewayStatus = Literal["open", "filled", "cancelled", "rejected", "expired"]


class GatewayUnavailable(Exception):
    """The gateway did not answer; whether it took the request is unknown (retry with the same reference)."""


@dataclass(frozen=True)
class MarketQuote:
    code: str
    quote: Quote  # previous close, last, limits (li)
    at: datetime


@dataclass(frozen=True)
class NewOrder:
    reference: str
    code: str
    side: Literal["buy", "sell"]
    kind: Literal["limit", "market"]
    quantity: int
    price_li: int  # limit price; a market order's protection price (limit up / limit down)
    at: datetime  # when the service accepted it (a queued order: when it is released)


@dataclass(frozen=True)
class GatewayAck:
    reference: str
    status: GatewayStatus
    code: str = ""  # a rejection's reason


@dataclass(frozen=True)
class Fill:
    exec_id: int  # increasing, unique per gateway: ``fills(since=...)`` pages on it
    reference: str
    quantity: int
    price_li: int
    at: datetime


@dataclass(frozen=True)
class GatewayOrderState:
    reference: str
    status: GatewayStatus
    filled: int
    cancelled: int  # the part that will never fill (cancel, market rest, expiry at the close)


class TradingGateway(Protocol):
    def instruments(self) -> list[Instrument]:
        """The tradable list (codes with names, boards, risk warning, listing day)."""

    def instrument(self, code: str) -> Instrument | None: ...

    def quote(self, code: str, at: datetime) -> MarketQuote:
        """Previous close, last price and the day's limits at ``at``; KeyError for an unknown code."""

    def place(self, order: NewOrder) -> GatewayAck:
        """Enter ``order``; the same reference again answers the first ack and changes nothing."""

    def cancel(self, reference: str, at: datetime) -> GatewayOrderState:
        """Cancel what has not filled (idempotent); answers the order's state after it."""

    def order_status(self, reference: str, at: datetime) -> GatewayOrderState: ...

    def fills(self, since: int, at: datetime) -> list[Fill]:
        """Every fill with exec_id > ``since`` up to ``at``, in exec_id order."""

    def end_of_day(self, day: date) -> None:
        """Close ``day``: orders still open expire (A-share orders are day orders). Idempotent."""
