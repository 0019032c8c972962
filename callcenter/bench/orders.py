"""``callcenter bench orders``: phone orders per second through the order service — the A-share rules under the
client's lock, the trading-gateway port (the simulated exchange: its book, matching, fills) and the journal
(freeze, fills, releases) — next to a baseline that inserts the same rows (the order, its trades, the freeze's
journal entry and postings) by plain SQL without rules or gateway, measured in the same run.

Invariants checked after: the journal balances (``custody check``: every book equals its postings, every entry
sums to zero, no client book negative), and every accepted key is exactly one order (a share of the keys is sent
twice, as a caller's retry after a dropped line would; the retry must answer the first order).

By default it runs on a fresh temporary SQLite file; ``--database-url`` runs it on another database (migrated; the
bench adds its own clients and leaves the rest alone)."""

from __future__ import annotations

import json
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from callcenter.bench.transfers import TRADING_MORNING
from callcenter.bootstrap import App, bootstrap
from callcenter.domain.access import Actor
from callcenter.services.orders import OrderOutcome, PlaceOrder
from callcenter.settings import load_settings
from callcenter.store.db import make_engine, run_in_transaction, transaction
from callcenter.store.ledger import check_ledger, open_books, post
from callcenter.store.migrate import upgrade
from callcenter.store.models import (BankAccount, Base, Client, FundAccount, JournalEntry, LedgerAccount, Order,
                                     Posting, Trade)

CODES = ("600000", "600519", "000001", "300750", "601318", "000858")
REPLAY_SHARE = 0.05  # keys sent twice


def _make_clients(core: App, n: int, tag: str) -> list[tuple[int, str]]:
    def work(s: Session) -> list[tuple[int, str]]:
        out = []
        for i in range(n):
            c = Client(client_no=f"O{tag}{i:05d}", name=f"委托压测{i}", id_number_masked="-", mobile=f"+86138{i:08d}",
                       branch="bench", opened_on=TRADING_MORNING.date())
            s.add(c)
            s.flush()
            bank = BankAccount(client_id=c.id, bank_code="ICBC", bank_name="中国工商银行", account_no=f"O{tag}{i:05d}")
            s.add(bank)
            s.flush()
            f = FundAccount(client_id=c.id, seq=1, account_no=f"7{tag}{i:05d}", is_main=True, main_of_client=c.id,
                            bank_account_id=bank.id, opened_on=TRADING_MORNING.date())
            s.add(f)
            s.flush()
            open_books(s, f)
            post(s, TRADING_MORNING, "bench opening", [("fund", f.id, 10**10), ("equity", 0, -10**10)])
            out.append((c.id, f.account_no))
        return out

    return run_in_transaction(core.sessions, work)


def _commands(core: App, clients: list[tuple[int, str]], count: int, tag: str, seed: int) -> list[PlaceOrder]:
    rng = random.Random(seed)
    quotes = {code: core.orders.quote(code) for code in CODES if _tradable(core, code)}
    cmds = []
    for i in range(count):
        client_id, account = rng.choice(clients)
        code = rng.choice(sorted(quotes))
        q = quotes[code]
        low, high = Decimal(q.limit_down or q.last), Decimal(q.limit_up or q.last)
        kind = "market" if rng.random() < 0.1 else "limit"
        price = None if kind == "market" else str((low + (high - low) * Decimal(rng.random())).quantize(Decimal("0.01")))
        qty = (rng.randrange(2, 20) * 100) if not code.startswith("688") else rng.randrange(200, 2000)
        cmds.append(PlaceOrder(f"bench-{tag}-{i}", account, "buy", code, qty, price, kind=kind, channel="ivr",
                               caller_phone="+8613800000000", actor=Actor.client(client_id)))
    replays = [c for c in cmds if rng.random() < REPLAY_SHARE]
    out = cmds + replays
    rng.shuffle(out)
    return out


def _tradable(core: App, code: str) -> bool:
    try:
        core.orders.quote(code)
    except Exception:  # noqa: BLE001 - a code missing from this build's instrument list is skipped
        return False
    return True


