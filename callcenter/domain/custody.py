"""Third-party custody rules (第三方存管, 单客户多银行服务操作指南) — pure, no I/O, time passed in.

* A client has at most five same-name fund accounts, each bound to exactly one depository bank account;
  exactly one of them is the main account (主资金账户), used for trading, settlement and dividends.
* Bank <-> fund account transfers only with the fund account's own bank.
* Main <-> auxiliary transfers are allowed; auxiliary <-> auxiliary is not.
* Only the main account trades.
* Transfers happen on trading days inside the transfer window, within per-transfer and daily limits, never
  above the available balance, never from or to a locked account.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Literal

MAX_FUND_ACCOUNTS = 5

TransferKind = Literal["bank_to_fund", "fund_to_bank", "fund_to_fund"]
TRANSFER_KINDS: tuple[str, ...] = ("bank_to_fund", "fund_to_bank", "fund_to_fund")


class Rule(StrEnum):
    """Machine-readable codes of every custody rule; the human sentence is i18n key ``custody.<code>``."""

    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    AMOUNT_PRECISION = "amount_precision"
    AMOUNT_INVALID = "amount_invalid"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    OVER_PER_TRANSFER_LIMIT = "over_per_transfer_limit"
    OVER_DAILY_LIMIT = "over_daily_limit"
    NOT_TRADING_DAY = "not_trading_day"
    OUTSIDE_WINDOW = "outside_transfer_window"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_CLOSED = "account_closed"
    UNKNOWN_ACCOUNT = "unknown_account"
    BANK_NOT_BOUND = "bank_not_bound"
    AUX_TO_AUX = "aux_to_aux_forbidden"
    DIFFERENT_CLIENTS = "different_clients"
    SAME_ACCOUNT = "same_account"
    BAD_KIND = "bad_transfer_kind"
    TOO_MANY_ACCOUNTS = "too_many_fund_accounts"
    NO_MAIN_ACCOUNT = "no_main_account"
    NOT_MAIN_ACCOUNT = "only_main_account_trades"


class CustodyError(Exception):
    def __init__(self, rule: Rule, detail: str = "") -> None:
        super().__init__(f"{rule.value}: {detail}" if detail else rule.value)
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class AccountView:
    """What the rules need to know about one fund account."""

    id: int
    client_id: int
    is_main: bool
    status: str  # active / locked / closed
    bank_account_id: int
    available_fen: int


@dataclass(frozen=True)
class Limits:
    per_transfer_fen: int
    daily_fen: int
    window_start: time
    window_end: time


@dataclass(frozen=True)
class TransferRequest:
    kind: str
    amount_fen: int
    fund_account_id: int  # the fund account whose bank is used, or the source of a fund_to_fund transfer
    to_fund_account_id: int | None = None  # fund_to_fund only
    bank_account_id: int | None = None  # optional: the bank the caller named


@dataclass(frozen=True)
class Decision:
    """What a valid request does: which books move, and whether the bank must be called."""

    kind: str
    amount_fen: int
    source: AccountView | None
    target: AccountView | None
    bank_account_id: int | None
    needs_bank: bool
    moves: list[tuple[str, int, int]] = field(default_factory=list)  # (book kind, owner id, signed fen) of step 1


def check_amount(amount_fen: int) -> None:
    if amount_fen <= 0:
        raise CustodyError(Rule.AMOUNT_NOT_POSITIVE)


def check_window(local_now: datetime, is_trading_day: bool, limits: Limits) -> None:
    if not is_trading_day:
        raise CustodyError(Rule.NOT_TRADING_DAY, local_now.date().isoformat())
    if not (limits.window_start <= local_now.time() < limits.window_end):
        raise CustodyError(
            Rule.OUTSIDE_WINDOW, f"{limits.window_start:%H:%M}-{limits.window_end:%H:%M}, now {local_now:%H:%M}"
        )


def check_account_set(accounts: list[AccountView]) -> None:
    """A client's fund accounts: 1..5 of them, exactly one main, each with its own bank account."""
    if len(accounts) > MAX_FUND_ACCOUNTS:
        raise CustodyError(Rule.TOO_MANY_ACCOUNTS, str(len(accounts)))
    mains = [a for a in accounts if a.is_main]
    if len(mains) != 1:
        raise CustodyError(Rule.NO_MAIN_ACCOUNT, f"{len(mains)} main accounts")
    banks = [a.bank_account_id for a in accounts]
    if len(set(banks)) != len(banks):
        raise CustodyError(Rule.BANK_NOT_BOUND, "two fund accounts share one bank account")


