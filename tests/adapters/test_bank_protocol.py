"""The bank service's protocol and the engine's HTTP gateway adapter, in process (httpx.MockTransport to the
same routes and books the separate process serves): idempotent on the reference, query, cancel, statement of a
day, accounts; faults become the port's unknown outcome; bad requests are refused."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from callcenter.adapters.bank_http import HttpBank
from callcenter.bank.books import BankBooks
from callcenter.bank.faults import BankFaults
from callcenter.bank.inprocess import BASE_URL, InProcessBank
from callcenter.ports.bank import BankAnswer, BankUnavailable
from callcenter.settings import load_settings
from tests.bankdb import bank_pg_url, fresh_bank_database
from tests.conftest import PG_URL, FixedClock

DAY = date(2026, 11, 25)


def bank_database_params() -> list[object]:
    params: list[object] = [pytest.param("sqlite", id="sqlite")]
    if PG_URL:
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


@pytest.fixture(params=bank_database_params())
def sim(request: pytest.FixtureRequest, tmp_path: Path) -> InProcessBank:
    clock = FixedClock()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bank.db'}"
    else:
        url = fresh_bank_database(bank_pg_url())
    bank = InProcessBank(BankBooks.open(url, clock=clock))
    bank.clock = clock  # type: ignore[attr-defined]  # the test moves the bank's clock
    yield bank
    bank.close()


@pytest.fixture
def wire(sim: InProcessBank) -> httpx.Client:
    """A raw HTTP client on the bank's protocol, to see status codes and bodies."""
    return httpx.Client(base_url=BASE_URL, transport=sim.transport())


def test_transfers_in_and_out_are_idempotent_on_the_reference(sim: InProcessBank, wire: httpx.Client) -> None:
    bank = sim.client()
    assert bank.open_accounts([("6200000001", 1_000_00), ("6200000002", 0)]) == (2, 0)
    assert bank.open_accounts([("6200000001", 5), ("6200000003", 7)]) == (1, 1)  # absent ones only
    assert bank.balance("6200000001") == 1_000_00  # not reset by the second opening
    assert bank.debit("R1", "6200000001", 300_00) == BankAnswer("applied")  # 银行转证券: the bank account pays
    assert bank.debit("R1", "6200000001", 300_00) == BankAnswer("applied")  # the same reference: once
    assert bank.credit("R2", "6200000002", 50_00) == BankAnswer("applied")  # 证券转银行
    assert bank.balance("6200000001") == 700_00 and bank.balance("6200000002") == 50_00
    again = wire.post("/v1/transfers/in", json={"reference": "R1", "account_no": "6200000001", "amount_fen": 300_00})
    assert again.status_code == 200 and again.json()["replayed"] is True and again.json()["status"] == "applied"
    other = wire.post("/v1/transfers/in", json={"reference": "R1", "account_no": "6200000001", "amount_fen": 1})
    assert other.status_code == 409 and other.json()["error"] == "reference_conflict"
    assert bank.debit("R1", "6200000001", 1) == BankAnswer("rejected", "reference_conflict")
    assert bank.balance("6200000001") == 700_00


def test_refusals_are_final_and_cancel_makes_a_reference_void(sim: InProcessBank) -> None:
    bank = sim.client()
    bank.open_accounts([("6200000001", 100_00)])
    assert bank.debit("R1", "6200000001", 200_00) == BankAnswer("rejected", "insufficient_funds")
    assert bank.debit("R2", "6299999999", 1_00) == BankAnswer("rejected", "unknown_account")
    bank.credit("TOPUP", "6200000001", 500_00)
    assert bank.debit("R1", "6200000001", 200_00) == BankAnswer("rejected", "insufficient_funds")  # first answer
    assert bank.cancel("R3") == "cancelled"  # never seen: from now on it cannot apply
    assert bank.debit("R3", "6200000001", 1_00).status == "cancelled"
    assert bank.cancel("TOPUP") == "applied"  # too late: it had applied
    assert bank.status("R1") == "cancelled" and bank.status("R3") == "cancelled" and bank.status("R9") == "unknown"
    assert bank.query("TOPUP").account_no == "6200000001" and bank.query("TOPUP").amount_fen == 500_00
    assert bank.balance("6200000001") == 600_00


