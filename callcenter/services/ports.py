"""Ports: the outside systems the services talk to, as Protocols. Real adapters and fakes implement them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from callcenter.services.bus import EventBus
    from callcenter.settings import Settings


class BankUnavailable(Exception):
    """The bank did not answer (timeout, connection lost, an answer we cannot read). Whether it applied the
    request is unknown."""


@dataclass(frozen=True)
class BankAnswer:
    status: Literal["applied", "rejected", "cancelled"]
    code: str = ""  # e.g. insufficient_funds, unknown_account


@dataclass(frozen=True)
class BankRecord:
    """What the bank knows of one reference (query by reference)."""

    reference: str
    status: Literal["applied", "rejected", "cancelled", "unknown"]
    account_no: str = ""
    amount_fen: int = 0  # signed, as the client's bank account sees it: + credit, - debit
    business_day: date | None = None


class DepositoryBank(Protocol):
    """A depository bank gateway (银证转账). Every call is idempotent on ``reference``."""

    def debit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        """Take money from the client's bank account towards the brokerage."""

    def credit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        """Pay money from the brokerage into the client's bank account."""

    def status(self, reference: str) -> Literal["applied", "cancelled", "unknown"]:
        """Shorthand of ``query``: a refused reference counts as cancelled (it can never apply)."""

    def query(self, reference: str) -> BankRecord:
        """Query by reference."""

    def cancel(self, reference: str) -> Literal["applied", "cancelled"]:
        """Make sure ``reference`` never applies; answers 'applied' when it already had."""

    def balance(self, account_no: str) -> int:
        ...

    def statement(self, day: date) -> dict[str, tuple[str, int]]:
        """The bank's statement of business day ``day`` (its reconciliation file): every reference applied that
        day -> (account number, signed amount in fen)."""


class Calendar(Protocol):
    def is_trading_day(self, day: date) -> bool: ...

    def add_trading_days(self, day: date, n: int) -> date: ...


class Clock(Protocol):
    def __call__(self) -> datetime:
        """Aware UTC now."""


class Deps(Protocol):
    """What the composition root (``callcenter.bootstrap.App``) hands a use case that records, reads the time
    and tells the screens: the database's transactions, the clock, the live event bus, the trading calendar and
    the settings. A use case declares this (or less: a ``sessionmaker`` alone) rather than the composition root,
    so it never depends on how the engine is wired; tests hand it any object with these attributes."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def calendar(self) -> Calendar: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...
