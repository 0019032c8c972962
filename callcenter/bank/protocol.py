"""The bank's HTTP/JSON protocol as one pure function of (method, path, body) -> Reply.

The Starlette server (``server.py``) and the in-process transport (``inprocess.py``) both carry it, so the
tests that never open a socket speak exactly the protocol the separate process speaks. A Reply may carry a
fault for its carrier to act out: ``hang`` (answer nothing until the client gives up) or ``die``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from callcenter.bank.books import DIRECTIONS, BankBooks, ReferenceConflict
from callcenter.bank.faults import BankFaults

log = logging.getLogger(__name__)

REFERENCE = re.compile(r"^[A-Za-z0-9_.:-]{1,32}$")
ACCOUNT = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass
class Reply:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    fault: str = ""  # "" | "hang" | "die"


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": code, "message": message})


class BankProtocol:
    def __init__(self, books: BankBooks, faults: BankFaults | None = None,
                 on_applied: Callable[[str], None] | None = None) -> None:
        self.books = books
        self.faults = faults or BankFaults()
        self._on_applied = on_applied  # test hook: called after the bank committed (e.g. to kill the process)

    def handle(self, method: str, path: str, body: bytes = b"") -> Reply:
        parts = [p for p in path.split("/") if p]
        try:
            if parts == ["healthz"] and method == "GET":
                return Reply(200, {"status": "ok"})
            if parts[:1] != ["v1"]:
                return _error(404, "not_found", "no such endpoint")
            rest = parts[1:]
            if method == "POST" and len(rest) == 2 and rest[0] == "transfers" and rest[1] in DIRECTIONS:
                return self._transfer(rest[1], body)
            if method == "GET" and len(rest) == 2 and rest[0] == "transfers":
                return self._reference(rest[1], lambda ref: Reply(200, self.books.query(ref).to_json()))
            if method == "POST" and len(rest) == 3 and rest[0] == "transfers" and rest[2] == "cancel":
                return self._reference(rest[1], lambda ref: Reply(200, self.books.cancel(ref).to_json()))
            if method == "GET" and len(rest) == 2 and rest[0] == "statements":
                return self._statement(rest[1])
            if method == "GET" and len(rest) == 2 and rest[0] == "accounts":
                if not ACCOUNT.match(rest[1]):
                    return _error(400, "invalid_request", "bad account number")
                balance = self.books.balance(rest[1])
                if balance is None:
                    return _error(404, "unknown_account", "no such account")
                return Reply(200, {"account_no": rest[1], "balance_fen": balance})
            if rest == ["sim", "accounts"] and method == "GET":
                return Reply(200, {"accounts": [{"account_no": a, "balance_fen": b} for a, b in self.books.accounts()],
                                   "total_fen": self.books.total_fen()})
            if rest == ["sim", "accounts"] and method == "POST":
                return self._open_accounts(body)
            return _error(404, "not_found", "no such endpoint")
        except _BadRequest as exc:
            return _error(400, "invalid_request", str(exc))

    # ------------------------------------------------------------------ routes
    def _transfer(self, direction: str, body: bytes) -> Reply:
        data = _json_object(body)
        reference, account_no, amount = data.get("reference"), data.get("account_no"), data.get("amount_fen")
        if not isinstance(reference, str) or not REFERENCE.match(reference):
            raise _BadRequest("reference: 1-32 letters, digits or _.:-")
        if not isinstance(account_no, str) or not ACCOUNT.match(account_no):
            raise _BadRequest("account_no: 1-32 letters or digits")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 10**15:
            raise _BadRequest("amount_fen: a positive whole number of fen")
        fault = self.faults.draw(reference)
        if fault == "timeout_before":
            return Reply(504, {"error": "timeout"}, fault="hang")
        if fault == "down_before":
            return Reply(503, {"error": "down"}, fault="die")
        try:
            answer = self.books.transfer(direction, reference, account_no, amount,
                                         refuse="refused" if fault == "refuse" else "")
        except ReferenceConflict:
            return _error(409, "reference_conflict", "this reference was used for another transfer")
        if answer.status == "applied" and not answer.replayed and self._on_applied is not None:
            self._on_applied(reference)
        if fault == "timeout_after":
            return Reply(504, {"error": "timeout"}, fault="hang")
        if fault == "down_after":
            return Reply(503, {"error": "down"}, fault="die")
        return Reply(200, answer.to_json())

    def _reference(self, reference: str, then: Callable[[str], Reply]) -> Reply:
        if not REFERENCE.match(reference):
            raise _BadRequest("bad reference")
        return then(reference)

    def _statement(self, day_text: str) -> Reply:
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            raise _BadRequest("day: YYYY-MM-DD") from None
        entries = self.books.statement(day)
        return Reply(200, {
            "business_day": day.isoformat(),
            "entries": [{"reference": a.reference, "account_no": a.account_no, "amount_fen": a.signed_fen, "at": a.at}
                        for a in entries],
            "total_fen": sum(a.signed_fen for a in entries),
        })

    def _open_accounts(self, body: bytes) -> Reply:
        data = _json_object(body)
        items = data.get("accounts")
        if not isinstance(items, list) or len(items) > 100_000:
            raise _BadRequest("accounts: a list")
        accounts: list[tuple[str, int]] = []
        for item in items:
            no = item.get("account_no") if isinstance(item, dict) else None
            bal = item.get("balance_fen") if isinstance(item, dict) else None
            if not isinstance(no, str) or not ACCOUNT.match(no) or not isinstance(bal, int) or isinstance(bal, bool) \
                    or not 0 <= bal < 10**15:
                raise _BadRequest("each account: {account_no, balance_fen >= 0}")
            accounts.append((no, bal))
        opened, existing = self.books.open_accounts(accounts)
        return Reply(200, {"opened": opened, "existing": existing})


class _BadRequest(Exception):
    pass


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest("body: a JSON object") from None
    if not isinstance(data, dict):
        raise _BadRequest("body: a JSON object")
    return data
