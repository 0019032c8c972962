"""The transfer path runs the statements it needs and no more (issue 17), on SQLite and PostgreSQL: counted with
SQLAlchemy's cursor events around one transfer of each kind. Every transaction it opens writes (no read-only
transaction between the request and the bank's answer); the bank's answer is settled by one conditional
``UPDATE ... RETURNING``; the fund account and the idempotency key are looked up once, and the books a transfer
posts to come with the fund account's lookup and the client's accounts (no post looks a book up)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

from callcenter.bootstrap import App
from callcenter.services.transfers import TransferCommand
from tests.db.test_transfers import TOOL, assert_sound
from tests.factories import make_client

pytestmark = pytest.mark.db


class Log:
    def __init__(self) -> None:
        self.transactions: list[list[str]] = [[]]

    @property
    def statements(self) -> list[str]:
        return [st for tx in self.transactions for st in tx]

    def count(self, starts: str) -> int:
        return sum(st.startswith(starts) for st in self.statements)


@contextmanager
def recorded(core: App) -> Iterator[Log]:
    engine = core.sessions.kw["bind"]
    log = Log()

    def on_execute(conn: object, cursor: object, statement: str, parameters: object, context: object,
                   executemany: bool) -> None:
        text = " ".join(statement.split())
        if text.upper().startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
            return
        log.transactions[-1].append(text)

    def on_commit(conn: object) -> None:
        log.transactions.append([])

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)
        log.transactions = [tx for tx in log.transactions if tx]


def _transfer(core: App, key: str, kind: str, account: str, to: str | None = None) -> Log:
    with recorded(core) as log:
        out = core.transfers.transfer(TransferCommand(idempotency_key=key, kind=kind, fund_account_no=account,
                                                      amount_yuan="10.00", to_fund_account_no=to, actor=TOOL))
    assert out.status == "done", out
    return log



def _shape(tx: list[str]) -> list[str]:
    """Each statement as verb and table: ``SELECT transfers``, ``UPDATE ledger_accounts`` ..."""
    out = []
    for st in tx:
        words = st.split()
        verb = words[0]
        table = (words[words.index("FROM") + 1] if verb == "SELECT" else words[2] if verb == "INSERT"
                 else words[1] if verb == "UPDATE" else "?")
        out.append(f"{verb} {table}")
    return out


STEP1 = ["SELECT transfers",  # the idempotency key, once
         "SELECT fund_accounts",  # the fund account with its client (locked), group, bank account and books, once
         "SELECT fund_accounts",  # the client's accounts with their cash and their cash books
         "SELECT transfers"]  # today's total
POST = ["INSERT journal_entries", "INSERT postings", "UPDATE ledger_accounts"]  # books known: none looked up
SETTLE = ["UPDATE transfers"]  # WHERE status = 'pending' RETURNING id
EXPECTED = {
    "bank_to_fund": [STEP1 + ["INSERT transfers"], SETTLE + POST],
    "fund_to_bank": [STEP1 + ["INSERT transfers"] + POST, SETTLE + POST],
    "fund_to_fund": [STEP1[:3] + ["SELECT fund_accounts"] + STEP1[3:] + ["INSERT transfers"] + POST],
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_one_transfer_runs_the_statements_it_needs(core: App, kind: str) -> None:
    _, (main, aux) = make_client(core, accounts=[(1_000_00, 5_000_00), (0, 0)])
    _transfer(core, "warm", "bank_to_fund", main)
    before = assert_sound(core)
    log = _transfer(core, "k", kind, main, aux if kind == "fund_to_fund" else None)
    assert [_shape(tx) for tx in log.transactions] == EXPECTED[kind]
    for tx in log.transactions:  # no read-only transaction: each one writes
        assert any(st.startswith(("INSERT", "UPDATE")) for st in tx), tx
    fund_lookup = next(st for st in log.statements if st.startswith("SELECT") and "fund_accounts.account_no =" in st)
    assert "JOIN clients" in fund_lookup and "JOIN bank_accounts" in fund_lookup
    if core.sessions.kw["bind"].dialect.name == "postgresql":
        assert fund_lookup.endswith("FOR UPDATE OF clients")
    if kind != "fund_to_fund":
        settle = log.transactions[1][0]
        assert "WHERE transfers.id = " in settle and "transfers.status = " in settle and "RETURNING" in settle
    assert assert_sound(core) == before  # money conserved


def test_a_replayed_key_is_one_lookup(core: App) -> None:
    _, (main,) = make_client(core, accounts=[(1_000_00, 5_000_00)])
    _transfer(core, "once", "bank_to_fund", main)
    log = _transfer(core, "once", "bank_to_fund", main)
    assert [_shape(tx) for tx in log.transactions] == [["SELECT transfers"]]
