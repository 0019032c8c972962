"""What the benchmarks seed alike: a client with a bank account and a main fund account holding 100,000 yuan."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from callcenter.store.ledger import open_books, post
from callcenter.store.models import BankAccount, Client, FundAccount


def add_bench_client(s: Session, *, client_no: str, mobile: str, account_no: str, pin_hash: str,
                     now: datetime) -> str:
    """One client (``client_no``) with its bank account and main fund account ``account_no`` (PIN hash
    ``pin_hash``), the books opened and 100,000 yuan posted to the fund; returns the fund account number."""
    c = Client(client_no=client_no, name=f"压测{client_no}", id_number_masked="-", mobile=mobile, branch="bench",
               opened_on=date(2020, 1, 1))
    s.add(c)
    s.flush()
    bank = BankAccount(client_id=c.id, bank_code="ICBC", bank_name="中国工商银行", account_no=client_no)
    s.add(bank)
    s.flush()
    f = FundAccount(client_id=c.id, seq=1, account_no=account_no, is_main=True, main_of_client=c.id,
                    bank_account_id=bank.id, opened_on=date(2020, 1, 1), pin_hash=pin_hash)
    s.add(f)
    s.flush()
    open_books(s, f)
    post(s, now, "bench opening", [("fund", f.id, 10**7), ("equity", 0, -10**7)])
    return f.account_no
