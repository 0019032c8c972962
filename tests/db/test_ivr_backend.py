"""The hotline's backend on the real store: PIN checks throttled per account and per caller ID across calls
with backoff, race-free counting (at most the free allowance of PIN checks), the same work for every failure,
transfers applied once per call step, and call records without PINs or typed amounts."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import delete, select, text, update

from callcenter.bootstrap import App
from callcenter.services.ivr.backend import CallContext, FakeAccount, FakeIvrBackend, run_action
from callcenter.services.ivr.flow import FLOWS_DIR, load_flow
from callcenter.adapters.ivr.textphone import TextPhone
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger
from callcenter.services.auth import dummy_hash, verify_secret
from callcenter.services.ivr.store_backend import StoreIvrBackend
from callcenter.services.throttles import ThrottlePolicies
from callcenter.store.models import AuthThrottle, FundAccount, IvrSession, IvrStep, Transfer
from tests.conftest import FixedClock
from tests.factories import make_client

PIN = "246813"


class CountingVerifier:
    """The argon2 verifier the backend is given, counting the checks made against each hash. A check against
    the dummy hash is counted but not computed (its answer is always no): the tests stay fast on a busy
    machine and still see every check the backend asks for."""

    def __init__(self) -> None:
        self.hashes: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, stored_hash: str, secret: str) -> bool:
        with self._lock:
            self.hashes.append(stored_hash)
        return False if stored_hash == dummy_hash() else verify_secret(stored_hash, secret)

    def real_checks(self) -> int:
        return sum(1 for h in self.hashes if h != dummy_hash())


def counted(core: App) -> tuple[StoreIvrBackend, CountingVerifier]:
    verifier = CountingVerifier()
    backend = StoreIvrBackend(core.sessions, core.transfers, core.clock,
                              policies=ThrottlePolicies.from_settings(core.settings), verify=verifier)
    return backend, verifier


def test_pin_checks_back_off_across_calls_and_never_lock_for_long(core: App, clock: FixedClock) -> None:
    _, (main,) = make_client(core, accounts=[(100_00, 0)], pin=PIN)
    ivr = core.ivr
    assert ivr.authenticate(main, "000000", "+8613900000001", "call-1").outcome == "wrong_pin"
    assert ivr.authenticate(main, "000000", "+8613900000001", "call-1").failures == 2
    # the caller hangs up and redials: the counter goes on, whoever calls
    for n in (3, 4, 5):
        assert ivr.authenticate(main, "111111", f"+861390000000{n}", "call-2").failures == n
    backing_off = ivr.authenticate(main, PIN, "+8613900000009", "call-3")  # even the right PIN waits
    assert backing_off.outcome == "locked" and backing_off.locked_until == clock.now + timedelta(seconds=30)
    clock.now += timedelta(seconds=30)  # 30 seconds, not the 30 minutes an outsider could set before
    assert ivr.authenticate(main, "111111", "+8613900000001", "call-4").outcome == "wrong_pin"
    assert ivr.authenticate(main, PIN, "+8613900000009", "call-5").locked_until == clock.now + timedelta(seconds=60)
    clock.now += timedelta(seconds=60)
    ok = ivr.authenticate(main, PIN, "+8613900000009", "call-6")
    assert ok.outcome == "ok" and ok.masked_account == f"{main[:4]}****{main[-4:]}"
    assert ivr.authenticate(main, "000000", "+8613900000009", "call-7").failures == 1  # the success cleared it
    assert ivr.authenticate("999999999999", PIN, "", "call-8").outcome == "unknown_account"
    assert ivr.authenticate(main, "garbage#*", "", "call-9").outcome == "wrong_pin"


def test_simultaneous_wrong_pins_check_at_most_the_free_allowance(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(100_00, 0)], pin=PIN)
    ivr, verifier = counted(core)
    barrier = threading.Barrier(50)

    def attempt(i: int) -> str:
        barrier.wait()
        return ivr.authenticate(main, f"{i:06d}", f"+86139{i:08d}", f"race-{i}").outcome

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(attempt, range(50)))
    assert verifier.real_checks() == 5  # ivr_free_attempts_per_account: the rest never reach the PIN hash
    assert results.count("wrong_pin") == 5 and results.count("locked") == 45


def test_every_failure_costs_the_same_work(core: App) -> None:
    _, (main, closed) = make_client(core, accounts=[(100_00, 0), (0, 0)], pin=PIN)
    with transaction(core.sessions) as s:
        s.execute(update(FundAccount).where(FundAccount.account_no == closed).values(status="closed"))
    ivr, verifier = counted(core)
    for i in range(5):
        ivr.authenticate(main, "000000", f"+8613800000{i:03}", f"warm-{i}")
    cases = [("999999999999", PIN, "unknown_account"), (closed, PIN, "unknown_account"), (main, PIN, "locked"),
             (main, "", "locked"), ("888888888888", "12#*", "unknown_account")]
    _, (fresh_no,) = make_client(core, accounts=[(0, 0)], pin=PIN)
    cases += [(fresh_no, "000000", "wrong_pin"), (fresh_no, "", "wrong_pin"), (fresh_no, "12#*", "wrong_pin")]
    for number, pin, outcome in cases:
        before = len(verifier.hashes)
        assert ivr.authenticate(number, pin, "+8613900000042", f"same-{number}-{pin}").outcome == outcome
        assert len(verifier.hashes) - before == 1, (number, pin)  # exactly one argon2 check, whatever it was


def test_one_pin_sprayed_over_many_accounts_from_one_caller_id_is_slowed(core: App, clock: FixedClock) -> None:
    _, real = make_client(core, accounts=[(0, 0), (0, 0), (0, 0)], pin=PIN)
    ivr, verifier = counted(core)
    numbers = real + [f"3900{i:08d}" for i in range(97)]
    outcomes = [ivr.authenticate(n, "135790", "+8613812345678", f"spray-{i}").outcome for i, n in enumerate(numbers)]
    assert outcomes.count("locked") == 90  # ivr_free_attempts_per_caller = 10, then the caller ID backs off
    assert len(verifier.hashes) == 100  # every attempt did the same work
    assert verifier.real_checks() <= 3
    # the sprayed accounts are not locked for their owners calling from elsewhere
    assert ivr.authenticate(real[0], PIN, "+8613700000000", "owner").outcome == "ok"
    # and the sprayer keeps waiting, twice as long after each failure
    assert ivr.authenticate(real[1], "135790", "+8613812345678", "spray-x").locked_until == clock.now + timedelta(seconds=30)
    clock.now += timedelta(seconds=30)
    assert ivr.authenticate(real[1], "135790", "+8613812345678", "spray-y").outcome == "wrong_pin"
    assert ivr.authenticate(real[2], "135790", "+8613812345678", "spray-z").locked_until == clock.now + timedelta(seconds=60)


def test_the_in_memory_fake_follows_the_same_rule(core: App, clock: FixedClock) -> None:
    _, (main,) = make_client(core, accounts=[(0, 0)], pin=PIN)
    fake = FakeIvrBackend(now=clock)
    fake.add_account(FakeAccount(main, "FA-1", PIN, "C-1", "icbc", "中国工商银行"))
    script = ([(0, main, "000000", "+8613900000001")] * 5 + [(0, main, PIN, "+8613900000002"),
              (29, main, PIN, "+8613900000002"), (1, main, "000000", "+8613900000001"),
              (59, main, PIN, "+8613900000002"), (1, main, PIN, "+8613900000002"),
              (0, main, "000000", "+8613900000003")]
              + [(0, f"3911{i:08d}", "000000", "+8613900000004") for i in range(12)])
    start = clock.now
    seen = {}
    store, _ = counted(core)
    for name, backend in (("store", store), ("fake", fake)):
        clock.now, out = start, []
        for i, (advance, number, pin, caller) in enumerate(script):
            clock.now += timedelta(seconds=advance)
            r = backend.authenticate(number, pin, caller, f"{name}-{i}")
            out.append((r.outcome, r.failures if r.outcome != "ok" else 0, r.locked_until))
        seen[name] = out
        with transaction(core.sessions) as s:  # the fake has its own memory; give the store a fresh start too
            s.execute(delete(AuthThrottle))
    assert seen["store"] == seen["fake"]
    assert [o for o, _, _ in seen["store"]][5:10] == ["locked", "locked", "wrong_pin", "locked", "ok"]


def test_confirmed_transfer_is_applied_once_per_call_step(core: App) -> None:
    client_id, (main,) = make_client(core, accounts=[(1_000_00, 1_000_00)], pin=PIN)
    accounts = core.ivr.transfer_accounts(str(client_id))
    assert [a.account_tail for a in accounts] == [main[-4:]]
    first = core.ivr.transfer(str(client_id), accounts[0].fund_account_id, "broker_to_bank", 250_00, "call-9:7",
                              "ivr-agi", "+8613900000009")
    again = core.ivr.transfer(str(client_id), accounts[0].fund_account_id, "broker_to_bank", 250_00, "call-9:7",
                              "ivr-agi", "+8613900000009")
    assert first.ok and again.ok and first.reference == again.reference
    over = core.ivr.transfer(str(client_id), accounts[0].fund_account_id, "broker_to_bank", 10_000_00, "call-9:8",
                             "ivr-agi", "+8613900000009")
    assert (over.ok, over.error_code) == (False, "insufficient_funds")
    with transaction(core.sessions) as s:
        rows = s.execute(select(Transfer).where(Transfer.status == "done")).scalars().all()
        assert len(rows) == 1 and rows[0].channel == "ivr-agi" and rows[0].caller_phone == "+8613900000009"
        assert check_ledger(s).ok


def test_someone_elses_account_cannot_be_used(core: App) -> None:
    client_a, _ = make_client(core, accounts=[(1_000_00, 0)], pin=PIN)
    _, (b_main,) = make_client(core, accounts=[(1_000_00, 0)], pin=PIN)
    with transaction(core.sessions) as s:
        b_id = s.execute(select(FundAccount.id).where(FundAccount.account_no == b_main)).scalar_one()
    result = core.ivr.transfer(str(client_a), str(b_id), "broker_to_bank", 1_00, "x:1", "ivr-agi", "")
    assert (result.ok, result.error_code) == (False, "unknown_account")


def test_a_whole_call_is_recorded_without_pin_or_amount(core: App, clock: FixedClock) -> None:
    client_id, (main, aux) = make_client(core, accounts=[(5_000_00, 5_000_00), (0, 0)], pin=PIN)
    phone = TextPhone(load_flow(FLOWS_DIR / "hotline.yaml"), core.ivr, caller="+8613911112222", lang="zh-CN",
                      limits={"pin_failures": 3}, echo=lambda line: None)
    # Chinese, account + PIN, 3 transfer, 2 broker->bank, pick the main account, 1234*5 yuan, confirm
    result = phone.run(f"1{main}#{PIN}#3211234*5#1")
    assert result.end_reason
    with transaction(core.sessions) as s:
        transfer = s.execute(select(Transfer)).scalar_one()
        assert (transfer.status, transfer.kind, transfer.amount_fen) == ("done", "fund_to_bank", 1234_50)
        assert transfer.channel == "ivr-text" and transfer.caller_phone == "+8613911112222"
        sess = s.execute(select(IvrSession)).scalar_one()
        assert sess.transfer_refs == transfer.reference
        assert sess.client_id == client_id and sess.caller == "+8613911112222"
        assert sess.masked_account.endswith(main[-4:]) and sess.ended_at is not None
        steps = s.execute(select(IvrStep.step, IvrStep.detail).where(IvrStep.session_id == sess.id)).all()
        assert [st for st, _ in steps][0] == "start"
        everything = json.dumps([d for _, d in steps]) + sess.summary
        assert PIN not in everything and main not in everything and "1234" not in everything
        dump = "\n".join(str(r) for r in s.execute(text("select * from ivr_steps")).all())
        assert PIN not in dump