def can_trade(account: AccountView) -> None:
    """Only the main account trades, settles and receives dividends."""
    if not account.is_main:
        raise CustodyError(Rule.NOT_MAIN_ACCOUNT)


def _usable(account: AccountView | None) -> AccountView:
    if account is None:
        raise CustodyError(Rule.UNKNOWN_ACCOUNT)
    if account.status == "locked":
        raise CustodyError(Rule.ACCOUNT_LOCKED)
    if account.status != "active":
        raise CustodyError(Rule.ACCOUNT_CLOSED)
    return account


def decide(
    request: TransferRequest,
    accounts: dict[int, AccountView],
    *,
    local_now: datetime,
    is_trading_day: bool,
    limits: Limits,
    transferred_today_fen: int,
) -> Decision:
    """Apply every custody rule to ``request``; return what to do or raise CustodyError with the first rule broken.

    ``accounts`` are the client's fund accounts (with balances derived from the journal) keyed by id;
    ``transferred_today_fen`` is what this client already moved between bank and broker today.
    Order of checks: form of the request, accounts, window, limits, balance — so a caller hears the most
    fundamental problem first.
    """
    if request.kind not in TRANSFER_KINDS:
        raise CustodyError(Rule.BAD_KIND, request.kind)
    check_amount(request.amount_fen)
    source = _usable(accounts.get(request.fund_account_id))

    if request.kind == "fund_to_fund":
        if request.to_fund_account_id is None or request.to_fund_account_id == request.fund_account_id:
            raise CustodyError(Rule.SAME_ACCOUNT)
        target_raw = accounts.get(request.to_fund_account_id)
        if target_raw is None:
            raise CustodyError(Rule.UNKNOWN_ACCOUNT)
        target = _usable(target_raw)
        if target.client_id != source.client_id:
            raise CustodyError(Rule.DIFFERENT_CLIENTS)
        if not source.is_main and not target.is_main:
            raise CustodyError(Rule.AUX_TO_AUX)
        bank_id = None
    else:
        target = None
        if request.bank_account_id is not None and request.bank_account_id != source.bank_account_id:
            raise CustodyError(Rule.BANK_NOT_BOUND)
        bank_id = source.bank_account_id

    check_window(local_now, is_trading_day, limits)
    if request.amount_fen > limits.per_transfer_fen:
        raise CustodyError(Rule.OVER_PER_TRANSFER_LIMIT)
    if request.kind != "fund_to_fund" and transferred_today_fen + request.amount_fen > limits.daily_fen:
        raise CustodyError(Rule.OVER_DAILY_LIMIT)
    if request.kind in ("fund_to_bank", "fund_to_fund") and request.amount_fen > source.available_fen:
        raise CustodyError(Rule.INSUFFICIENT_FUNDS)

    amount = request.amount_fen
    if request.kind == "fund_to_fund":
        assert target is not None
        moves = [("fund", source.id, -amount), ("fund", target.id, amount)]
        return Decision(request.kind, amount, source, target, None, False, moves)
    if request.kind == "fund_to_bank":
        # Step 1 moves the money out of reach (into transit) before the bank is called.
        moves = [("fund", source.id, -amount), ("transit", source.id, amount)]
        return Decision(request.kind, amount, source, None, bank_id, True, moves)
    # bank_to_fund: nothing moves on our side until the bank has debited the client.
    return Decision(request.kind, amount, None, source, bank_id, True, [])


def completion_moves(decision_kind: str, fund_account_id: int, bank_account_id: int, amount: int) -> list[tuple[str, int, int]]:
    """Postings once the bank confirmed."""
    if decision_kind == "fund_to_bank":
        return [("transit", fund_account_id, -amount), ("bank", bank_account_id, amount)]
    if decision_kind == "bank_to_fund":
        return [("bank", bank_account_id, -amount), ("fund", fund_account_id, amount)]
    raise ValueError(decision_kind)


def void_moves(decision_kind: str, fund_account_id: int, amount: int) -> list[tuple[str, int, int]]:
    """Postings that undo step 1 when the bank refused or never applied the transfer."""
    if decision_kind == "fund_to_bank":
        return [("transit", fund_account_id, -amount), ("fund", fund_account_id, amount)]
    return []
