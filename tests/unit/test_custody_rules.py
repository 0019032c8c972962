"""Every third-party custody rule, on the pure domain module."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from callcenter.domain.custody import (
    AccountView,
    CustodyError,
    Limits,
    Rule,
    TransferRequest,
    can_trade,
    check_account_set,
    completion_moves,
    decide,
    void_moves,
)
from callcenter.domain.money import MoneyError, yuan_to_fen

LIMITS = Limits(per_transfer_fen=50_000_00, daily_fen=100_000_00, window_start=time(9), window_end=time(16))
MORNING = datetime(2026, 11, 25, 10, 30)
MAIN = AccountView(1, 7, True, "active", 11, 10_000_00)
AUX = AccountView(2, 7, False, "active", 12, 2_000_00)
AUX2 = AccountView(3, 7, False, "active", 13, 500_00)
OTHER = AccountView(9, 8, True, "active", 19, 1_000_00)
ACCOUNTS = {a.id: a for a in (MAIN, AUX, AUX2, OTHER)}


def rule_of(request: TransferRequest, *, now: datetime = MORNING, trading: bool = True, today: int = 0,
            accounts: dict[int, AccountView] = ACCOUNTS) -> Rule | None:
    try:
        decide(request, accounts, local_now=now, is_trading_day=trading, limits=LIMITS, transferred_today_fen=today)
    except CustodyError as exc:
        return exc.rule
    return None


def test_bank_to_fund_only_with_the_fund_accounts_own_bank() -> None:
    assert rule_of(TransferRequest("bank_to_fund", 100, MAIN.id, bank_account_id=11)) is None
    assert rule_of(TransferRequest("bank_to_fund", 100, MAIN.id, bank_account_id=12)) is Rule.BANK_NOT_BOUND
    assert rule_of(TransferRequest("fund_to_bank", 100, AUX.id, bank_account_id=11)) is Rule.BANK_NOT_BOUND
    assert rule_of(TransferRequest("fund_to_bank", 100, AUX.id, bank_account_id=12)) is None


def test_main_and_auxiliary_may_move_money_between_them_but_two_auxiliaries_may_not() -> None:
    assert rule_of(TransferRequest("fund_to_fund", 100, MAIN.id, AUX.id)) is None
    assert rule_of(TransferRequest("fund_to_fund", 100, AUX.id, MAIN.id)) is None
    assert rule_of(TransferRequest("fund_to_fund", 100, AUX.id, AUX2.id)) is Rule.AUX_TO_AUX


def test_fund_to_fund_needs_two_accounts_of_the_same_client() -> None:
    assert rule_of(TransferRequest("fund_to_fund", 100, MAIN.id, OTHER.id)) is Rule.DIFFERENT_CLIENTS
    assert rule_of(TransferRequest("fund_to_fund", 100, MAIN.id, MAIN.id)) is Rule.SAME_ACCOUNT
    assert rule_of(TransferRequest("fund_to_fund", 100, MAIN.id, 404)) is Rule.UNKNOWN_ACCOUNT


@pytest.mark.parametrize("amount", [0, -1, -10_000])
def test_amount_must_be_positive(amount: int) -> None:
    assert rule_of(TransferRequest("bank_to_fund", amount, MAIN.id)) is Rule.AMOUNT_NOT_POSITIVE


def test_amount_with_more_than_two_decimals_is_refused_at_parsing() -> None:
    assert yuan_to_fen("12345.6") == 1_234_560
    assert yuan_to_fen("0.01") == 1
    assert yuan_to_fen("100.500") == 10_050  # trailing zeros are not extra precision
    with pytest.raises(MoneyError) as exc:
        yuan_to_fen("100.505")
    assert exc.value.code == "amount_precision"
    for bad in ("abc", "1e3x", "NaN", "Infinity", ""):
        with pytest.raises(MoneyError):
            yuan_to_fen(bad)
    with pytest.raises(MoneyError):
        yuan_to_fen(0.1)  # type: ignore[arg-type]  # floats are never money


def test_not_above_available_balance() -> None:
    assert rule_of(TransferRequest("fund_to_bank", MAIN.available_fen, MAIN.id)) is None
    assert rule_of(TransferRequest("fund_to_bank", MAIN.available_fen + 1, MAIN.id)) is Rule.INSUFFICIENT_FUNDS
    assert rule_of(TransferRequest("fund_to_fund", AUX.available_fen + 1, AUX.id, MAIN.id)) is Rule.INSUFFICIENT_FUNDS
    # money coming from the bank is checked by the bank, not against our fund balance
    assert rule_of(TransferRequest("bank_to_fund", MAIN.available_fen * 3, MAIN.id)) is None


def test_per_transfer_and_daily_limits() -> None:
    assert rule_of(TransferRequest("bank_to_fund", LIMITS.per_transfer_fen, MAIN.id)) is None
    assert rule_of(TransferRequest("bank_to_fund", LIMITS.per_transfer_fen + 1, MAIN.id)) is Rule.OVER_PER_TRANSFER_LIMIT
    assert rule_of(TransferRequest("bank_to_fund", 100, MAIN.id), today=LIMITS.daily_fen - 100) is None
    assert rule_of(TransferRequest("bank_to_fund", 101, MAIN.id), today=LIMITS.daily_fen - 100) is Rule.OVER_DAILY_LIMIT


def test_transfer_window_and_trading_days() -> None:
    req = TransferRequest("bank_to_fund", 100, MAIN.id)
    assert rule_of(req, now=datetime(2026, 11, 25, 9, 0)) is None
    assert rule_of(req, now=datetime(2026, 11, 25, 8, 59)) is Rule.OUTSIDE_WINDOW
    assert rule_of(req, now=datetime(2026, 11, 25, 16, 0)) is Rule.OUTSIDE_WINDOW
    assert rule_of(req, trading=False) is Rule.NOT_TRADING_DAY


def test_locked_and_closed_accounts() -> None:
    locked = {**ACCOUNTS, 1: AccountView(1, 7, True, "locked", 11, 10_000_00)}
    closed = {**ACCOUNTS, 2: AccountView(2, 7, False, "closed", 12, 0)}
    assert rule_of(TransferRequest("fund_to_bank", 100, 1), accounts=locked) is Rule.ACCOUNT_LOCKED
    assert rule_of(TransferRequest("fund_to_fund", 100, 2, 1), accounts=locked) is Rule.ACCOUNT_LOCKED
    assert rule_of(TransferRequest("bank_to_fund", 100, 2), accounts=closed) is Rule.ACCOUNT_CLOSED


def test_only_the_main_account_trades() -> None:
    can_trade(MAIN)
    with pytest.raises(CustodyError) as exc:
        can_trade(AUX)
    assert exc.value.rule is Rule.NOT_MAIN_ACCOUNT


def test_account_set_at_most_five_exactly_one_main_one_bank_each() -> None:
    check_account_set([MAIN, AUX, AUX2])
    six = [MAIN] + [AccountView(10 + i, 7, False, "active", 100 + i, 0) for i in range(5)]
    with pytest.raises(CustodyError, match=Rule.TOO_MANY_ACCOUNTS.value):
        check_account_set(six)
    with pytest.raises(CustodyError, match=Rule.NO_MAIN_ACCOUNT.value):
        check_account_set([AUX, AUX2])
    with pytest.raises(CustodyError, match=Rule.BANK_NOT_BOUND.value):
        check_account_set([MAIN, AccountView(5, 7, False, "active", 11, 0)])


def test_every_decision_and_completion_balances_to_zero() -> None:
    for req in (TransferRequest("fund_to_fund", 300, 1, 2), TransferRequest("fund_to_bank", 300, 1)):
        d = decide(req, ACCOUNTS, local_now=MORNING, is_trading_day=True, limits=LIMITS, transferred_today_fen=0)
        assert sum(m[2] for m in d.moves) == 0
    assert sum(m[2] for m in completion_moves("fund_to_bank", 1, 11, 300)) == 0
    assert sum(m[2] for m in completion_moves("bank_to_fund", 1, 11, 300)) == 0
    assert sum(m[2] for m in void_moves("fund_to_bank", 1, 300)) == 0
    with pytest.raises(ValueError):
        completion_moves("fund_to_fund", 1, 11, 300)


def test_first_problem_reported_is_the_most_fundamental() -> None:
    # a locked account outside the window: the account problem is named first
    locked = {**ACCOUNTS, 1: AccountView(1, 7, True, "locked", 11, 0)}
    assert rule_of(TransferRequest("fund_to_bank", 100, 1), accounts=locked, trading=False) is Rule.ACCOUNT_LOCKED
    assert rule_of(TransferRequest("nonsense", 100, 1)) is Rule.BAD_KIND
