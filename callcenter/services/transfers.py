"""Bank-securities and main/auxiliary transfers: one use case, applied exactly once per idempotency key.

The life of a transfer::

    step 1 (one transaction)  check rules under the client's lock; store the request with its key;
                              fund->bank: move the money into transit; fund->fund: post and finish
    step 2 (the bank)         debit or credit at the depository bank, idempotent on our reference
    step 3 (one transaction)  post the bank's answer: complete, or void step 1; store the answer

A process that dies anywhere leaves at most a ``pending`` transfer. Retrying the same key resumes it
(the bank call is idempotent), and ``reconcile`` settles what nobody retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from callcenter.ports.progress import Progress, no_progress
from callcenter.domain.access import Actor, may_move_money
from callcenter.domain.custody import (
    AccountView,
    CustodyError,
    Limits,
    TRANSFER_KINDS,
    Rule,
    TransferRequest,
    completion_moves,
    decide,
    void_moves,
)
from callcenter.domain.money import MoneyError, fen_to_yuan, yuan_to_fen
from callcenter.i18n import t
from callcenter.ports.bank import BankAnswer, BankUnavailable, DepositoryBank
from callcenter.ports.calendar import Calendar
from callcenter.store.db import dialect_name, run_in_transaction
from callcenter.store.ledger import Books, post
from callcenter.store.models import BankAccount, Client, FundAccount, LedgerAccount, Transfer

log = logging.getLogger(__name__)

Checkpoint = Callable[[str], None]


def _no_checkpoint(name: str) -> None:
    return None


# The transfer path's statements, built once (their construction and cache keys are not paid per transfer); each
# runs with its values bound. The fund account's lookup brings its client's group, its bank account's number and
# the ids of the books the transfer may post to (its transit book, its bank account's mirror), so a post of this
# transfer looks no book up.
_T = cast(Table, Transfer.__table__)
_TRANSIT = aliased(LedgerAccount, name="transit_book")
_BANK_BOOK = aliased(LedgerAccount, name="bank_book")
_BY_KEY = select(Transfer).where(Transfer.idempotency_scope == bindparam("scope"),
                                 Transfer.idempotency_key == bindparam("key"))
_FUND = (select(FundAccount.id, FundAccount.client_id, FundAccount.bank_account_id, Client.service_group_id,
                BankAccount.account_no, _TRANSIT.id, _BANK_BOOK.id)
         .join(Client, Client.id == FundAccount.client_id)
         .outerjoin(BankAccount, BankAccount.id == FundAccount.bank_account_id)
         .outerjoin(_TRANSIT, and_(_TRANSIT.kind == "transit", _TRANSIT.owner_id == FundAccount.id))
         .outerjoin(_BANK_BOOK, and_(_BANK_BOOK.kind == "bank", _BANK_BOOK.owner_id == FundAccount.bank_account_id))
         .where(FundAccount.account_no == bindparam("no")))
_FUND_LOCKED = _FUND.with_for_update(of=Client)  # PostgreSQL: the client's row locked in the same lookup
_VIEWS = (select(FundAccount.id, FundAccount.client_id, FundAccount.is_main, FundAccount.status,
                 FundAccount.bank_account_id, LedgerAccount.balance_fen, LedgerAccount.id)
          .outerjoin(LedgerAccount, and_(LedgerAccount.kind == "fund", LedgerAccount.owner_id == FundAccount.id))
          .where(FundAccount.client_id == bindparam("client")))
_TARGET = (select(FundAccount.id, FundAccount.client_id, FundAccount.is_main, FundAccount.status,
                  FundAccount.bank_account_id, Client.service_group_id)
           .join(Client, Client.id == FundAccount.client_id)
           .where(FundAccount.account_no == bindparam("no")))
_TODAY = select(func.coalesce(func.sum(Transfer.amount_fen), 0)).where(
    Transfer.client_id == bindparam("client"), Transfer.trade_date == bindparam("day"),
    Transfer.kind != "fund_to_fund", Transfer.status.in_(("pending", "done")))
_INSERT = insert(_T).returning(_T.c.id)
_SETTLE = (update(_T).where(_T.c.id == bindparam("tid"), _T.c.status == "pending")
           .values(status=bindparam("new_status"), error_code=bindparam("new_code"),
                   finished_at=bindparam("at"), response_json=bindparam("answer"))
           .returning(_T.c.id))
_BANK_NO = select(BankAccount.account_no).where(BankAccount.id == bindparam("id"))


@dataclass(frozen=True)
class _Fund:
    """The fund account a transfer names, as step 1 reads it."""

    id: int
    client_id: int
    bank_account_id: int | None
    service_group_id: int | None
    bank_account_no: str | None
    transit_book: int | None
    bank_book: int | None


# Told of every answered transfer request: (kind as requested, outcome, seconds it took). Outcome is the status
# (done / pending / rejected / failed), "replayed" for a repeated key, "conflict" (same key, other request) or
# "error" (an exception). Metrics (callcenter.services.metrics) listen here; an observer must not raise.
TransferObserver = Callable[[str, str, float], None]


class IdempotencyConflict(Exception):
    """The same idempotency key was sent with a different request."""


@dataclass(frozen=True)
class TransferCommand:
    idempotency_key: str
    kind: str
    fund_account_no: str
    amount_yuan: str  # as typed: '12345.6'; parsed to fen here
    to_fund_account_no: str | None = None
    bank_account_id: int | None = None
    channel: str = "api"
    caller_phone: str = ""
    # Who asks (required): the access rule of callcenter.domain.access decides whether they may move this
    # client's money, and the idempotency key is theirs alone (actor.scope).
    actor: Actor = field(kw_only=True)

    def fingerprint(self) -> str:
        body = {k: v for k, v in asdict(self).items() if k not in ("idempotency_key", "caller_phone", "actor")}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class TransferOutcome:
    status: str  # done / pending / rejected / failed / voided
    reference: str = ""
    kind: str = ""
    amount: str = ""
    error_code: str = ""
    message: str = ""
    replayed: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("replayed")
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TransferOutcome":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Pending:
    """What the bank call and its settlement need of a pending transfer (read once, in step 1)."""

    transfer_id: int
    kind: str
    reference: str
    client_id: int
    fund_account_id: int
    bank_account_id: int
    bank_account_no: str
    amount_fen: int
    books: tuple[tuple[tuple[str, int], int], ...] = ()  # ids of the books known from step 1 ((kind, owner), id)


@dataclass
class ReconcileReport:
    day: date | None = None  # the business day whose bank statement was compared
    completed: list[str] = field(default_factory=list)
    voided: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # differences the rules do not allow us to repair
    in_flight: list[str] = field(default_factory=list)  # pending and younger than the grace period: left alone

    @property
    def differences(self) -> int:
        return len(self.completed) + len(self.voided) + len(self.unresolved)


class TransferService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        bank: DepositoryBank,
        calendar: Calendar,
        limits: Limits,
        tz: ZoneInfo,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        checkpoint: Checkpoint = _no_checkpoint,
        lang: str = "zh-CN",
        reconcile_grace: timedelta = timedelta(0),
        observer: TransferObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self._bank = bank
        self._calendar = calendar
        self._limits = limits
        self._tz = tz
        self._clock = clock
        self._checkpoint = checkpoint
        self._lang = lang
        self._reconcile_grace = reconcile_grace
        self._pg = dialect_name(sessions) == "postgresql"
        self._observer = observer

    # ------------------------------------------------------------------ public
    def transfer(self, cmd: TransferCommand) -> TransferOutcome:
        """Apply ``cmd`` once. The same key again returns the first answer; a different body is refused."""
        if self._observer is None:
            return self._transfer(cmd)
        started, outcome = time.perf_counter(), "error"
        try:
            answer = self._transfer(cmd)
            outcome = "replayed" if answer.replayed else answer.status
            return answer
        except IdempotencyConflict:
            outcome = "conflict"
            raise
        finally:
            try:
                self._observer(cmd.kind, outcome, time.perf_counter() - started)
            except Exception:  # noqa: BLE001 - counting must never change a transfer's answer
                log.exception("transfer observer failed")

    def _transfer(self, cmd: TransferCommand) -> TransferOutcome:
        if not cmd.idempotency_key or len(cmd.idempotency_key) > 128:
            return self._refusal(Rule.AMOUNT_INVALID, "idempotency_key_invalid")
        fingerprint = cmd.fingerprint()
        for _ in range(5):
            try:
                outcome, pending = run_in_transaction(self._sessions, lambda s: self._step1(s, cmd, fingerprint))
                break
            except IntegrityError:
                continue  # a concurrent twin inserted the same key (or a reference collided): look again
        else:  # pragma: no cover - five collisions in a row
            raise RuntimeError("could not record transfer")
        self._checkpoint("after_commit")
        if outcome is not None:
            return outcome
        assert pending is not None
        return self._resume(pending)

    def reconcile(self, *, day: date | None = None, grace: timedelta | None = None,
                  progress: Progress = no_progress) -> ReconcileReport:
        """Compare our journal with the bank's statement of ``day`` (default: today); settle every pending
        transfer the rules allow. Pending transfers younger than ``grace`` (default: the service's) are in
        flight: a live request is still working on them, so they are neither settled nor counted as
        differences."""
        now = self._clock()
        cutoff = now - (self._reconcile_grace if grace is None else grace)
        day = day or now.astimezone(self._tz).date()
        report = ReconcileReport(day=day)
        pending = run_in_transaction(self._sessions, lambda s: s.execute(
            select(Transfer.id, Transfer.reference, Transfer.created_at).where(Transfer.status == "pending")
            .order_by(Transfer.id)).all())
        for n, (transfer_id, ref, created_at) in enumerate(pending, start=1):
            progress(n, len(pending) + 1)  # the statement is the last step
            if created_at > cutoff:
                report.in_flight.append(ref)
                continue
            try:
                state = self._reconcile_one(transfer_id)
            except BankUnavailable as exc:
                report.unresolved.append(f"{ref}: still pending, the bank did not answer ({exc})")
                continue
            if state == "done":
                report.completed.append(ref)
            elif state in ("voided", "failed"):
                report.voided.append(ref)
        try:  # the statement first, then our journal: whatever the bank has applied is by then done or pending
            statement = self._bank.statement(day)
        except BankUnavailable as exc:
            report.unresolved.append(f"statement of {day}: the bank did not answer ({exc})")
            return report
        ours = run_in_transaction(self._sessions, lambda s: self._our_bank_side(s, day))
        for ref, (account_no, amount) in sorted(statement.items()):
            mine = ours.get(ref)
            if mine is None:
                other = run_in_transaction(self._sessions, lambda s: self._bank_side_of(s, ref))
                if other is not None and other[0] == "done" and other[1:3] == (account_no, amount):
                    continue  # done on our side with another trade date (resumed across midnight)
                if other is not None and other[0] == "pending" and other[3] > cutoff:
                    report.in_flight.append(ref)  # the bank answered; the request is posting it right now
                    continue
                report.unresolved.append(f"{ref}: applied at the bank ({amount} fen) but "
                                         + ("unknown to our journal" if other is None else f"{other[0]} in our journal"))
            elif mine != (account_no, amount):
                report.unresolved.append(f"{ref}: bank has {amount} fen, our journal {mine[1]} fen")
        for ref in sorted(set(ours) - set(statement)):
            try:  # applied after the statement was drawn, or on another business day
                record = self._bank.query(ref)
            except BankUnavailable:
                record = None
            if record is not None and record.status == "applied" and (record.account_no, record.amount_fen) == ours[ref]:
                continue
            report.unresolved.append(f"{ref}: done in our journal but not applied at the bank")
        report.in_flight = sorted(set(report.in_flight))
        progress(len(pending) + 1, len(pending) + 1)
        return report

    # ------------------------------------------------------------------ steps
    def _step1(self, s: Session, cmd: TransferCommand,
               fingerprint: str) -> tuple[TransferOutcome | None, Pending | None]:
        """Check the rules and record the request (its first moves posted): the answer when it is final, else
        what the bank call needs. One lookup of the key, one of the fund account (with its client's lock, service
        group, bank account and books), one of the client's accounts with their cash, one of today's total. A twin
        that committed the same key meanwhile makes the INSERT fail on the key's unique index: the caller runs
        this again and finds it."""
        existing = self._by_key(s, cmd)
        if existing is not None:
            return self._existing(s, existing, fingerprint)
        # Refusals before we know the client (no such account, an unknown kind, an account the actor may not
        # touch) are not recorded: the key is bound to a request from the moment the request names a real fund
        # account of a client the actor may move money for. An account the actor may not touch is answered
        # exactly like one that does not exist, so account numbers cannot be probed.
        if cmd.kind not in TRANSFER_KINDS:
            return self._refusal(Rule.BAD_KIND), None
        fund = self._fund_locked(s, cmd.fund_account_no)
        if fund is None or not may_move_money(cmd.actor, fund.client_id, fund.service_group_id):
            return self._refusal(Rule.UNKNOWN_ACCOUNT), None
        try:
            amount = yuan_to_fen(cmd.amount_yuan)
            amount_error: Rule | None = None
        except MoneyError as exc:
            amount, amount_error = 0, Rule(exc.code)

        accounts, books = self._account_views(s, fund.client_id)
        if fund.transit_book is not None:
            books[("transit", fund.id)] = fund.transit_book
        if fund.bank_book is not None and fund.bank_account_id is not None:
            books[("bank", fund.bank_account_id)] = fund.bank_book
        to_id = None
        if cmd.to_fund_account_no is not None:
            target = s.execute(_TARGET, {"no": cmd.to_fund_account_no}).one_or_none()
            if target is None or (target[1] != fund.client_id and not may_move_money(cmd.actor, target[1], target[5])):
                return self._refusal(Rule.UNKNOWN_ACCOUNT), None
            to_id = target[0]
            if to_id not in accounts:  # another client's account: the rules refuse it
                accounts[to_id] = AccountView(to_id, target[1], target[2], target[3], target[4], 0)
        now = self._clock()
        local = now.astimezone(self._tz)
        trade_date = local.date()
        today = s.execute(_TODAY, {"client": fund.client_id, "day": trade_date}).scalar_one()
        request = TransferRequest(cmd.kind, amount, fund.id, to_id, cmd.bank_account_id)
        reference = self._new_reference(local)
        row = dict(
            idempotency_scope=cmd.actor.scope, idempotency_key=cmd.idempotency_key, request_hash=fingerprint,
            reference=reference, client_id=fund.client_id, kind=cmd.kind, from_fund_account_id=fund.id,
            to_fund_account_id=to_id, bank_account_id=fund.bank_account_id if cmd.kind != "fund_to_fund" else None,
            amount_fen=amount, status="pending", channel=cmd.channel[:16], caller_phone=cmd.caller_phone[:20],
            staff_id=cmd.actor.staff_id, trade_date=trade_date, created_at=now, error_code="", finished_at=None,
            response_json="",
        )  # every column of the row: the answer is built from these values, the row inserted by Core
        try:
            if amount_error is not None:
                raise CustodyError(amount_error)
            decision = decide(request, accounts, local_now=local, is_trading_day=self._calendar.is_trading_day(trade_date),
                              limits=self._limits, transferred_today_fen=int(today))
        except CustodyError as exc:
            refusal = self._refusal(exc.rule)
            refusal.reference = reference
            refusal.kind, refusal.amount = cmd.kind, str(fen_to_yuan(amount))
            row.update(status="rejected", error_code=exc.rule.value, finished_at=now, response_json=refusal.to_json())
            s.execute(_INSERT, row)
            return refusal, None
        outcome = None
        if not decision.needs_bank:
            outcome = self._worded("done", reference, cmd.kind, amount)
            row.update(status="done", finished_at=now, response_json=outcome.to_json())
        transfer_id = s.execute(_INSERT, row).scalar_one()
        if decision.moves:
            post(s, now, f"transfer {reference} step 1", decision.moves, transfer_id, books=books)
        self._checkpoint("before_commit")
        if outcome is not None:
            return outcome, None
        bank_account_id = row["bank_account_id"]
        assert isinstance(bank_account_id, int) and fund.bank_account_no is not None
        return None, Pending(transfer_id, cmd.kind, reference, fund.client_id, fund.id, bank_account_id,
                             fund.bank_account_no, amount, books=tuple(books.items()))

    def _existing(self, s: Session, existing: Transfer,
                  fingerprint: str) -> tuple[TransferOutcome | None, Pending | None]:
        if existing.request_hash != fingerprint:
            raise IdempotencyConflict(existing.idempotency_key)
        if existing.status == "pending":
            return None, self._pending_of(s, existing)  # resume it
        outcome = TransferOutcome.from_json(existing.response_json)
        outcome.replayed = True
        return outcome, None

    @staticmethod
    def _pending_of(s: Session, tr: Transfer) -> Pending:
        assert tr.bank_account_id is not None and tr.from_fund_account_id is not None
        account_no = s.execute(_BANK_NO, {"id": tr.bank_account_id}).scalar_one()
        return Pending(tr.id, tr.kind, tr.reference, tr.client_id, tr.from_fund_account_id, tr.bank_account_id,
                       account_no, tr.amount_fen)

    def _resume(self, p: Pending) -> TransferOutcome:
        """Call the bank for a pending transfer (idempotent on its reference) and post the answer."""
        try:
            if p.kind == "fund_to_bank":
                answer = self._bank.credit(p.reference, p.bank_account_no, p.amount_fen)
            else:
                answer = self._bank.debit(p.reference, p.bank_account_no, p.amount_fen)
        except BankUnavailable:
            log.warning("bank did not answer for transfer %s; left pending for reconcile", p.reference)
            outcome = self._answer(p, "pending")
            outcome.message = t("custody.pending", self._lang)
            return outcome
        self._checkpoint("after_bank")
        return run_in_transaction(self._sessions, lambda s: self._settle(s, p, answer))

    def _settle(self, s: Session, p: Pending, answer: BankAnswer) -> TransferOutcome:
        """Post the bank's answer: one conditional ``UPDATE ... WHERE status = 'pending' RETURNING`` settles the
        transfer (a twin or reconcile that settled it first makes it match nothing), then the moves."""
        now = self._clock()
        if answer.status == "applied":
            status, error_code = "done", ""
            moves = completion_moves(p.kind, p.fund_account_id, p.bank_account_id, p.amount_fen)
        else:
            status, error_code = "failed", f"bank_{answer.code or answer.status}"
            moves = void_moves(p.kind, p.fund_account_id, p.amount_fen)
        outcome = self._answer(p, status, error_code)
        won = s.execute(_SETTLE, {"tid": p.transfer_id, "new_status": status, "new_code": error_code, "at": now,
                                  "answer": outcome.to_json()}).first()
        if won is None:  # a twin or reconcile settled it first
            return self._final(s, p.transfer_id)
        if moves:
            post(s, now, f"transfer {p.reference} {'bank applied' if status == 'done' else 'voided'}", moves,
                 p.transfer_id, books=dict(p.books))
        return outcome

    def _final(self, s: Session, transfer_id: int) -> TransferOutcome:
        tr = s.get(Transfer, transfer_id)
        assert tr is not None
        if tr.response_json:
            return TransferOutcome.from_json(tr.response_json)
        return self._outcome(tr)

    def _reconcile_one(self, transfer_id: int) -> str:
        p = run_in_transaction(self._sessions, lambda s: self._pending_of(s, s.get_one(Transfer, transfer_id)))
        state = self._bank.status(p.reference)
        if state == "unknown":
            state = self._bank.cancel(p.reference)  # from now on the bank refuses this reference
        answer = BankAnswer("applied") if state == "applied" else BankAnswer("cancelled", "not_applied")
        outcome = run_in_transaction(self._sessions, lambda s: self._settle(s, p, answer))
        return outcome.status if outcome.status == "done" else "voided"

    def _our_bank_side(self, s: Session, day: date) -> dict[str, tuple[str, int]]:
        rows = s.execute(
            select(Transfer.reference, Transfer.kind, Transfer.amount_fen, BankAccount.account_no)
            .join(BankAccount, BankAccount.id == Transfer.bank_account_id)
            .where(Transfer.status == "done", Transfer.kind != "fund_to_fund", Transfer.trade_date == day)
        ).all()
        return {ref: (acct, amount if kind == "fund_to_bank" else -amount) for ref, kind, amount, acct in rows}

    def _bank_side_of(self, s: Session, reference: str) -> tuple[str, str, int, datetime] | None:
        """(status, bank account, signed amount, created) of our transfer with ``reference``, any day."""
        row = s.execute(
            select(Transfer.status, Transfer.kind, Transfer.amount_fen, BankAccount.account_no, Transfer.created_at)
            .join(BankAccount, BankAccount.id == Transfer.bank_account_id)
            .where(Transfer.reference == reference)
        ).first()
        if row is None:
            return None
        status, kind, amount, account_no, created = row
        return status, account_no, amount if kind == "fund_to_bank" else -amount, created

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _by_key(s: Session, cmd: TransferCommand) -> Transfer | None:
        """The transfer this actor already made with this key (another actor's same key is another request)."""
        return s.execute(_BY_KEY, {"scope": cmd.actor.scope, "key": cmd.idempotency_key}).scalar_one_or_none()

    def _fund_locked(self, s: Session, account_no: str) -> _Fund | None:
        """The fund account ``account_no`` with its client's service group, its bank account's number and the ids
        of its transit book and its bank account's book, its client locked: that lock serialises the money
        movements of one client that decide anything (step 1; settling only adds money back or moves it on).
        PostgreSQL: ``FOR UPDATE OF clients`` in this one lookup; SQLite: BEGIN IMMEDIATE has already taken the
        database write lock."""
        row = s.execute(_FUND_LOCKED if self._pg else _FUND, {"no": account_no}).one_or_none()
        return None if row is None else _Fund(*row)

    @staticmethod
    def _account_views(s: Session, client_id: int) -> tuple[dict[int, AccountView], Books]:
        """The client's fund accounts with their cash (the cached balance of each ``fund`` book) and the ids of
        those books, one query."""
        views: dict[int, AccountView] = {}
        books: Books = {}
        for id_, client, is_main, status, bank_id, cash, book_id in s.execute(_VIEWS, {"client": client_id}):
            views[id_] = AccountView(id_, client, is_main, status, bank_id, int(cash or 0))
            if book_id is not None:
                books[("fund", id_)] = book_id
        return views, books

    def _new_reference(self, local: datetime) -> str:
        return f"{local:%y%m%d}{secrets.randbelow(10**8):08d}"

    def _outcome(self, tr: Transfer | None) -> TransferOutcome:
        assert tr is not None
        message_key = {"done": "custody.done", "pending": "custody.pending"}.get(tr.status, f"custody.{tr.error_code}")
        try:
            message = t(message_key, self._lang)
        except KeyError:
            message = tr.error_code
        return TransferOutcome(status=tr.status, reference=tr.reference, kind=tr.kind,
                               amount=str(fen_to_yuan(tr.amount_fen)), error_code=tr.error_code, message=message)

    def _answer(self, p: Pending, status: str, error_code: str = "") -> TransferOutcome:
        """The outcome of a bank transfer once ``status`` (as ``_outcome`` words it, without reading the row)."""
        return self._worded(status, p.reference, p.kind, p.amount_fen, error_code)

    def _worded(self, status: str, reference: str, kind: str, amount_fen: int, error_code: str = "") -> TransferOutcome:
        """A transfer's answer as ``_outcome`` words it, from its values."""
        message_key = {"done": "custody.done", "pending": "custody.pending"}.get(status, f"custody.{error_code}")
        try:
            message = t(message_key, self._lang)
        except KeyError:
            message = error_code
        return TransferOutcome(status=status, reference=reference, kind=kind, amount=str(fen_to_yuan(amount_fen)),
                               error_code=error_code, message=message)

    def _refusal(self, rule: Rule | str, code: str | None = None) -> TransferOutcome:
        code = code or (rule.value if isinstance(rule, Rule) else rule)
        return TransferOutcome(status="rejected", error_code=code, message=t(f"custody.{code}", self._lang))
