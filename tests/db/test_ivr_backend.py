"""The hotline's backend on the real store: PIN checks with lockout across calls, race-free counting,
transfers applied once per call step, and call records without PINs or typed amounts."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import select, text

from callcenter.bootstrap import App
from callcenter.ivr.backend import CallContext, run_action
from callcenter.ivr.flow import FLOWS_DIR, load_flow
from callcenter.ivr.textphone import TextPhone
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger
from callcenter.store.models import FundAccount, IvrSession, IvrStep, Transfer
from tests.factories import make_client

PIN = "246813"


def test_pin_checks_and_lockout_survive_across_calls(core: App, clock) -> None:  # type: ignore[no-untyped-def]
    _, (main,) = make_client(core, accounts=[(100_00, 0)], pin=PIN)
    ivr = core.ivr
    assert ivr.authenticate(main, "000000", "+8613900000001", "call-1").outcome == "wrong_pin"
    assert ivr.authenticate(main, "000000", "+8613900000001", "call-1").failures == 2
    # the caller hangs up and redials: the counter goes on
    for n in (3, 4):
        assert ivr.authenticate(main, "111111", "+8613900000001", "call-2").failures == n
    locked = ivr.authenticate(main, "111111", "+8613900000001", "call-3")
    assert locked.outcome == "locked" and locked.locked_until == clock.now + timedelta(minutes=30)
    assert ivr.authenticate(main, PIN, "+8613900000001", "call-4").outcome == "locked"  # even the right PIN
    clock.now += timedelta(minutes=31)
    ok = ivr.authenticate(main, PIN, "+8613900000001", "call-5")
    assert ok.outcome == "ok" and ok.masked_account == f"{main[:4]}****{main[-4:]}"
    assert ivr.authenticate("999999999999", PIN, "", "call-6").outcome == "unknown_account"
    assert ivr.authenticate(main, "garbage#*", "", "call-7").outcome == "wrong_pin"


def test_simultaneous_calls_cannot_race_the_failure_counter(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(100_00, 0)], pin=PIN)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: core.ivr.authenticate(main, "000000", "", f"race-{i}").outcome, range(8)))
    assert results.count("locked") >= 4  # the fifth failure locks; the rest find it locked
    assert results.count("wrong_pin") == 4


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


def test_a_whole_call_is_recorded_without_pin_or_amount(core: App, clock) -> None:  # type: ignore[no-untyped-def]
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