def test_statement_of_a_day_lists_what_applied_that_day(sim: InProcessBank) -> None:
    bank = sim.client()
    bank.open_accounts([("6200000001", 1_000_00)])
    bank.debit("D1", "6200000001", 10_00)
    bank.debit("D1-REFUSED", "6200000001", 10_000_00)
    sim.clock.now += timedelta(days=1)  # type: ignore[attr-defined]
    bank.credit("D2", "6200000001", 3_00)
    assert bank.statement(DAY) == {"D1": ("6200000001", -10_00)}
    assert bank.statement(DAY + timedelta(days=1)) == {"D2": ("6200000001", 3_00)}
    assert bank.statement(DAY - timedelta(days=1)) == {}
    record = bank.query("D2")
    assert record.business_day == DAY + timedelta(days=1) and record.status == "applied"


def test_the_business_day_is_the_banks_local_date(tmp_path: Path) -> None:
    books = BankBooks.open(f"sqlite:///{tmp_path / 'b.db'}", clock=lambda: datetime(2026, 11, 24, 17, 30, tzinfo=timezone.utc))
    books.open_accounts([("1", 100)])
    assert books.transfer("in", "X", "1", 1).business_day == "2026-11-25"  # 01:30 in Shanghai
    books.close()


@pytest.mark.parametrize(("body", "path"), [
    (b"not json", "/v1/transfers/in"), (b"[]", "/v1/transfers/in"),
    (b'{"reference": "R", "account_no": "62", "amount_fen": 0}', "/v1/transfers/in"),
    (b'{"reference": "R", "account_no": "62", "amount_fen": 1.5}', "/v1/transfers/out"),
    (b'{"reference": "R", "account_no": "62", "amount_fen": true}', "/v1/transfers/out"),
    (b'{"reference": "R R", "account_no": "62", "amount_fen": 1}', "/v1/transfers/in"),
    (b'{"reference": "R", "account_no": "", "amount_fen": 1}', "/v1/transfers/in"),
    (b'{"accounts": [{"account_no": "1", "balance_fen": -1}]}', "/v1/sim/accounts"),
])
def test_bad_requests_are_400_and_change_nothing(sim: InProcessBank, wire: httpx.Client, body: bytes, path: str) -> None:
    r = wire.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request" and r.json()["message"]
    assert sim.books.accounts() == [] and sim.client().status("R") == "unknown"
    assert wire.get("/v1/statements/2026-13-01").status_code == 400
    assert wire.get("/v1/nowhere").status_code == 404
    assert wire.get("/v1/accounts/6200000001").status_code == 404


@pytest.mark.parametrize(("fault", "applied"), [("timeout_before", False), ("timeout_after", True),
                                                 ("down_before", False), ("down_after", True)])
def test_faults_leave_the_outcome_unknown_and_the_reference_tells(sim: InProcessBank, fault: str, applied: bool) -> None:
    bank = sim.client()
    bank.open_accounts([("6200000001", 100_00)])
    sim.faults = BankFaults(rule=lambda ref: fault if ref == "F1" else None)  # type: ignore[arg-type,return-value]  # a Fault name
    with pytest.raises(BankUnavailable):
        bank.debit("F1", "6200000001", 10_00)
    if fault.startswith("down"):
        with pytest.raises(BankUnavailable):  # down is down: every call fails until it is restarted
            bank.status("F1")
        sim.restart()
    assert bank.status("F1") == ("applied" if applied else "unknown")
    assert bank.balance("6200000001") == (90_00 if applied else 100_00)
    # the engine's retry with the same reference: applied once whatever happened before
    sim.faults = BankFaults()
    assert bank.debit("F1", "6200000001", 10_00) == BankAnswer("applied")
    assert bank.balance("6200000001") == 90_00


