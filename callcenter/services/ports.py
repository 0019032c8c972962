"""Ports: the outside systems the services talk to, as Protocols. Real adapters and fakes implement them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol


class BankUnavailable(Exception):
    """The bank did not answer (timeout, connection lost). Whether it applied the request is unknown."""


@dataclass(frozen=True)
class BankAnswer:
    status: Literal["applied", "rejected", "cancelled"]
    code: str = ""  # e.g. insufficient_funds, unknown_account


class DepositoryBank(Protocol):
    """A depository bank gateway (银证转账). Every call is idempotent on ``reference``."""

    def debit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        """Take money from the client's bank account towards the brokerage."""

    def credit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        """Pay money from the brokerage into the client's bank account."""

    def status(self, reference: str) -> Literal["applied", "cancelled", "unknown"]:
        ...

    def cancel(self, reference: str) -> Literal["applied", "cancelled"]:
        """Make sure ``reference`` never applies; answers 'applied' when it already had."""

    def balance(self, account_no: str) -> int:
        ...

    def statement(self) -> dict[str, tuple[str, int]]:
        """The bank's reconciliation file: applied reference -> (account number, signed amount in fen)."""


class Calendar(Protocol):
    def is_trading_day(self, day: date) -> bool: ...

    def add_trading_days(self, day: date, n: int) -> date: ...


class Clock(Protocol):
    def __call__(self) -> datetime:
        """Aware UTC now."""
