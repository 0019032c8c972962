"""The depository bank (银证转账 gateway): what the transfer service asks of it. Adapters:
``callcenter.adapters.bank_http.HttpBank`` (the gateway protocol), the simulated bank's in-process client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol


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
