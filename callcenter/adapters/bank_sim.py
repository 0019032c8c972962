"""A simulated depository bank with its own books, implementing the DepositoryBank port.

It keeps its ledger in tables of its own (bank_sim_*) and runs every call in its own transaction, as a real
bank would on its side. Faults can be injected to test what happens when the bank times out before or after
applying a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callcenter.services.ports import BankAnswer, BankUnavailable
from callcenter.store.db import run_in_transaction
from callcenter.store.models import BankSimAccount, BankSimTxn


@dataclass
class BankFaults:
    """Deterministic fault injection: a function of the reference deciding what goes wrong."""

    timeout_before: Callable[[str], bool] = lambda ref: False  # request lost before it reached the bank
    timeout_after: Callable[[str], bool] = lambda ref: False  # applied, but the answer was lost


class SimulatedBank:
    def __init__(self, sessions: sessionmaker[Session], faults: BankFaults | None = None,
                 on_applied: Callable[[str], None] | None = None) -> None:
        self._sessions = sessions
        self.faults = faults or BankFaults()
        self._on_applied = on_applied  # test hook: called after the bank committed (e.g. to kill the process)

    def open_account(self, session: Session, account_no: str, balance_fen: int) -> None:
        session.add(BankSimAccount(account_no=account_no, balance_fen=balance_fen))

    def debit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        return self._apply(reference, account_no, -amount_fen)

    def credit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        return self._apply(reference, account_no, amount_fen)

    def _apply(self, reference: str, account_no: str, signed: int) -> BankAnswer:
        if self.faults.timeout_before(reference):
            raise BankUnavailable(f"bank timeout for {reference}")

        def work(session: Session) -> BankAnswer:
            # Lock the account first, so two deliveries of one reference queue up and the second sees the first.
            acct = session.execute(
                select(BankSimAccount).where(BankSimAccount.account_no == account_no).with_for_update()
            ).scalar_one_or_none()
            existing = session.get(BankSimTxn, reference)
            if existing is not None:
                return BankAnswer("applied" if existing.status == "applied" else "cancelled")
            refusal = "unknown_account" if acct is None else "insufficient_funds" if acct.balance_fen + signed < 0 else ""
            if refusal:
                # A refused reference is spent: asked again later (a retry racing a twin), it must not apply
                # even if the balance has grown meanwhile.
                session.add(BankSimTxn(reference=reference, account_no=account_no[:32], amount_fen=signed,
                                       status="cancelled", at=datetime.now(timezone.utc)))
                return BankAnswer("rejected", refusal)
            assert acct is not None
            acct.balance_fen += signed
            session.add(BankSimTxn(reference=reference, account_no=account_no, amount_fen=signed,
                                   status="applied", at=datetime.now(timezone.utc)))
            return BankAnswer("applied")

        try:
            answer = run_in_transaction(self._sessions, work)
        except IntegrityError:  # a concurrent cancel of the same reference won: answer as it stands now
            answer = run_in_transaction(self._sessions, work)
        if answer.status == "applied" and self._on_applied is not None:
            self._on_applied(reference)
        if answer.status == "applied" and self.faults.timeout_after(reference):
            raise BankUnavailable(f"bank answer lost for {reference}")
        return answer

    def status(self, reference: str) -> Literal["applied", "cancelled", "unknown"]:
        def work(session: Session) -> Literal["applied", "cancelled", "unknown"]:
            txn = session.get(BankSimTxn, reference)
            if txn is None:
                return "unknown"
            return "applied" if txn.status == "applied" else "cancelled"

        return run_in_transaction(self._sessions, work)

    def cancel(self, reference: str) -> Literal["applied", "cancelled"]:
        try:
            return self._cancel(reference)
        except IntegrityError:  # a concurrent delivery inserted it first
            return self._cancel(reference)

    def _cancel(self, reference: str) -> Literal["applied", "cancelled"]:
        def work(session: Session) -> Literal["applied", "cancelled"]:
            txn = session.get(BankSimTxn, reference)
            if txn is not None:
                return "applied" if txn.status == "applied" else "cancelled"
            session.add(BankSimTxn(reference=reference, account_no="", amount_fen=0, status="cancelled",
                                   at=datetime.now(timezone.utc)))
            return "cancelled"

        return run_in_transaction(self._sessions, work)

    def balance(self, account_no: str) -> int:
        def work(session: Session) -> int:
            acct = session.get(BankSimAccount, account_no)
            return 0 if acct is None else acct.balance_fen

        return run_in_transaction(self._sessions, work)

    def statement(self) -> dict[str, tuple[str, int]]:
        """Every applied transaction: reference -> (account, signed amount). For reconciliation."""
        def work(session: Session) -> dict[str, tuple[str, int]]:
            rows = session.execute(select(BankSimTxn).where(BankSimTxn.status == "applied")).scalars()
            return {r.reference: (r.account_no, r.amount_fen) for r in rows}

        return run_in_transaction(self._sessions, work)