def test_refuse_fault_refuses_a_new_reference_for_good(sim: InProcessBank) -> None:
    bank = sim.client()
    bank.open_accounts([("6200000001", 100_00)])
    sim.faults = BankFaults(refuse=1.0)
    assert bank.debit("Q1", "6200000001", 1_00) == BankAnswer("rejected", "refused")
    sim.faults = BankFaults()
    assert bank.debit("Q1", "6200000001", 1_00) == BankAnswer("rejected", "refused")
    assert bank.balance("6200000001") == 100_00


def test_fault_rates_come_from_the_settings_and_a_seed_repeats_them() -> None:
    settings = load_settings(bank_fault_refuse_rate=0.1, bank_fault_timeout_before_rate=0.2,
                             bank_fault_timeout_after_rate=0.2, bank_fault_down_rate=0.1, bank_fault_seed=7)
    one, two = BankFaults.from_settings(settings), BankFaults.from_settings(settings)
    first = [one.draw(str(i)) for i in range(4000)]
    assert first == [two.draw(str(i)) for i in range(4000)]
    shares = {name: first.count(name) / len(first) for name in set(first)}
    assert abs(shares["refuse"] - 0.1) < 0.03 and abs(shares["timeout_before"] - 0.2) < 0.03
    assert abs(shares["timeout_after"] - 0.2) < 0.03 and abs(shares["down_before"] - 0.05) < 0.02
    assert abs(shares[None] - 0.4) < 0.03
    assert BankFaults.from_settings(load_settings()).draw("r") is None


def test_settings_keep_the_banks_books_apart_and_fault_rates_sane() -> None:
    from callcenter.settings import SettingsError

    with pytest.raises(SettingsError, match="bank_database_url"):
        load_settings(database_url="sqlite:///var/x.db", bank_database_url="sqlite:///var/x.db")
    with pytest.raises(SettingsError, match="add up to more than 1"):
        load_settings(bank_fault_refuse_rate=0.6, bank_fault_down_rate=0.6)
    with pytest.raises(SettingsError, match="bank_url"):
        load_settings(bank_url="bank.internal:8010")


class Garbled(httpx.BaseTransport):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.response


@pytest.mark.parametrize("response", [
    httpx.Response(500, json={"error": "boom"}), httpx.Response(502, text="bad gateway"),
    httpx.Response(200, text="<html>"), httpx.Response(200, json={"status": "maybe"}), httpx.Response(200, json=[1]),
    httpx.Response(400, json={"error": "invalid_request"}),
])
def test_an_answer_the_adapter_cannot_trust_is_unknown_not_a_guess(response: httpx.Response) -> None:
    bank = HttpBank("http://bank.test", transport=Garbled(response))
    with pytest.raises(BankUnavailable):
        bank.credit("R1", "6200000001", 1_00)
    with pytest.raises(BankUnavailable):
        bank.statement(DAY)


def test_a_bank_that_is_not_there_is_unavailable() -> None:
    bank = HttpBank("http://127.0.0.1:9", timeout=0.5)  # discard port: nothing listens
    with pytest.raises(BankUnavailable):
        bank.debit("R1", "6200000001", 1_00)
    bank.close()


def test_twins_of_one_reference_at_once_apply_once_and_a_cancel_race_has_one_winner(sim: InProcessBank) -> None:
    from concurrent.futures import ThreadPoolExecutor

    bank = sim.client()
    bank.open_accounts([("6200000001", 1_000_00)])
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: bank.debit("TWIN", "6200000001", 10_00), range(16)))
        assert set(answers) == {BankAnswer("applied")} and bank.balance("6200000001") == 990_00
        for n in range(8):
            ref = f"RACE{n}"
            delivery = pool.submit(bank.credit, ref, "6200000001", 1_00)
            cancel = pool.submit(bank.cancel, ref)
            applied = delivery.result().status == "applied"
            assert (cancel.result() == "applied") == applied == (bank.status(ref) == "applied")
    credited = sum(bank.status(f"RACE{n}") == "applied" for n in range(8))
    assert bank.balance("6200000001") == 990_00 + credited * 1_00
