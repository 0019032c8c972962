"""The IVR flow model: named, typed nodes with event-keyed transitions (standard library only).

A flow is data (``ivr_flows/*.yaml``, loaded and checked by :mod:`callcenter.services.ivr.flow`); the pure
interpreter (:mod:`callcenter.domain.ivr.interpreter`) walks it.  Node types:

``prompt``   say something, then go to ``next``
``menu``     say, collect one key, follow ``options[key]``; ``timeout`` and ``invalid`` branches required
``collect``  say, collect several digits (min/max length, terminator, ``*`` as decimal point for amounts)
             into a variable; ``done``, ``timeout`` and ``invalid`` branches required
``choose``   say each item of a list variable ("press 1 for ..."), the caller picks one by number
``action``   run a named backend call (see :data:`ACTIONS`), branch on its outcome
``branch``   no sound, no input: follow ``cases[value of var]``, else ``next`` (e.g. where the call entered)
``handoff``  say, then hand the call to an agent with a summary
``hangup``   say, then end the call with a reason
"""

from __future__ import annotations

from dataclasses import dataclass, field

DTMF_KEYS = frozenset("0123456789*#")
INPUT_TYPES = frozenset({"menu", "collect", "choose"})
NODE_TYPES = frozenset({"prompt", "menu", "collect", "choose", "action", "branch", "handoff", "hangup"})
TERMINAL_TYPES = frozenset({"handoff", "hangup"})
PROMPT_AREA = "ivr"


@dataclass(frozen=True)
class ActionSpec:
    """A backend call a flow may name: the variables it reads, the outcomes it can report."""

    args: tuple[str, ...]
    outcomes: tuple[str, ...]
    record: tuple[str, ...] = ()  # result fields safe to store in the call record
    idempotent: bool = False  # the interpreter adds idempotency_key = "<call id>:<step>"
    # slow (waits for the bounded hashing pool): carriers that can play "please wait" while it runs
    wait_prompt: bool = False
    # while any action runs, carriers that can (FastAGI) keep reading keys; the keys typed meanwhile answer the
    # next question only after these outcomes (after a failure the caller must hear what went wrong; after a
    # transfer, its result)
    keep_typeahead: tuple[str, ...] = ()


ACTIONS: dict[str, ActionSpec] = {
    "authenticate": ActionSpec(
        args=("fund_account", "pin"),
        outcomes=("ok", "wrong_pin", "locked", "unknown_account", "call_limit", "error"),
        record=("client_id", "masked_account"),
        wait_prompt=True,
        keep_typeahead=("ok",),
    ),
    "balances": ActionSpec(args=("client_id",), outcomes=("ok", "none", "error"), keep_typeahead=("ok", "none")),
    "holdings": ActionSpec(args=("client_id",), outcomes=("ok", "none", "error"), keep_typeahead=("ok", "none")),
    "transfer_accounts": ActionSpec(args=("client_id",), outcomes=("one", "several", "none", "error"),
                                    keep_typeahead=("one", "several")),
    "transfer": ActionSpec(
        args=("client_id", "account", "direction", "amount_fen"),
        outcomes=("ok", "rejected", "error"),
        record=("reference", "error_code"),
        idempotent=True,
    ),
    "bulletin": ActionSpec(args=(), outcomes=("ok", "none", "error"), keep_typeahead=("ok", "none")),
    "subscriptions": ActionSpec(args=("client_id",), outcomes=("ok", "none", "error"), keep_typeahead=("ok", "none")),
    "toggle_subscription": ActionSpec(args=("client_id", "digit"), outcomes=("enabled", "disabled", "invalid", "error"),
                                      record=("topic",)),
    # --- phone orders (电话委托) ---------------------------------------------------------------------------
    "quote": ActionSpec(args=("code",), outcomes=("ok", "unknown", "error"), record=("stock_code",)),
    "preview_order": ActionSpec(args=("client_id", "side", "code", "kind", "price_fen", "quantity"),
                                outcomes=("ok", "rejected", "error"), record=("error_code",)),
    # the trading password is checked first (its own throttle), then the order is placed once per call step
    "place_order": ActionSpec(
        args=("client_id", "side", "code", "kind", "price_fen", "quantity", "trading_password"),
        outcomes=("filled", "accepted", "rejected", "wrong_password", "locked", "error"),
        record=("order_id", "order_status", "error_code"),
        idempotent=True,
        wait_prompt=True,
    ),
    "orders_today": ActionSpec(args=("client_id",), outcomes=("ok", "none", "error")),
    "trades_today": ActionSpec(args=("client_id",), outcomes=("ok", "none", "error")),
    "open_orders": ActionSpec(args=("client_id",), outcomes=("ok", "none", "error")),
    "cancel_order": ActionSpec(args=("client_id", "order"), outcomes=("ok", "rejected", "error"),
                               record=("order_id", "error_code"), idempotent=True),
    "change_pin": ActionSpec(args=("client_id", "old_secret", "new_secret", "new_secret_again"),
                             outcomes=("ok", "wrong_old", "locked", "weak", "error"), record=("weak_code",),
                             wait_prompt=True),
    "change_trading_password": ActionSpec(args=("client_id", "old_secret", "new_secret", "new_secret_again"),
                                          outcomes=("ok", "wrong_old", "locked", "weak", "error"),
                                          record=("weak_code",), wait_prompt=True),
    "market_summary": ActionSpec(args=(), outcomes=("ok", "none", "error")),
    "set_price_alert": ActionSpec(args=("client_id", "code", "direction", "price_fen"),
                                  outcomes=("ok", "invalid", "error"), record=("error_code",)),
    # --- 预约服务 appointments ---------------------------------------------------------------------------
    "appointment_slots": ActionSpec(args=("client_id", "appt_kind"), outcomes=("ok", "none", "error")),
    "book_appointment": ActionSpec(args=("client_id", "appt_kind", "slot"), outcomes=("ok", "rejected", "error"),
                                   record=("appointment_id", "error_code"), idempotent=True),
    "appointments": ActionSpec(args=("client_id",), outcomes=("ok", "none", "error")),
}


