"""The transfer service on real databases (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from callcenter.bank.faults import BankFaults
from callcenter.bank.inprocess import InProcessBank
from callcenter.bootstrap import App
from callcenter.domain.access import Actor
from callcenter.services.transfers import IdempotencyConflict, TransferCommand, TransferService
from callcenter.store.db import transaction
from callcenter.store.ledger import balances, check_ledger
from callcenter.store.models import FundAccount, JournalEntry, Transfer
from tests.factories import make_client


TOOL = Actor.back_office("test")  # the service's own rules under test, not who may call it


def cmd(key: str, kind: str, account: str, amount: str, to: str | None = None, **kw: object) -> TransferCommand:
    kw.setdefault("actor", TOOL)
    return TransferCommand(idempotency_key=key, kind=kind, fund_account_no=account, amount_yuan=amount,
                           to_fund_account_no=to, **kw)  # type: ignore[arg-type]


def cash(core: App, account_no: str, kind: str = "fund") -> int:
    with transaction(core.sessions) as s:
        fund = s.execute(select(FundAccount).where(FundAccount.account_no == account_no)).scalar_one()
        owner = fund.id if kind != "bank" else fund.bank_account_id
        return balances(s, kind, [owner])[owner]


def assert_sound(core: App) -> int:
    with transaction(core.sessions) as s:
        result = check_ledger(s)
    assert result.problems == []
    return result.client_money_fen


def test_bank_to_fund_moves_money_on_both_sides(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 5_000_00)])
    before = assert_sound(core)
    out = core.transfers.transfer(cmd("k1", "bank_to_fund", main, "1234.56", channel="ivr", caller_phone="+8613900000000"))
    assert out.status == "done" and out.reference and out.amount == "1234.56"
    assert cash(core, main) == 1_000_00 + 1234_56
    assert cash(core, main, "bank") == 5_000_00 - 1234_56
    assert core.bank.balance(f"62{main[2:10]}00") == 5_000_00 - 1234_56
    assert assert_sound(core) == before
    with transaction(core.sessions) as s:
        tr = s.execute(select(Transfer)).scalar_one()
        assert (tr.channel, tr.caller_phone, tr.status) == ("ivr", "+8613900000000", "done")


def test_fund_to_bank_and_main_aux_transfers(core: App) -> None:
    _, (main, aux) = make_client(core, accounts=[(10_000_00, 0), (0, 0)])
    assert core.transfers.transfer(cmd("a", "fund_to_fund", main, "300", to=aux)).status == "done"
    assert core.transfers.transfer(cmd("b", "fund_to_bank", aux, "100")).status == "done"
    assert cash(core, main) == 9_700_00 and cash(core, aux) == 200_00 and cash(core, aux, "bank") == 100_00
    assert_sound(core)


def test_each_rule_is_refused_with_its_code_and_nothing_moves(core: App, clock) -> None:  # type: ignore[no-untyped-def]
    _, (main, aux1, aux2) = make_client(core, accounts=[(1_000_00, 1_000_00), (50_00, 0), (0, 0)])
    _, (locked_main,) = make_client(core, accounts=[(1_000_00, 0)], locked={0})
    _, (stranger,) = make_client(core, accounts=[(0, 0)])
    before = assert_sound(core)
    cases = {
        "amount_not_positive": cmd("r1", "fund_to_bank", main, "0"),
        "amount_precision": cmd("r2", "fund_to_bank", main, "1.001"),
        "insufficient_funds": cmd("r3", "fund_to_bank", main, "1000.01"),
        "over_per_transfer_limit": cmd("r4", "bank_to_fund", main, "500000.01"),
        "aux_to_aux_forbidden": cmd("r5", "fund_to_fund", aux1, "1", to=aux2),
        "different_clients": cmd("r6", "fund_to_fund", main, "1", to=stranger),
        "account_locked": cmd("r7", "fund_to_bank", locked_main, "1"),
        "unknown_account": cmd("r8", "fund_to_bank", "3999999999", "1"),
        "bank_not_bound": cmd("r9", "fund_to_bank", main, "1", bank_account_id=999_999),
        "bad_transfer_kind": cmd("r10", "sideways", main, "1"),
    }
    for code, request in cases.items():
        out = core.transfers.transfer(request)
        assert (out.status, out.error_code) == ("rejected", code), code
        assert out.message  # a human sentence
    clock.now = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)  # 17:00 in Shanghai
    assert core.transfers.transfer(cmd("w1", "fund_to_bank", main, "1")).error_code == "outside_transfer_window"
    clock.now = datetime(2026, 10, 2, 3, 0, tzinfo=timezone.utc)  # National Day holiday, 11:00 local
    assert core.transfers.transfer(cmd("w2", "fund_to_bank", main, "1")).error_code == "not_trading_day"
    assert cash(core, main) == 1_000_00 and assert_sound(core) == before


def test_daily_limit_counts_todays_bank_transfers(core: App) -> None:
    core.transfers._limits = core.transfers._limits.__class__(  # a small daily limit for the test
        per_transfer_fen=1_000_00, daily_fen=1_500_00, window_start=core.transfers._limits.window_start,
        window_end=core.transfers._limits.window_end)
    _, (main,) = make_client(core, accounts=[(10_000_00, 10_000_00)])
    assert core.transfers.transfer(cmd("d1", "fund_to_bank", main, "1000")).status == "done"
    assert core.transfers.transfer(cmd("d2", "bank_to_fund", main, "500")).status == "done"
    assert core.transfers.transfer(cmd("d3", "bank_to_fund", main, "0.01")).error_code == "over_daily_limit"


def test_same_key_gives_the_same_answer_and_moves_money_once(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    first = core.transfers.transfer(cmd("same", "fund_to_bank", main, "10"))
    again = [core.transfers.transfer(cmd("same", "fund_to_bank", main, "10")) for _ in range(10)]
    assert all(a.reference == first.reference and a.status == "done" and a.replayed for a in again)
    assert cash(core, main) == 990_00
    rejected = core.transfers.transfer(cmd("rej", "fund_to_bank", main, "5000"))
    assert core.transfers.transfer(cmd("rej", "fund_to_bank", main, "5000")).error_code == rejected.error_code
    with pytest.raises(IdempotencyConflict):
        core.transfers.transfer(cmd("same", "fund_to_bank", main, "11"))


def test_bank_refusal_voids_the_debit(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    out = core.transfers.transfer(cmd("x", "bank_to_fund", main, "10"))  # the bank account is empty
    assert (out.status, out.error_code) == ("failed", "bank_insufficient_funds")
    assert cash(core, main) == 1_000_00
    assert_sound(core)


_SIM: list[InProcessBank] = []


@pytest.fixture(autouse=True)
def _the_bank_service(bank_sim: InProcessBank) -> Iterator[None]:
    """The test's bank service (the same one ``core`` talks to), for the helpers that add a second client."""
    _SIM.append(bank_sim)
    yield
    _SIM.clear()


