"""The bank service without a socket: its books and protocol in this process, reached by the engine's HTTP
client adapter through an ``httpx.MockTransport``. A fake, not a mock: the same routes, the same JSON, the same
books as the separate process; only the carrier differs. Faults are acted out as the network would show them:
``hang`` becomes a read timeout, ``die`` a dropped connection and a bank that stays down until ``restart()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from callcenter.adapters.bank_http import HttpBank
from callcenter.bank.books import BankBooks
from callcenter.bank.faults import BankFaults
from callcenter.bank.protocol import BankProtocol

BASE_URL = "http://bank.in-process"


class InProcessBank:
    def __init__(self, books: BankBooks, faults: BankFaults | None = None,
                 on_applied: Callable[[str], None] | None = None) -> None:
        self.books = books
        self.protocol = BankProtocol(books, faults, on_applied)
        self.down = False

    @property
    def faults(self) -> BankFaults:
        return self.protocol.faults

    @faults.setter
    def faults(self, value: BankFaults) -> None:
        self.protocol.faults = value

    def restart(self) -> None:
        self.down = False

    def _handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("simulated bank is down", request=request)
        reply = self.protocol.handle(request.method, request.url.path, request.read())
        if reply.fault == "hang":
            raise httpx.ReadTimeout("simulated bank timeout", request=request)
        if reply.fault == "die":
            self.down = True
            raise httpx.RemoteProtocolError("simulated bank died", request=request)
        return httpx.Response(reply.status, content=json.dumps(reply.body).encode(),
                              headers={"content-type": "application/json"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def client(self, timeout: float = 5.0) -> HttpBank:
        """The engine's bank adapter, wired to this bank."""
        return HttpBank(BASE_URL, timeout=timeout, transport=self.transport())

    def close(self) -> None:
        self.books.close()
