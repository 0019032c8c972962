"""Jepsen-style test of the money core over the HTTP API, with the bank in its own process.

Eight clients send a few hundred transfers (``POST /api/transfers`` with idempotency keys; every sixth key is
sent four times at once) as a supervisor of the clients' service group, while the test ``kill -9``s the engine
server three times and the bank process three times and restarts them, and the bank itself refuses, times out
before applying and times out after applying a few percent of requests (its fault settings). A client whose
connection breaks sends the same key again once the engine is back. At the end: a retry of every key left
pending, reconcile over the protocol (no difference left), then

* conservation: the money at the broker (engine journal) plus the money at the bank (its own books) is what it
  was, and each bank account's mirror in our journal equals the bank's balance;
* no negative balance on either side;
* every key made at most one transfer and applied at most once at the bank; every answer of a key names the
  same transfer; nothing is left pending;
* every transfer that got a 201 is done and posted exactly once (its journal entries, and exactly one applied
  bank transaction for the bank kinds); every 202 ended done (applied once) or failed (applied nowhere).
"""

from __future__ import annotations

import queue
import random
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from callcenter.adapters.bank_http import HttpBank
from callcenter.bootstrap import bootstrap
from callcenter.settings import load_settings
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger
from callcenter.store.models import BankAccount, JournalEntry, LedgerAccount, Transfer
from tests.bankdb import bank_pg_url, fresh_bank_database
from tests.conftest import TRADING_NOON_UTC, FixedClock
from tests.factories import make_client, make_group, make_staff
from tests.processes import Server, bank_server, clean_env, free_port

KEYS = 240  # distinct idempotency keys
REPEAT_EVERY, COPIES = 6, 4  # every sixth key is sent four times at once
WORKERS = 8
KILLS = ["engine", "bank", "engine", "bank", "engine", "bank"]  # at evenly spread points of progress
FINAL = {201, 409, 422}  # answers that settle a key (202: pending, ask again)
SHANGHAI = ZoneInfo("Asia/Shanghai")