@dataclass(frozen=True)
class SayItem:
    """One piece of a spoken prompt.

    kind: ``key`` (catalogue text), ``name`` (catalogue text whose key is a template such as
    ``bank.{account.bank_code}``; skipped when no such text exists), ``digits`` / ``number`` /
    ``amount`` (a variable read out), ``text`` (a variable holding free text, e.g. a bulletin),
    ``each`` (the nested ``items`` once per element of the list variable ``value``).
    ``when``: only said when that variable is truthy.
    """

    kind: str
    value: str
    items: tuple["SayItem", ...] = ()
    when: str | None = None
    limit: int | None = None
    line: int = 0


@dataclass(frozen=True)
class Transition:
    next: str
    set: tuple[tuple[str, str], ...] = ()
    count: str | None = None  # counter name; when it reaches ``max`` go to ``exceeded`` instead
    max: int | None = None
    exceeded: str | None = None
    line: int = 0

    def targets(self) -> tuple[str, ...]:
        return (self.next,) + ((self.exceeded,) if self.exceeded else ())


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    line: int = 0
    say: tuple[SayItem, ...] = ()
    next: Transition | None = None  # prompt; branch: when no case matches
    cases: dict[str, Transition] = field(default_factory=dict)  # branch: value of ``var`` -> transition
    options: dict[str, Transition] = field(default_factory=dict)  # menu / choose: key -> transition
    transitions: dict[str, Transition] = field(default_factory=dict)  # event / outcome -> transition
    # input nodes
    timeout_s: float = 8.0
    retries: int = 2
    retry_say: tuple[SayItem, ...] = ()
    var: str | None = None
    min_digits: int = 1
    max_digits: int = 1
    terminator: str = "#"
    amount: bool = False  # collect: yuan with "*" as decimal point, stored as integer fen
    secret: bool = False  # collect: never echoed, recorded or logged (PINs)
    list_var: str | None = None  # choose
    item_var: str | None = None  # choose
    item_say: tuple[SayItem, ...] = ()  # choose
    # action
    action: str | None = None
    args: dict[str, str] = field(default_factory=dict)  # action arg -> variable path
    # hangup / handoff
    reason: str = "goodbye"


@dataclass(frozen=True)
class Flow:
    name: str
    initial: str
    nodes: dict[str, Node]
    file: str = ""
