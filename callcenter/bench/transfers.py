"""``callcenter bench transfers``: transfers per second through the custody service, next to a baseline that
inserts the same postings by plain SQL without the rules, measured in the same run; invariants checked after.

By default it runs on a fresh temporary SQLite file; ``--database-url`` runs it on another database (it is
migrated, and its demo data stays untouched: the bench adds its own clients)."""

from __future__ import annotations

import json
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from callcenter.bank.books import BankBooks
from callcenter.bank.inprocess import InProcessBank
from callcenter.bootstrap import App, bootstrap
from callcenter.domain.access import Actor
from callcenter.services.transfers import TransferCommand
from callcenter.settings import load_settings
from callcenter.store.db import make_engine, run_in_transaction, transaction
from callcenter.store.ledger import check_ledger, open_books, post
from callcenter.store.models import (
    BankAccount,
    Base,
    Client,
    FundAccount,
    JournalEntry,
    LedgerAccount,
    Posting,
)
from callcenter.store.migrate import upgrade

BENCH = Actor.back_office("bench")  # an in-process tool: moves the seeded clients' money

TRADING_MORNING = datetime(2026, 11, 25, 2, 30, tzinfo=timezone.utc)  # 10:30 Shanghai, a trading day


def _make_clients(core: App, n: int, tag: str) -> list[list[str]]:
    openings: list[tuple[str, int]] = []

    def work(s: Session) -> list[list[str]]:
        out = []
        openings.clear()
        for i in range(n):
            c = Client(client_no=f"B{tag}{i:05d}", name=f"压测{i}", id_number_masked="-", mobile=f"+86139{i:08d}",
                       branch="bench", opened_on=TRADING_MORNING.date())
            s.add(c)
            s.flush()
            numbers = []
            for seq in (1, 2):
                bank = BankAccount(client_id=c.id, bank_code="ICBC", bank_name="中国工商银行", account_no=f"B{tag}{i:05d}{seq}")
                s.add(bank)
                s.flush()
                f = FundAccount(client_id=c.id, seq=seq, account_no=f"8{tag}{i:05d}{seq}", is_main=seq == 1,
                                main_of_client=c.id if seq == 1 else None, bank_account_id=bank.id,
                                opened_on=TRADING_MORNING.date())
                s.add(f)
                s.flush()
                open_books(s, f)
                post(s, TRADING_MORNING, "bench opening", [("fund", f.id, 10**9), ("bank", bank.id, 10**9),
                                                           ("equity", 0, -2 * 10**9)])
                openings.append((bank.account_no, 10**9))
                numbers.append(f.account_no)
            out.append(numbers)
        return out

    made = run_in_transaction(core.sessions, work)
    core.bank.open_accounts(openings)  # type: ignore[attr-defined]  # the in-process simulated bank
    return made


def _commands(clients: list[list[str]], count: int, tag: str, seed: int) -> list[TransferCommand]:
    rng = random.Random(seed)
    cmds = []
    for i in range(count):
        main, aux = rng.choice(clients)
        kind = rng.choice(["bank_to_fund", "fund_to_bank", "fund_to_fund"])
        src, dst = (main, aux) if rng.random() < 0.5 else (aux, main)
        cmds.append(TransferCommand(idempotency_key=f"bench-{tag}-{i}", kind=kind, fund_account_no=src,
                                    to_fund_account_no=dst if kind == "fund_to_fund" else None,
                                    amount_yuan=f"{rng.randrange(1, 100_000) / 100:.2f}", channel="bench",
                                    actor=BENCH))
    return cmds


