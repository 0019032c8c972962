"""The process is killed at each point of a transfer; then the request is retried with the same key, or
reconcile runs first. Each key makes exactly one transfer; done means posted; nothing is left half-done."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.bootstrap import App
from callcenter.domain.access import Actor
from callcenter.services.transfers import TransferCommand
from callcenter.store.db import transaction
from callcenter.store.ledger import check_ledger
from callcenter.store.models import JournalEntry, Transfer
from tests.db.crash_worker import KILLED
from tests.factories import make_client

ROOT = Path(__file__).resolve().parents[2]


def run_child(core: App, url: str, bank_url: str, point: str, key: str, kind: str, account: str, amount: str,
              to: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "tests.db.crash_worker", url, bank_url, point, core.clock().isoformat(), key, kind,
            account, amount]
    if to:
        args.append(to)
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def ledger(core: App) -> tuple[list[str], int]:
    with transaction(core.sessions) as s:
        result = check_ledger(s)
    return result.problems, result.client_money_fen


def transfers_for(core: App, key: str) -> list[Transfer]:
    with transaction(core.sessions) as s:
        return list(s.execute(select(Transfer).where(Transfer.idempotency_key == key)).scalars())


def entries_for(core: App, transfer_id: int) -> int:
    with transaction(core.sessions) as s:
        return s.execute(select(func.count(JournalEntry.id)).where(JournalEntry.transfer_id == transfer_id)).scalar_one()


CASES = [
    ("before_commit", "fund_to_bank"), ("after_commit", "fund_to_bank"), ("during_bank", "fund_to_bank"),
    ("after_bank", "fund_to_bank"), ("before_commit", "bank_to_fund"), ("during_bank", "bank_to_fund"),
    ("after_bank", "bank_to_fund"), ("after_commit", "fund_to_fund"),
]


@pytest.mark.slow
@pytest.mark.parametrize("then", ["retry", "reconcile"])
@pytest.mark.parametrize(("point", "kind"), CASES)
def test_killed_transfer_is_applied_exactly_once(core: App, db_url: str, bank_db_url: str, point: str, kind: str,
                                                then: str) -> None:
    _, (main, aux) = make_client(core, accounts=[(1_000_00, 1_000_00), (0, 0)])
    problems, before = ledger(core)
    key = f"crash-{point}-{kind}-{then}"
    to = aux if kind == "fund_to_fund" else None
    child = run_child(core, db_url, bank_db_url, point, key, kind, main, "123.45", to)
    assert child.returncode == KILLED, child.stderr[-2000:]

    if then == "reconcile":
        report = core.transfers.reconcile(grace=timedelta(0))  # the child is dead: nothing is in flight
        assert report.unresolved == []
        # after reconcile nothing is pending, and a retry only reads the settled answer
    retried = core.transfers.transfer(TransferCommand(idempotency_key=key, kind=kind, fund_account_no=main,
                                                      amount_yuan="123.45", to_fund_account_no=to,
                                                      actor=Actor.back_office("test")))
    rows = transfers_for(core, key)
    if point == "before_commit":
        assert retried.status == "done" and len(rows) == 1  # nothing was recorded: the retry is the first
    assert len(rows) == 1, "each key makes exactly one transfer"
    row = rows[0]
    assert row.status == retried.status and row.status != "pending"
    if row.status == "done":
        assert entries_for(core, row.id) == (2 if kind == "fund_to_bank" else 1)
    else:  # voided by reconcile: the bank never applied it and the money is back
        assert then == "reconcile" and point in ("after_commit", "before_commit")
    problems, after = ledger(core)
    assert problems == [] and after == before
    assert core.transfers.reconcile(grace=timedelta(0)).differences == 0
    # the bank agrees with us
    applied = core.bank.statement(core.clock().date())
    assert (row.reference in applied) == (row.status == "done" and kind != "fund_to_fund")