def _bank() -> InProcessBank:
    return _SIM[-1]


NOW = timedelta(0)  # reconcile with no grace period: nothing is in flight in these tests


def _service_with(core: App, faults: BankFaults) -> TransferService:
    """A second engine process's transfer service, talking to the same bank whose faults are ``faults``."""
    bank = InProcessBank(_bank().books, faults).client()
    return TransferService(core.sessions, bank, core.calendar, core.transfers._limits, core.settings.tz, clock=core.clock)


@pytest.mark.parametrize("when", ["before", "after"])
def test_bank_timeout_leaves_pending_then_reconcile_posts_or_voids_exactly_once(core: App, when: str) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    before = assert_sound(core)
    faults = BankFaults(rule=lambda r: f"timeout_{when}")  # type: ignore[arg-type,return-value]  # a Fault name
    service = _service_with(core, faults)
    out = service.transfer(cmd("t", "fund_to_bank", main, "100"))
    assert out.status == "pending"
    assert cash(core, main) == 900_00  # our debit stands while the bank's answer is unknown
    report = core.transfers.reconcile(grace=NOW)
    if when == "after":  # the bank had applied it: complete
        assert report.completed == [out.reference] and cash(core, main, "bank") == 100_00
    else:  # the bank never saw it: void, and the bank will refuse the reference from now on
        assert report.voided == [out.reference] and cash(core, main) == 1_000_00
        assert core.bank.status(out.reference) == "cancelled"
    assert report.unresolved == []
    assert core.transfers.reconcile(grace=NOW).differences == 0  # nothing twice
    assert assert_sound(core) == before
    final = core.transfers.transfer(cmd("t", "fund_to_bank", main, "100"))
    assert final.status == ("done" if when == "after" else "failed") and final.reference == out.reference