def _baseline(core: App, cmds: list[TransferCommand]) -> float:
    """The same postings by plain SQL: one transaction per transfer, no rules, no idempotency, no bank."""
    with transaction(core.sessions) as s:
        rows = s.execute(select(FundAccount.account_no, FundAccount.id, FundAccount.bank_account_id)).all()
        books = {(k, o): i for i, k, o in s.execute(select(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.owner_id))}
    fund = {no: (fid, bid) for no, fid, bid in rows}
    plans = []
    for c in cmds:
        amount = int(round(float(c.amount_yuan) * 100))  # bench-only: amounts are generated with two decimals
        fid, bid = fund[c.fund_account_no]
        if c.kind == "fund_to_fund":
            tid = fund[c.to_fund_account_no or ""][0]
            plans.append([(books[("fund", fid)], -amount), (books[("fund", tid)], amount)])
        elif c.kind == "fund_to_bank":
            plans.append([(books[("fund", fid)], -amount), (books[("transit", fid)], amount),
                          (books[("transit", fid)], -amount), (books[("bank", bid)], amount)])
        else:
            plans.append([(books[("bank", bid)], -amount), (books[("fund", fid)], amount)])
    start = time.perf_counter()
    for plan in plans:
        with transaction(core.sessions) as s:
            entry_id = s.execute(insert(JournalEntry).values(at=TRADING_MORNING, memo="baseline")
                                 .returning(JournalEntry.id)).scalar_one()
            s.execute(insert(Posting), [{"entry_id": entry_id, "ledger_account_id": b, "amount_fen": a} for b, a in plan])
            for b, a in plan:
                s.execute(update(LedgerAccount).where(LedgerAccount.id == b)
                          .values(balance_fen=LedgerAccount.balance_fen + a))
    return time.perf_counter() - start


def run(transfers: int = 2000, clients: int = 20, workers: int = 1, database_url: str | None = None,
        as_json: bool = False, seed: int = 11) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    tmp = None
    if database_url is None:
        tmp = tempfile.TemporaryDirectory(prefix="cc-bench-")
        database_url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(database_url, pool_size=max(workers, 5))
    upgrade(engine)
    Base.metadata.create_all(engine, checkfirst=True)
    # The bank: the bank service's protocol and books in this process (its own SQLite file), so the figure is
    # the engine's and not the loopback network's.
    bank_dir = tempfile.TemporaryDirectory(prefix="cc-bench-bank-")
    bank = InProcessBank(BankBooks.open(f"sqlite:///{Path(bank_dir.name) / 'bank.db'}", clock=lambda: TRADING_MORNING))
    core = bootstrap(load_settings(database_url=database_url), database=engine, clock=lambda: TRADING_MORNING,
                     bank=bank.client())
    try:
        tag = f"{int(time.time()) % 100000:05d}"
        accounts = _make_clients(core, clients, tag)
        with transaction(core.sessions) as s:
            money_before = check_ledger(s).client_money_fen
        cmds = _commands(accounts, transfers, tag, seed)
        start = time.perf_counter()
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                outcomes = list(pool.map(core.transfers.transfer, cmds))
        else:
            outcomes = [core.transfers.transfer(c) for c in cmds]
        service_s = time.perf_counter() - start
        with transaction(core.sessions) as s:
            check = check_ledger(s)
        invariants_ok = check.ok and check.client_money_fen == money_before
        baseline_s = _baseline(core, cmds)
        with transaction(core.sessions) as s:
            after_baseline = check_ledger(s)
        done = sum(o.status == "done" for o in outcomes)
        figures = {
            "database": engine.dialect.name,
            "transfers": transfers, "done": done, "rejected": transfers - done, "workers": workers,
            "service_tps": round(transfers / service_s, 1),
            "baseline_tps": round(transfers / baseline_s, 1),
            "ratio": round((transfers / service_s) / (transfers / baseline_s), 3),
            "invariants_ok": invariants_ok and after_baseline.ok,
        }
    finally:
        core.close()
        bank.close()
        bank_dir.cleanup()
        if tmp is not None:
            tmp.cleanup()
    table = Table(title=f"bench transfers · {figures['database']} · {transfers} transfers · {workers} worker(s)")
    for col in ("path", "transfers/s", "ratio"):
        table.add_column(col)
    table.add_row("custody service (rules, idempotency, bank, journal)", f"{figures['service_tps']:,}", f"{figures['ratio']}")
    table.add_row("baseline: same postings by plain SQL", f"{figures['baseline_tps']:,}", "1.0")
    console = Console()
    console.print(table)
    console.print(f"done {done}, rejected {transfers - done}; invariants after the run: "
                  + ("ok" if figures["invariants_ok"] else "BROKEN"))
    if as_json:
        print(json.dumps(figures))
    return figures