def _baseline(core: App, order_ids: list[int], tag: str) -> float:
    """The same rows by plain SQL, one transaction per order: the order row (a fresh key and reference), its
    trade rows, one journal entry with the freeze's two postings and the two balance updates."""
    with transaction(core.sessions) as s:
        orders = [dict(r._mapping) for r in s.execute(select(Order.__table__).where(Order.id.in_(order_ids)))]
        trades: dict[int, list[dict[str, Any]]] = {}
        for r in s.execute(select(Trade.__table__).where(Trade.order_id.in_(order_ids))):
            trades.setdefault(r.order_id, []).append(dict(r._mapping))
        books = {(k, o): i for i, k, o in s.execute(select(LedgerAccount.id, LedgerAccount.kind, LedgerAccount.owner_id))}
        next_exec = int(s.execute(select(func.coalesce(func.max(Trade.exec_id), 0))).scalar_one()) + 10**6
    start = time.perf_counter()
    for n, row in enumerate(orders):
        with transaction(core.sessions) as s:
            values = {k: v for k, v in row.items() if k != "id"}
            values.update(idempotency_key=f"baseline-{tag}-{n}", reference=f"B{tag}{n:012d}"[:24])
            new_id = s.execute(insert(Order).values(**values).returning(Order.id)).scalar_one()
            for t_ in trades.get(row["id"], []):
                next_exec += 1
                s.execute(insert(Trade).values({**{k: v for k, v in t_.items() if k != "id"}, "order_id": new_id,
                                                "exec_id": next_exec}))
            amount = max(int(row["frozen_fen"]), 1)
            fund, frozen = books[("fund", row["fund_account_id"])], books[("frozen", row["fund_account_id"])]
            entry_id = s.execute(insert(JournalEntry).values(at=TRADING_MORNING, memo="baseline")
                                 .returning(JournalEntry.id)).scalar_one()
            s.execute(insert(Posting), [{"entry_id": entry_id, "ledger_account_id": fund, "amount_fen": -amount},
                                        {"entry_id": entry_id, "ledger_account_id": frozen, "amount_fen": amount}])
            for book_id, delta in ((fund, -amount), (frozen, amount)):
                s.execute(update(LedgerAccount).where(LedgerAccount.id == book_id)
                          .values(balance_fen=LedgerAccount.balance_fen + delta))
    return time.perf_counter() - start


def run(orders: int = 1000, clients: int = 20, workers: int = 1, database_url: str | None = None,
        as_json: bool = False, seed: int = 15) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    tmp = None
    if database_url is None:
        tmp = tempfile.TemporaryDirectory(prefix="cc-bench-orders-")
        database_url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(database_url, pool_size=max(workers, 5))
    upgrade(engine)
    Base.metadata.create_all(engine, checkfirst=True)
    core = bootstrap(load_settings(database_url=database_url), database=engine, clock=lambda: TRADING_MORNING)
    try:
        tag = f"{int(time.time()) % 100000:05d}"
        accounts = _make_clients(core, clients, tag)
        cmds = _commands(core, accounts, orders, tag, seed)
        start = time.perf_counter()
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                outcomes: list[OrderOutcome] = list(pool.map(core.orders.place, cmds))
        else:
            outcomes = [core.orders.place(c) for c in cmds]
        service_s = time.perf_counter() - start
        first: dict[str, int] = {}
        keys_ok = True
        for cmd, out in zip(cmds, outcomes):
            if out.order_id is None:
                continue
            if first.setdefault(cmd.key, out.order_id) != out.order_id:
                keys_ok = False  # a retry answered another order
        with transaction(core.sessions) as s:
            check = check_ledger(s)
            stored = dict(s.execute(select(Order.idempotency_key, func.count(Order.id))
                                    .where(Order.idempotency_key.like(f"bench-{tag}-%"))
                                    .group_by(Order.idempotency_key)).all())
        keys_ok = keys_ok and set(stored) == set(first) and set(stored.values()) <= {1}
        accepted = [out.order_id for out in outcomes if out.ok and out.order_id and not out.replayed]
        baseline_s = _baseline(core, [i for i in accepted if i is not None], tag)
        with transaction(core.sessions) as s:
            after_baseline = check_ledger(s)
        placed = len(cmds)
        service_ops = round(placed / service_s, 1)
        baseline_ops = round(len(accepted) / baseline_s, 1) if baseline_s else 0.0
        figures: dict[str, Any] = {
            "database": engine.dialect.name,
            "orders": placed, "accepted": len(accepted), "replays": sum(o.replayed for o in outcomes),
            "rejected": sum(not o.ok for o in outcomes), "filled": sum(o.status == "filled" for o in outcomes),
            "workers": workers,
            "service_ops": service_ops, "baseline_ops": baseline_ops,
            "ratio": round(service_ops / baseline_ops, 3) if baseline_ops else 0.0,
            "invariants_ok": check.ok and keys_ok and after_baseline.ok,
        }
    finally:
        core.close()
        if tmp is not None:
            tmp.cleanup()
    table = Table(title=f"bench orders · {figures['database']} · {placed} orders · {workers} worker(s)")
    for col in ("path", "orders/s", "ratio"):
        table.add_column(col)
    table.add_row("order service (rules, client lock, gateway, matching, journal)", f"{figures['service_ops']:,}",
                  f"{figures['ratio']}")
    table.add_row("baseline: the same rows by plain SQL", f"{figures['baseline_ops']:,}", "1.0")
    console = Console()
    console.print(table)
    console.print(f"accepted {figures['accepted']}, replays {figures['replays']}, rejected {figures['rejected']}, "
                  f"filled {figures['filled']}; invariants after the run: "
                  + ("ok" if figures["invariants_ok"] else "BROKEN"))
    if as_json:
        print(json.dumps(figures))
    return figures