def test_retry_of_a_pending_transfer_resumes_it(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    timeouts = iter(["timeout_before", None])
    service = _service_with(core, BankFaults(rule=lambda r: next(timeouts)))  # type: ignore[arg-type]  # Fault names
    assert service.transfer(cmd("r", "fund_to_bank", main, "100")).status == "pending"
    assert service.transfer(cmd("r", "fund_to_bank", main, "100")).status == "done"
    with transaction(core.sessions) as s:
        assert s.execute(select(func.count(JournalEntry.id)).where(JournalEntry.transfer_id.is_not(None))).scalar_one() == 2


def test_reconcile_reports_differences_it_may_not_repair(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 100_00)])
    core.bank.debit("ORPHAN0000001", f"62{main[2:10]}00", 10_00)  # the bank applied something we never asked
    report = core.transfers.reconcile()
    assert len(report.unresolved) == 1 and "ORPHAN0000001" in report.unresolved[0]


operations = st.lists(
    st.tuples(
        st.sampled_from(["bank_to_fund", "fund_to_bank", "fund_to_fund"]),
        st.integers(0, 2), st.integers(0, 2),
        st.one_of(st.integers(-5, 3_000_00).map(lambda f: f"{f / 100:.2f}"), st.sampled_from(["0.001", "abc", "-1"])),
        st.integers(0, 6),  # key: small range so keys repeat
        st.booleans(),  # bank timeout
    ),
    min_size=1, max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=[Phase.generate])
@given(ops=operations)
def test_property_money_is_conserved_and_each_accepted_transfer_appears_once(core: App, ops: list) -> None:  # type: ignore[type-arg]
    _, accounts = make_client(core, accounts=[(1_000_00, 2_000_00), (500_00, 300_00), (0, 100_00)])
    prefix = accounts[0]
    before = assert_sound(core)
    bank_faults = BankFaults()
    service = _service_with(core, bank_faults)
    seen: dict[str, TransferCommand] = {}
    done: set[str] = set()
    for kind, src, dst, amount, key_n, timeout in ops:
        key = f"{prefix}-{key_n}"
        request = cmd(key, kind, accounts[src], amount, to=accounts[dst] if kind == "fund_to_fund" else None)
        bank_faults.rule = (lambda r: "timeout_after") if timeout else None
        if key in seen and seen[key] != request:
            with pytest.raises(IdempotencyConflict):
                service.transfer(request)
            continue
        out = service.transfer(request)
        if out.reference:  # recorded: the key is now bound to this request
            seen.setdefault(key, request)
        if out.status == "done":
            done.add(out.reference)
    core.transfers.reconcile(grace=NOW)
    assert assert_sound(core) == before  # conserved, and check_ledger proves no book negative
    with transaction(core.sessions) as s:
        rows = s.execute(select(Transfer).where(Transfer.idempotency_key.like(f"{prefix}-%"))).scalars().all()
        assert len({r.idempotency_key for r in rows}) == len(rows)  # one row per key
        assert all(r.status != "pending" for r in rows)
        for r in rows:  # a done transfer has exactly its postings, a rejected one none
            entries = s.execute(select(func.count(JournalEntry.id)).where(JournalEntry.transfer_id == r.id)).scalar_one()
            expected = {"fund_to_fund": 1}.get(r.kind, 2 if r.kind == "fund_to_bank" else 1)
            if r.status == "done":
                assert entries == expected
            elif r.status == "rejected":
                assert entries == 0
        assert done <= {r.reference for r in rows if r.status == "done"}
    for number in accounts:
        assert cash(core, number) >= 0


