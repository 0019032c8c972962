"""``callcenter bench transfers``: transfers per second through the custody service, next to two baselines that
post the same journal entries without the rules, the idempotency or the bank: through an ORM session
(``ORM baseline``) and through the raw DB-API cursor (``raw baseline``, what the database itself costs). The three
run interleaved in chunks (their order rotating) so that a drift of the machine's load hits all alike; every
transfer must end ``done`` and the ledger must be sound with the clients' money unchanged, or the bench fails.

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

from sqlalchemy import Engine, insert, select, update
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


Plan = list[tuple[int, int]]  # (book id, signed fen) of one journal entry


def _plans(core: App, cmds: list[TransferCommand]) -> list[Plan]:
    """The postings each command makes when it is done (fund_to_bank through transit, as the service)."""
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
    return plans


def _orm_baseline(core: App, plans: list[Plan]) -> float:
    """The postings through an ORM session: one transaction per transfer, no rules, no idempotency, no bank."""
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


def _raw_baseline(engine: Engine, plans: list[Plan]) -> float:
    """The same statements through the DB-API cursor itself (sqlite3 or psycopg): what the database costs."""
    sqlite = engine.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    at: object = TRADING_MORNING.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else TRADING_MORNING
    entry_sql = f"INSERT INTO journal_entries (at, memo) VALUES ({mark}, {mark}) RETURNING id"
    posting_sql = f"INSERT INTO postings (entry_id, ledger_account_id, amount_fen) VALUES ({mark}, {mark}, {mark})"
    book_sql = f"UPDATE ledger_accounts SET balance_fen = balance_fen + {mark} WHERE id = {mark}"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        start = time.perf_counter()
        for plan in plans:
            if sqlite:
                cur.execute("BEGIN IMMEDIATE")
            cur.execute(entry_sql, (at, "raw baseline"))
            row = cur.fetchone()
            assert row is not None
            entry_id = row[0]
            cur.executemany(posting_sql, [(entry_id, b, a) for b, a in plan])
            for b, a in plan:
                cur.execute(book_sql, (a, b))
            raw.commit()
        took = time.perf_counter() - start
        cur.close()
    finally:
        raw.close()
    return took


def _service(core: App, cmds: list[TransferCommand]) -> tuple[float, list[str]]:
    start = time.perf_counter()
    statuses = [core.transfers.transfer(c).status for c in cmds]
    return time.perf_counter() - start, statuses


def _parallel(core: App, cmds: list[TransferCommand], workers: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        statuses = [o.status for o in pool.map(core.transfers.transfer, cmds)]
    return time.perf_counter() - start, statuses


def run(transfers: int = 2000, clients: int = 20, workers: int = 1, database_url: str | None = None,
        as_json: bool = False, seed: int = 11, chunk: int = 100) -> dict[str, Any]:
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
        plans = _plans(core, cmds)
        # a warm-up of each path (statement caches, the bank's first call), not timed
        _service(core, _commands(accounts, 20, tag + "w", seed + 1))
        _orm_baseline(core, plans[:20])
        _raw_baseline(engine, plans[:20])
        times = {"service": 0.0, "orm": 0.0, "raw": 0.0}
        statuses: list[str] = []
        for k, lo in enumerate(range(0, transfers, chunk)):
            order = ["service", "orm", "raw"]
            order = order[k % 3:] + order[:k % 3]  # rotating: none always first after a pause
            for path in order:
                if path == "service":
                    took, got = _service(core, cmds[lo:lo + chunk]) if workers == 1 else _parallel(core, cmds[lo:lo + chunk], workers)
                    statuses += got
                elif path == "orm":
                    took = _orm_baseline(core, plans[lo:lo + chunk])
                else:
                    took = _raw_baseline(engine, plans[lo:lo + chunk])
                times[path] += took
        with transaction(core.sessions) as s:
            check = check_ledger(s)
        done = statuses.count("done")
        if done != transfers:
            raise RuntimeError(f"bench transfers: {transfers - done} of {transfers} transfers did not end done: "
                               f"{sorted(set(statuses))}")
        if not (check.ok and check.client_money_fen == money_before):
            raise RuntimeError(f"bench transfers: ledger broken: {check.problems[:5]}")
        tps = {path: transfers / t_ for path, t_ in times.items()}
        figures = {
            "database": engine.dialect.name,
            "transfers": transfers, "done": done, "workers": workers, "chunk": chunk,
            "service_tps": round(tps["service"], 1),
            "orm_baseline_tps": round(tps["orm"], 1),
            "raw_baseline_tps": round(tps["raw"], 1),
            "ratio_orm": round(tps["service"] / tps["orm"], 3),
            "ratio_raw": round(tps["service"] / tps["raw"], 3),
            "target_ratio_orm": 0.5,
            "met": tps["service"] / tps["orm"] >= 0.5,
            "invariants_ok": True,
        }
    finally:
        core.close()
        bank.close()
        bank_dir.cleanup()
        if tmp is not None:
            tmp.cleanup()
    table = Table(title=f"bench transfers · {figures['database']} · {transfers} transfers · {workers} worker(s) · "
                        f"interleaved in chunks of {chunk}")
    for col in ("path", "transfers/s", "service / this"):
        table.add_column(col)
    table.add_row("custody service (rules, idempotency, bank, journal)", f"{figures['service_tps']:,}", "1.0")
    table.add_row("ORM baseline: same postings through a session", f"{figures['orm_baseline_tps']:,}",
                  f"{figures['ratio_orm']}")
    table.add_row("raw baseline: same postings through the DB-API cursor", f"{figures['raw_baseline_tps']:,}",
                  f"{figures['ratio_raw']}")
    console = Console()
    console.print(table)
    console.print(f"every transfer done ({done}); ledger sound, clients' money unchanged; target service >= 0.5x the "
                  f"ORM baseline: {'met' if figures['met'] else 'NOT met'}")
    if as_json:
        print(json.dumps(figures))
    return figures
