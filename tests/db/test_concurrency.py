"""Many workers at once: 50 threads making 2,000 transfers among 20 clients with repeated idempotency keys.

On PostgreSQL this is the issue's acceptance test; on SQLite it runs smaller (one writer at a time by design)."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from callcenter.bootstrap import App, bootstrap
from callcenter.domain.access import Actor
from callcenter.services.transfers import TransferCommand
from callcenter.settings import load_settings
from callcenter.store.db import make_engine, transaction
from callcenter.store.ledger import check_ledger
from callcenter.store.models import JournalEntry, Transfer
from tests.factories import make_client


def test_concurrent_workers_keep_every_invariant(db_url: str, clock, bank_sim) -> None:  # type: ignore[no-untyped-def]
    pg = db_url.startswith("postgresql")
    workers, transfers, clients = (50, 2000, 20) if pg else (8, 300, 5)
    core: App = bootstrap(load_settings(database_url=db_url), clock=clock, bank=bank_sim.client(),
                          database=make_engine(db_url, pool_size=workers) if pg else None)
    try:
        accounts = [make_client(core, accounts=[(50_000_00, 50_000_00), (5_000_00, 5_000_00), (0, 1_000_00)])[1]
                    for _ in range(clients)]
        with transaction(core.sessions) as s:
            before = check_ledger(s).client_money_fen
        rng = random.Random(7)
        commands = []
        for i in range(transfers):
            accts = rng.choice(accounts)
            kind = rng.choice(["bank_to_fund", "fund_to_bank", "fund_to_fund"])
            src, dst = rng.sample(range(3), 2)
            if kind == "fund_to_fund" and 0 not in (src, dst):
                dst = 0
            amount = f"{rng.randrange(1, 3_000_00) / 100:.2f}"
            commands.append(TransferCommand(idempotency_key=f"c-{i}", kind=kind, fund_account_no=accts[src],
                                            to_fund_account_no=accts[dst] if kind == "fund_to_fund" else None,
                                            amount_yuan=amount, actor=Actor.back_office("test")))
        # every fifth request is sent again (same key, same body), some of them concurrently with the first
        work = commands + commands[::5]
        rng.shuffle(work)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(core.transfers.transfer, work))  # an exception here fails the test
        by_key: dict[str, set[tuple[str, str]]] = {}
        for request, out in zip(work, outcomes):
            by_key.setdefault(request.idempotency_key, set()).add((out.status, out.reference))
        assert all(len(answers) == 1 for answers in by_key.values()), "a key got two different answers"
        statuses = Counter(out.status for out in outcomes)
        assert statuses["done"] > transfers // 3 and statuses["pending"] == 0
        with transaction(core.sessions) as s:
            result = check_ledger(s)
            assert result.problems == []
            assert result.client_money_fen == before
            assert s.execute(select(func.count(Transfer.id))).scalar_one() == len({c.idempotency_key for c in commands})
            done = s.execute(select(Transfer).where(Transfer.status == "done")).scalars().all()
            entries = dict(s.execute(select(JournalEntry.transfer_id, func.count(JournalEntry.id))
                                     .group_by(JournalEntry.transfer_id)).all())
            assert all(entries[t.id] == (1 if t.kind != "fund_to_bank" else 2) for t in done)
        assert core.transfers.reconcile().differences == 0
    finally:
        core.close()