class Run:
    """What the clients saw: every answer per key, in order."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, dict[str, object]]]] = defaultdict(list)
        self.lock = threading.Lock()
        self.progress = threading.Condition()
        self.done = 0
        self.engine_up = threading.Event()
        self.errors: list[str] = []

    def record(self, key: str, status: int, body: dict[str, object]) -> None:
        with self.lock:
            self.answers[key].append((status, body))

    def tick(self) -> None:
        with self.progress:
            self.done += 1
            self.progress.notify_all()

    def wait_for(self, n: int) -> None:
        with self.progress:
            self.progress.wait_for(lambda: self.done >= n, timeout=120)


def send(client: httpx.Client, run: Run, key: str, body: dict[str, str], attempts: int = 40) -> None:
    """One client request, sent again with the same key whenever the engine was not there to answer."""
    for _ in range(attempts):
        try:
            r = client.post("/api/transfers", json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError:
            run.engine_up.wait(60)  # killed: wait until it is back, then the same key again
            time.sleep(0.02)
            continue
        if r.status_code >= 500:
            run.errors.append(f"{key}: {r.status_code} {r.text[:200]}")
            return
        run.record(key, r.status_code, r.json())
        return
    run.errors.append(f"{key}: no answer after {attempts} attempts")


def plan(accounts: list[list[str]], seed: int) -> tuple[list[list[tuple[str, dict[str, str]]]], dict[str, dict[str, str]]]:
    rng = random.Random(seed)
    groups, bodies = [], {}
    for i in range(KEYS):
        main, aux = rng.choice(accounts)
        kind = rng.choice(["bank_to_fund", "fund_to_bank", "fund_to_fund"])
        src = rng.choice([main, aux])
        body = {"kind": kind, "fund_account": src, "amount": f"{rng.randrange(1, 1_500_00) / 100:.2f}"}
        if kind == "fund_to_fund":
            body["to_fund_account"] = aux if src == main else main
        key = f"jepsen-{seed}-{i}"
        bodies[key] = body
        groups.append([(key, body)] * (COPIES if i % REPEAT_EVERY == 0 else 1))
    rng.shuffle(groups)
    return groups, bodies


@pytest.mark.slow
def test_money_survives_kills_of_engine_and_bank(db_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    pg = db_url.startswith("postgresql")
    bank_db = fresh_bank_database(bank_pg_url()) if pg else f"sqlite:///{tmp_path / 'bank.db'}"
    bank_days = {datetime.now(timezone.utc).astimezone(SHANGHAI).date()}
    bank = bank_server(tmp_path, bank_database_url=bank_db, bank_fault_refuse_rate=0.03,
                       bank_fault_timeout_before_rate=0.03, bank_fault_timeout_after_rate=0.03,
                       bank_fault_hang_seconds=0.8)
    web_port = free_port()
    settings = dict(database_url=db_url, bank_url=bank.url, bank_database_url=bank_db, bank_timeout_seconds=0.5,
                    web_host="127.0.0.1", web_port=web_port)
    engine = Server("engine", [sys.executable, "-m", "tests.e2e.jepsen_engine", TRADING_NOON_UTC.isoformat()],
                    clean_env(**settings), f"http://127.0.0.1:{web_port}", tmp_path)
    gateway = HttpBank(bank.url, timeout=10)
    core = bootstrap(load_settings(database_url=db_url, bank_url=bank.url, bank_database_url=bank_db),
                     clock=FixedClock(), bank=gateway)
    try:
        bank.start()
        group = make_group(core, "压测组")
        make_staff(core, "jepsen-sup", "pw-jepsen-1", "supervisor", supervises=[group])
        accounts = [make_client(core, accounts=[(3_000_00, 3_000_00), (800_00, 800_00)], group_id=group)[1]
                    for _ in range(4)]
        opening = gateway.accounts()
        broker_before = _broker_money(core)
        engine.start()
        run = Run()
        run.engine_up.set()
        login = httpx.post(engine.url + "/api/login", json={"username": "jepsen-sup", "password": "pw-jepsen-1"})
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        groups, bodies = plan(accounts, seed=11)
        jobs: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        for g in groups:
            for job in g:
                jobs.put(job)
        total = jobs.qsize()

        def worker() -> None:
            with httpx.Client(base_url=engine.url, headers=auth, timeout=15) as client:
                while (job := jobs.get()) is not None:
                    send(client, run, *job)
                    run.tick()

        def killer() -> None:
            for n, target in enumerate(KILLS, start=1):
                run.wait_for(total * n // (len(KILLS) + 1))
                if target == "engine":
                    run.engine_up.clear()
                    engine.kill9()
                    engine.start()
                    run.engine_up.set()
                else:
                    bank.kill9()  # the engine's bank calls fail meanwhile: their transfers stay pending
                    bank.start()

        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        chaos = threading.Thread(target=killer)
        for t in threads + [chaos]:
            t.start()
        chaos.join(240)
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join(240)
        assert run.errors == [], run.errors[:10]
        assert (engine.kills, bank.kills) == (3, 3)

        # a client asks again about every key still pending, then reconcile settles what is left
        for key, answers in list(run.answers.items()):
            if answers[-1][0] not in FINAL:
                jobs.put((key, bodies[key]))
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
            jobs.put(None)
        for t in threads:
            t.join(240)
        bank_days.add(datetime.now(timezone.utc).astimezone(SHANGHAI).date())
        # reconcile over the protocol with the bank process, for the engine's trade day and the bank's own days
        # (the bank stamps its wall-clock business day; the engine runs on a fixed trading day)
        for day in sorted({TRADING_NOON_UTC.astimezone(SHANGHAI).date(), *bank_days}):
            report = core.transfers.reconcile(day=day, grace=timedelta(0))
            assert report.unresolved == [] and report.in_flight == [], (day, report)

        # ---- the invariants
        with transaction(core.sessions) as s:
            ledger = check_ledger(s)
            assert ledger.problems == []  # balanced entries, caches = postings, no negative book
            rows = {t.idempotency_key: t for t in s.execute(select(Transfer)).scalars()}
            entries = dict(s.execute(select(JournalEntry.transfer_id, func.count(JournalEntry.id))
                                     .group_by(JournalEntry.transfer_id)).all())
            mirrors = dict(s.execute(select(BankAccount.account_no, LedgerAccount.balance_fen).join(
                LedgerAccount, (LedgerAccount.kind == "bank") & (LedgerAccount.owner_id == BankAccount.id))).all())
        bank_now = gateway.accounts()
        applied: dict[str, tuple[str, int]] = {}
        for day in bank_days:
            for ref, item in gateway.statement(day).items():
                assert ref not in applied, f"{ref} applied twice at the bank"
                applied[ref] = item

        assert set(run.answers) == set(bodies)  # every key was answered
        assert all(t.status != "pending" for t in rows.values()), "pending after reconcile"
        assert set(rows) <= set(bodies) and len({t.reference for t in rows.values()}) == len(rows)
        ours_at_bank = {}
        for key, t in rows.items():
            expected = {"fund_to_fund": 1, "bank_to_fund": 1, "fund_to_bank": 2}[t.kind]
            if t.status == "done":
                assert entries.get(t.id) == expected, f"{key} posted {entries.get(t.id)} times"
                if t.kind != "fund_to_fund":
                    ours_at_bank[t.reference] = t
            elif t.status == "failed" and t.kind == "fund_to_bank":
                assert entries.get(t.id) == 2, key  # into transit, and back
            else:  # rejected, or a bank_to_fund the bank did not apply: nothing posted
                assert entries.get(t.id, 0) == 0, key
        assert set(applied) == set(ours_at_bank), "the bank and our journal disagree on what was applied"
        for ref, t in ours_at_bank.items():
            signed = t.amount_fen if t.kind == "fund_to_bank" else -t.amount_fen
            assert applied[ref][1] == signed
        for key, answers in run.answers.items():
            refs = {_reference(b) for _, b in answers}
            row = rows.get(key)
            assert refs == {row.reference if row else ""}, f"{key} got answers about {refs}"
            codes = {status for status, _ in answers}
            if 201 in codes:
                assert row is not None and row.status == "done"
                assert codes <= {201, 202}, f"{key}: {codes}"
            if 202 in codes:
                assert row is not None and row.status in ("done", "failed")
        for account, balance in bank_now.items():
            assert balance >= 0
            moved = sum(amount for acct, amount in applied.values() if acct == account)
            assert balance == opening[account] + moved  # the bank's books follow its own statement
            assert mirrors[account] == balance  # our mirror of the bank account equals the bank's books
        assert _broker_money(core) + sum(bank_now.values()) == broker_before + sum(opening.values())
        outcomes = defaultdict(int)
        for t in rows.values():
            outcomes[t.status] += 1
        assert outcomes["done"] > KEYS // 3  # the test moved money, not only refusals
        elapsed = time.monotonic() - started
        print(f"jepsen {'postgresql' if pg else 'sqlite'}: {sum(len(a) for a in run.answers.values())} answers, "
              f"{dict(outcomes)}, kills engine {engine.kills} bank {bank.kills}, {elapsed:.1f} s")
    finally:
        engine.stop()
        bank.stop()
        gateway.close()
        core.close()


def _reference(body: dict[str, object]) -> str:
    """The transfer an answer is about: the body itself (201/202), or the error's ``transfer`` (409/422)."""
    error = body.get("error")
    if isinstance(error, dict):
        transfer = error.get("transfer")
        return str(transfer.get("reference", "")) if isinstance(transfer, dict) else ""
    return str(body.get("reference", ""))


def _broker_money(core) -> int:  # type: ignore[no-untyped-def]
    """Client money at the broker: fund, frozen and transit books (the bank mirror is the bank's side)."""
    with transaction(core.sessions) as s:
        return int(s.execute(select(func.coalesce(func.sum(LedgerAccount.balance_fen), 0))
                             .where(LedgerAccount.kind.in_(("fund", "frozen", "transit")))).scalar_one())