def test_a_refused_bank_reference_never_applies_later(core: App) -> None:
    """Twins of one key may reach the bank one after the other: if the first was refused for lack of money,
    the second must not be applied after the balance has grown (our journal already says failed)."""
    _, (main,) = make_client(core, accounts=[(0, 0)])
    account = f"62{main[2:10]}00"
    first = core.bank.debit("TWIN0000000001", account, 100_00)
    assert (first.status, first.code) == ("rejected", "insufficient_funds")
    assert core.bank.credit("TOPUP000000001", account, 500_00).status == "applied"
    assert core.bank.debit("TWIN0000000001", account, 100_00) == first  # the first answer, again
    assert core.bank.balance(account) == 500_00
    assert core.bank.status("TWIN0000000001") == "cancelled"
    assert "TWIN0000000001" not in core.bank.statement(core.clock().date())


# ---------------------------------------------------------------- reconcile during live transfers (finding 10)
class StatementHook:
    """The bank as reconcile sees it, with something happening around the moment the statement is drawn."""

    def __init__(self, inner: object, before=None, after=None) -> None:  # type: ignore[no-untyped-def]
        self._inner, self._before, self._after = inner, before, after

    def statement(self, *args: object) -> object:
        if self._before:
            self._before()
        result = self._inner.statement(*args)  # type: ignore[attr-defined]
        if self._after:
            self._after()
        return result

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def _live_transfer(core: App, command: TransferCommand):  # type: ignore[no-untyped-def]
    """A transfer from another engine process, held right after the bank applied it (before we post it)."""
    import threading

    applied, release = threading.Event(), threading.Event()

    def hold(reference: str) -> None:
        applied.set()
        assert release.wait(30)

    bank = InProcessBank(_bank().books, on_applied=hold).client()
    service = TransferService(core.sessions, bank, core.calendar, core.transfers._limits, core.settings.tz,
                              clock=core.clock)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(service.transfer(command)))
    return thread, applied, release, result


def _reconciler(core: App, bank: object) -> TransferService:
    return TransferService(core.sessions, bank, core.calendar, core.transfers._limits, core.settings.tz,  # type: ignore[arg-type]
                           clock=core.clock, reconcile_grace=timedelta(seconds=core.settings.reconcile_grace_seconds))


def test_reconcile_leaves_a_transfer_the_bank_has_just_applied_alone(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 1_000_00)])
    thread, applied, release, result = _live_transfer(core, cmd("live-1", "bank_to_fund", main, "100"))

    def start_live() -> None:  # the live transfer reaches the bank just before the statement is drawn
        thread.start()
        assert applied.wait(30)

    report = _reconciler(core, StatementHook(core.bank, before=start_live)).reconcile()
    release.set()
    thread.join(30)
    assert report.unresolved == [] and report.voided == [] and report.completed == []
    assert len(report.in_flight) == 1
    assert result[0].status == "done" and report.in_flight == [result[0].reference]  # type: ignore[attr-defined]
    assert core.transfers.reconcile(grace=NOW).differences == 0
    assert cash(core, main) == 1_100_00 and assert_sound(core)


