"""Run one transfer in a child process and kill the process (os._exit) at a named point.

Usage: python -m tests.db.crash_worker DB_URL BANK_DB_URL POINT NOW_ISO KEY KIND ACCOUNT AMOUNT [TO_ACCOUNT]
(the bank is the in-process variant of the bank service on its own database BANK_DB_URL, shared with the test)
POINT: before_commit | after_commit | during_bank | after_bank | none
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from callcenter.bank.books import BankBooks
from callcenter.bank.inprocess import InProcessBank
from callcenter.bootstrap import bootstrap
from callcenter.domain.access import Actor
from callcenter.services.transfers import TransferCommand
from callcenter.settings import load_settings
from callcenter.store.db import make_engine

KILLED = 137


def main(argv: list[str]) -> None:
    url, bank_url, point, now_iso, key, kind, account, amount = argv[:8]
    to = argv[8] if len(argv) > 8 else None
    now = datetime.fromisoformat(now_iso)

    def checkpoint(name: str) -> None:
        if name == point:
            os._exit(KILLED)

    engine = make_engine(url)
    bank = InProcessBank(BankBooks.open(bank_url, clock=lambda: now),
                         on_applied=lambda ref: checkpoint("during_bank")).client()
    core = bootstrap(load_settings(database_url=url), database=engine, bank=bank, clock=lambda: now, checkpoint=checkpoint)
    out = core.transfers.transfer(TransferCommand(idempotency_key=key, kind=kind, fund_account_no=account,
                                                  amount_yuan=amount, to_fund_account_no=to,
                                                  actor=Actor.back_office("test")))
    print(out.status, out.reference)


if __name__ == "__main__":
    main(sys.argv[1:])
