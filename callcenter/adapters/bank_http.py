"""The depository bank gateway over HTTP/JSON: the engine's ``DepositoryBank`` adapter (httpx).

It speaks the protocol of ``callcenter/bank`` (the simulated bank, a separate process) — the shape a real
bank gateway adapter follows. Whatever leaves the outcome open — a timeout, a refused or dropped connection, a
5xx, an answer we cannot read — is ``BankUnavailable``: the transfer service leaves the transfer pending,
a retry with the same key resumes it and ``callcenter custody reconcile`` settles it by querying the
reference. Account numbers never reach the log.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any, Literal

import httpx

from callcenter.ports.bank import BankAnswer, BankRecord, BankUnavailable

log = logging.getLogger(__name__)

_STATUSES = {"applied", "rejected", "cancelled", "unknown"}


class HttpBank:
    def __init__(self, base_url: str, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url, transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)),
            headers={"user-agent": "callcenter-bank-gateway/1", "accept": "application/json"},
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ the port
    def debit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        """银行转证券: the bank takes the money from the client's bank account."""
        return self._transfer("in", reference, account_no, amount_fen)

    def credit(self, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        """证券转银行: the bank pays the money into the client's bank account."""
        return self._transfer("out", reference, account_no, amount_fen)

    def query(self, reference: str) -> BankRecord:
        data = self._call("GET", f"/v1/transfers/{reference}")
        return _record(reference, data)

    def status(self, reference: str) -> Literal["applied", "cancelled", "unknown"]:
        state = self.query(reference).status
        return "cancelled" if state == "rejected" else state

    def cancel(self, reference: str) -> Literal["applied", "cancelled"]:
        data = self._call("POST", f"/v1/transfers/{reference}/cancel")
        return "applied" if _status(data) == "applied" else "cancelled"

    def balance(self, account_no: str) -> int:
        data = self._call("GET", f"/v1/accounts/{account_no}", missing_ok=True)
        return int(data.get("balance_fen", 0))

    def statement(self, day: date) -> dict[str, tuple[str, int]]:
        data = self._call("GET", f"/v1/statements/{day.isoformat()}")
        try:
            return {str(e["reference"]): (str(e["account_no"]), int(e["amount_fen"])) for e in data["entries"]}
        except (KeyError, TypeError, ValueError):
            raise BankUnavailable("unreadable statement") from None

    # ------------------------------------------------------------------ simulator only
    def open_accounts(self, accounts: list[tuple[str, int]]) -> tuple[int, int]:
        """Open accounts at the simulated bank (absent ones only). A real bank has no such call."""
        opened = existing = 0
        for start in range(0, len(accounts), 2000):
            chunk = accounts[start:start + 2000]
            data = self._call("POST", "/v1/sim/accounts",
                              {"accounts": [{"account_no": a, "balance_fen": b} for a, b in chunk]})
            opened += int(data.get("opened", 0))
            existing += int(data.get("existing", 0))
        return opened, existing

    def accounts(self) -> dict[str, int]:
        """Every account of the simulated bank with its balance."""
        data = self._call("GET", "/v1/sim/accounts")
        return {str(a["account_no"]): int(a["balance_fen"]) for a in data.get("accounts", [])}

    # ------------------------------------------------------------------ wire
    def _transfer(self, direction: str, reference: str, account_no: str, amount_fen: int) -> BankAnswer:
        data = self._call("POST", f"/v1/transfers/{direction}",
                          {"reference": reference, "account_no": account_no, "amount_fen": amount_fen},
                          conflict_ok=True)
        if data.get("error") == "reference_conflict":
            log.error("bank says reference %s was used for another transfer", reference)
            return BankAnswer("rejected", "reference_conflict")
        state = _status(data)
        if state == "unknown":
            raise BankUnavailable(f"bank gave no outcome for {reference}")
        return BankAnswer(state, str(data.get("code", "")))  # type: ignore[arg-type]  # checked by _status

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *, missing_ok: bool = False,
              conflict_ok: bool = False) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:  # timeouts, refused or dropped connections
            raise BankUnavailable(f"bank {method} {path.split('/')[2]}: {type(exc).__name__}") from None
        ok = response.status_code == 200 or (missing_ok and response.status_code == 404) \
            or (conflict_ok and response.status_code == 409)
        if not ok:
            # 5xx: the bank's problem, outcome unknown. 4xx: a bug on one side; still unknown to us, so the
            # transfer stays pending and reconcile asks again rather than guessing.
            if response.status_code < 500:
                log.error("bank refused %s %s with %s", method, path.split("/")[2], response.status_code)
            raise BankUnavailable(f"bank answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise BankUnavailable("unreadable bank answer") from None
        if not isinstance(data, dict):
            raise BankUnavailable("unreadable bank answer")
        return data


def _status(data: dict[str, Any]) -> str:
    state = data.get("status")
    if state not in _STATUSES:
        raise BankUnavailable("bank answer without a status")
    return str(state)


def _record(reference: str, data: dict[str, Any]) -> BankRecord:
    state = _status(data)
    day = data.get("business_day") or None
    amount = int(data.get("amount_fen") or 0)
    signed = -amount if data.get("direction") == "in" else amount
    return BankRecord(reference=reference, status=state, account_no=str(data.get("account_no", "")),  # type: ignore[arg-type]  # checked by _status
                      amount_fen=signed, business_day=date.fromisoformat(day) if day else None)