def test_reconcile_does_not_count_a_transfer_completed_after_the_statement_was_drawn(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    thread, applied, release, result = _live_transfer(core, cmd("live-2", "fund_to_bank", main, "10"))
    thread.start()
    assert applied.wait(30)  # applied at the bank before the statement ...

    def finish_live() -> None:  # ... and posted by us after it was drawn
        release.set()
        thread.join(30)

    report = _reconciler(core, StatementHook(core.bank, after=finish_live)).reconcile()
    assert result[0].status == "done"  # type: ignore[attr-defined]
    assert report.unresolved == [] and report.differences == 0 and report.in_flight == [result[0].reference]  # type: ignore[attr-defined]


def test_a_young_pending_transfer_is_left_for_its_retry_and_an_old_one_is_settled(core: App, clock) -> None:  # type: ignore[no-untyped-def]
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    flaky = _service_with(core, BankFaults(rule=lambda r: "timeout_before"))  # type: ignore[arg-type,return-value]  # a Fault name
    young = flaky.transfer(cmd("young", "fund_to_bank", main, "100"))
    assert young.status == "pending"
    report = _reconciler(core, core.bank).reconcile()
    assert report.in_flight == [young.reference] and report.voided == [] and report.unresolved == []
    assert core.bank.status(young.reference) == "unknown"  # not cancelled behind the caller's back
    assert core.transfers.transfer(cmd("young", "fund_to_bank", main, "100")).status == "done"  # the retry
    stale = flaky.transfer(cmd("stale", "fund_to_bank", main, "100"))
    clock.now += timedelta(seconds=core.settings.reconcile_grace_seconds + 1)
    report = _reconciler(core, core.bank).reconcile()
    assert report.voided == [stale.reference] and report.in_flight == [] and report.unresolved == []
    assert cash(core, main) == 900_00 and assert_sound(core)


def test_reconcile_matches_a_transfer_the_bank_applied_on_the_next_business_day(core: App, clock) -> None:  # type: ignore[no-untyped-def]
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    flaky = _service_with(core, BankFaults(rule=lambda r: "timeout_before"))  # type: ignore[arg-type,return-value]  # a Fault name
    late = flaky.transfer(cmd("late", "fund_to_bank", main, "100"))
    clock.now += timedelta(days=1)  # resumed the next day: the bank applies it on its next business day
    assert core.transfers.transfer(cmd("late", "fund_to_bank", main, "100")).status == "done"
    assert late.reference in core.bank.statement(clock.now.date())
    for day in (clock.now.date() - timedelta(days=1), clock.now.date()):
        report = core.transfers.reconcile(day=day, grace=NOW)
        assert report.unresolved == [] and report.differences == 0, day


def test_reconcile_reports_a_bank_that_does_not_answer(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 0)])
    flaky = _service_with(core, BankFaults(rule=lambda r: "timeout_before"))  # type: ignore[arg-type,return-value]  # a Fault name
    stuck = flaky.transfer(cmd("stuck", "fund_to_bank", main, "100"))
    _bank().down = True
    report = core.transfers.reconcile(grace=NOW)
    assert any(stuck.reference in line and "did not answer" in line for line in report.unresolved)
    assert any("statement" in line for line in report.unresolved)
    _bank().restart()
    assert core.transfers.reconcile(grace=NOW).voided == [stuck.reference]


def test_a_bank_refusal_and_a_void_by_reconcile_are_explained_in_words(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 1_000_00)])
    refusing = _service_with(core, BankFaults(refuse=1.0))
    out = refusing.transfer(cmd("no", "bank_to_fund", main, "10"))
    assert (out.status, out.error_code) == ("failed", "bank_refused") and out.message == "银行暂不受理该笔转账"
    lost = _service_with(core, BankFaults(rule=lambda r: "timeout_before")).transfer(  # type: ignore[arg-type,return-value]  # a Fault name
        cmd("lost", "fund_to_bank", main, "10"))
    assert core.transfers.reconcile(grace=NOW).voided == [lost.reference]
    final = core.transfers.transfer(cmd("lost", "fund_to_bank", main, "10"))
    assert final.error_code == "bank_not_applied" and "资金已退回" in final.message
    assert cash(core, main) == 1_000_00 and assert_sound(core)
