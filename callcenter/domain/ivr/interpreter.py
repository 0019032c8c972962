"""The IVR interpreter: a pure state machine over a :class:`~callcenter.domain.ivr.model.Flow` (standard library only).

``FlowRun.start()`` and ``FlowRun.feed(event)`` return lists of commands; adapters (FastAGI,
Twilio, the text phone) carry them out and feed back what happened.  Backend calls are commands too
(:class:`RunAction`): the adapter runs them through the :class:`~callcenter.services.ivr.backend.IvrBackend`
port and feeds an :class:`ActionResult` back, so nothing here does I/O or reads a clock.

Per-call limits (e.g. three wrong PINs end the call) are flow counters (``count``/``max`` on a
transition); ``limits`` overrides their maximum from settings.  The whole session state is plain
data (:meth:`FlowRun.snapshot` / :meth:`FlowRun.restore`) so web carriers can keep it server-side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

from callcenter.domain.masking import mask_phone  # the one masking policy (also what adapters/ivr/agi.py imports)
from callcenter.domain.ivr.model import ACTIONS, PROMPT_AREA, Flow, Node, SayItem, Transition

LANGUAGES = ("zh-CN", "en")


# --- events (what happened) -------------------------------------------------------------------
@dataclass(frozen=True)
class DigitsEntered:
    digits: str


@dataclass(frozen=True)
class Timeout:
    pass


@dataclass(frozen=True)
class CallerHungUp:
    reason: str = "caller_hangup"


@dataclass(frozen=True)
class ActionResult:
    name: str
    outcome: str
    data: dict[str, Any] = field(default_factory=dict)


Event = Union[DigitsEntered, Timeout, CallerHungUp, ActionResult]


# --- commands (what to do) --------------------------------------------------------------------
@dataclass(frozen=True)
class Say:
    key: str  # full catalogue key, e.g. "ivr.welcome"
    lang: str
    params: dict[str, str] = field(default_factory=dict)
    optional: bool = False  # skip silently when the catalogue has no such text


@dataclass(frozen=True)
class SayDigits:
    digits: str
    lang: str


@dataclass(frozen=True)
class SayNumber:
    number: int
    lang: str


@dataclass(frozen=True)
class SayAmount:
    fen: int
    lang: str


@dataclass(frozen=True)
class SayText:
    """Free text that is not in the catalogue (a bulletin written by supervisors)."""

    text: str
    lang: str


@dataclass(frozen=True)
class Collect:
    max_digits: int  # stop waiting after this many keys (the terminator also ends input)
    timeout_s: float
    terminator: str | None  # "#" ends input early; None for one-key menus
    secret: bool = False  # the digits must never be echoed or logged


@dataclass(frozen=True)
class SetLanguage:
    lang: str


@dataclass(frozen=True)
class SetVariable:
    name: str
    value: str


@dataclass(frozen=True)
class RunAction:
    name: str
    args: dict[str, Any]
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Record:
    """A step worth storing in the call record. Never carries PINs or typed amounts."""

    step: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Handoff:
    summary: str
    client_id: str | None
    lang: str


@dataclass(frozen=True)
class EndCall:
    reason: str


Command = Union[Say, SayDigits, SayNumber, SayAmount, SayText, Collect, SetLanguage, SetVariable, RunAction,
                Record, Handoff, EndCall]

SPEECH_COMMANDS = (Say, SayDigits, SayNumber, SayAmount, SayText)

_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_AMOUNT = re.compile(r"^(\d+)(?:\*(\d{0,2}))?$")


class FlowRuntimeError(Exception):
    """The flow asked for something the checker should have refused."""


def parse_amount_fen(digits: str) -> int | None:
    """Keys typed for an amount in yuan, ``*`` as the decimal point: ``"12345*6"`` -> 1234560 fen."""
    m = _AMOUNT.match(digits)
    if not m:
        return None
    yuan, frac = m.group(1), (m.group(2) or "")
    fen = int(yuan) * 100 + int((frac + "00")[:2])
    return fen if fen > 0 else None


def resolve(scope: dict[str, Any], path: str) -> Any:
    value: Any = scope
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


# the entries a caller may be sent into (``FlowRun(entry=...)``; the flow branches on the variable ``entry``)
ENTRIES = frozenset({"orders"})


class FlowRun:
    """One call walking one flow."""

    def __init__(
        self,
        flow: Flow,
        lang: str = "zh-CN",
        caller: str = "",
        call_id: str = "",
        limits: dict[str, int] | None = None,
        entry: str = "",
    ) -> None:
        self.flow = flow
        self.lang = lang if lang in LANGUAGES else "zh-CN"
        self.caller = caller
        self.call_id = call_id
        self.limits = dict(limits or {})
        # where the caller should land after logging in (a ``branch`` on ``entry``: "orders" when an agent handed the
        # caller to the order menu; the carrier reads it from the PBX, e.g. the dialplan's AGI argument CC_IVR_ENTRY)
        self.vars: dict[str, Any] = {"entry": entry} if entry in ENTRIES else {}
        self.counters: dict[str, int] = {}
        self.node: str | None = None
        self.waiting: str | None = None  # "input" | "action" | None
        self.attempts = 0  # failed tries on the current input node
        self.seq = 0  # step counter: one per node entered
        self.ended = False
        self.end_reason: str | None = None
        self.path: list[str] = []  # menu choices and actions, for the agent's summary
        self.transfers: list[str] = []
        self.pending_action: str | None = None

    # --- public API ---------------------------------------------------------------------------
    def start(self) -> list[Command]:
        if self.node is not None:
            raise FlowRuntimeError("session already started")
        detail: dict[str, Any] = {"caller": mask_phone(self.caller), "lang": self.lang, "flow": self.flow.name}
        if self.vars.get("entry"):  # sent back by an agent (e.g. to the order menu): the record says where to
            detail["entry"] = self.vars["entry"]
        out: list[Command] = [Record("start", detail)]
        self._enter(self.flow.initial, out)
        return out

    def feed(self, event: Event) -> list[Command]:
        if self.ended:
            return []
        out: list[Command] = []
        if isinstance(event, CallerHungUp):
            self._end(event.reason, out, hang_up=False)
            return out
        node = self._current()
        if self.waiting == "action" and isinstance(event, ActionResult):
            if event.name != node.action:
                return []
            self._action_result(node, event, out)
        elif self.waiting == "input" and isinstance(event, DigitsEntered):
            self._input(node, event.digits, out)
        elif self.waiting == "input" and isinstance(event, Timeout):
            self._retry(node, "timeout", out)
        return out

    @property
    def client_id(self) -> str | None:
        value = self.vars.get("client_id")
        return str(value) if value else None

    # --- state as plain data --------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "lang": self.lang, "caller": self.caller, "call_id": self.call_id, "limits": self.limits,
            "vars": self.vars, "counters": self.counters, "node": self.node, "waiting": self.waiting,
            "attempts": self.attempts, "seq": self.seq, "ended": self.ended, "end_reason": self.end_reason,
            "path": self.path, "transfers": self.transfers, "pending_action": self.pending_action,
        }

    @classmethod
    def restore(cls, flow: Flow, state: dict[str, Any]) -> "FlowRun":
        session = cls(flow, lang=state["lang"], caller=state["caller"], call_id=state["call_id"],
                      limits=state.get("limits"))
        for name in ("vars", "counters", "node", "waiting", "attempts", "seq", "ended", "end_reason",
                     "path", "transfers", "pending_action"):
            setattr(session, name, state[name])
        return session

    # --- internals ------------------------------------------------------------------------------
    def _current(self) -> Node:
        assert self.node is not None
        return self.flow.nodes[self.node]

    def _scope(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        scope = {"lang": self.lang, "caller": self.caller, "call_id": self.call_id, **self.vars}
        if extra:
            scope.update(extra)
        return scope

    def _enter(self, name: str, out: list[Command]) -> None:
        for _ in range(1000):  # prompts chain into each other; a flow that loops without input is a bug
            node = self.flow.nodes.get(name)
            if node is None:
                raise FlowRuntimeError(f"unknown node {name!r}")
            self.node = name
            self.seq += 1
            self.attempts = 0
            self.waiting = None
            if node.type == "prompt":
                self._say(node.say, out)
                assert node.next is not None
                target = self._take(node.next, out)
                if target is None:
                    return
                name = target
                continue
            if node.type == "branch":
                assert node.next is not None and node.var is not None
                value = resolve(self._scope(), node.var)
                target = self._take(node.cases.get(str(value) if value is not None else "", node.next), out)
                if target is None:
                    return
                name = target
                continue
            if node.type in ("menu", "collect", "choose"):
                self._prompt_input(node, out)
                return
            if node.type == "action":
                self._run_action(node, out)
                return
            if node.type == "handoff":
                self._say(node.say, out)
                self._handoff(node, out)
                return
            if node.type == "hangup":
                self._say(node.say, out)
                self._end(node.reason, out, hang_up=True)
                return
            raise FlowRuntimeError(f"unknown node type {node.type!r}")
        raise FlowRuntimeError("flow loops without waiting for the caller")

    def _take(self, tr: Transition, out: list[Command]) -> str | None:
        """Apply a transition's side effects; return the node to enter."""
        for key, value in tr.set:
            if key == "lang":
                if value in LANGUAGES:
                    self.lang = value
                    out.append(SetLanguage(value))
            else:
                self.vars[key] = value
        if tr.count:
            self.counters[tr.count] = self.counters.get(tr.count, 0) + 1
            limit = self.limits.get(tr.count, tr.max)
            if limit is not None and self.counters[tr.count] >= limit and tr.exceeded:
                return tr.exceeded
        return tr.next

    def _go(self, tr: Transition, out: list[Command]) -> None:
        target = self._take(tr, out)
        if target is not None:
            self._enter(target, out)

    def _say(self, items: tuple[SayItem, ...], out: list[Command], extra: dict[str, Any] | None = None) -> None:
        scope = self._scope(extra)
        for item in items:
            if item.when and not resolve(scope, item.when):
                continue
            lang = self.lang
            if item.kind == "key":
                out.append(Say(f"{PROMPT_AREA}.{item.value}", lang))
            elif item.kind == "name":
                key = _TEMPLATE.sub(lambda m: str(resolve(scope, m.group(1)) or ""), item.value)
                out.append(Say(f"{PROMPT_AREA}.{key}", lang, optional=True))
            elif item.kind == "digits":
                value = resolve(scope, item.value)
                if value not in (None, ""):
                    out.append(SayDigits(str(value), lang))
            elif item.kind == "number":
                value = resolve(scope, item.value)
                if value is not None:
                    out.append(SayNumber(int(value), lang))
            elif item.kind == "amount":
                value = resolve(scope, item.value)
                if value is not None:
                    out.append(SayAmount(int(value), lang))
            elif item.kind == "text":
                value = resolve(scope, item.value)
                if value:
                    out.append(SayText(str(value), lang))
            elif item.kind == "each":
                values = resolve(scope, item.value) or []
                for index, element in enumerate(values[: item.limit] if item.limit else values, start=1):
                    self._say(item.items, out, {**(extra or {}), "item": element, "index": index})

    def _choices(self, node: Node) -> list[Any]:
        values = resolve(self._scope(), node.list_var or "") or []
        return list(values)[:9]

    def _prompt_input(self, node: Node, out: list[Command]) -> None:
        self._say(node.say, out)
        if node.type == "choose":
            for index, element in enumerate(self._choices(node), start=1):
                self._say(node.item_say, out, {"item": element, "index": index})
        if node.type == "collect":
            # with a terminator, wait for one key more than the longest valid input: a caller who types
            # six PIN digits and then "#" must not have the "#" land in the next menu
            keys = node.max_digits + (1 if node.terminator else 0)
            out.append(Collect(keys, node.timeout_s, node.terminator or None, secret=node.secret))
        else:
            out.append(Collect(1, node.timeout_s, None))
        self.waiting = "input"

    def _retry(self, node: Node, kind: str, out: list[Command]) -> None:
        """Invalid input or silence: re-prompt up to ``retries`` times, then take the branch."""
        self.attempts += 1
        out.append(Record(node.name, {"input": kind, "attempt": self.attempts}))
        if self.attempts <= node.retries:
            self._say(node.retry_say or (SayItem("key", "no_input" if kind == "timeout" else "invalid_input"),),
                      out)
            attempts = self.attempts
            self._prompt_input(node, out)
            self.attempts = attempts
            return
        self._go(node.transitions[kind], out)

    def _input(self, node: Node, digits: str, out: list[Command]) -> None:
        if node.type == "menu":
            key = digits[:1]
            tr = node.options.get(key) if key else None
            if tr is None:
                self._retry(node, "invalid", out)
                return
            out.append(Record(node.name, {"choice": key}))
            self.path.append(f"{node.name}:{key}")
            self._go(tr, out)
        elif node.type == "choose":
            key = digits[:1]
            choices = self._choices(node)
            if key in node.options:
                out.append(Record(node.name, {"choice": key}))
                self._go(node.options[key], out)
            elif key.isdigit() and 1 <= int(key) <= len(choices):
                assert node.item_var is not None
                self.vars[node.item_var] = choices[int(key) - 1]
                out.append(Record(node.name, {"choice": key}))
                self._go(node.transitions["done"], out)
            else:
                self._retry(node, "invalid", out)
        elif node.type == "collect":
            assert node.var is not None
            if node.terminator and digits.endswith(node.terminator):
                digits = digits[: -len(node.terminator)]
            if node.amount:
                fen = parse_amount_fen(digits) if len(digits) >= node.min_digits else None
                if fen is None:
                    self._retry(node, "invalid", out)
                    return
                self.vars[node.var] = fen
            else:
                if not (digits.isdigit() and node.min_digits <= len(digits) <= node.max_digits):
                    self._retry(node, "invalid", out)
                    return
                self.vars[node.var] = digits
            out.append(Record(node.name, {"input": "ok"}))  # never the digits themselves
            self._go(node.transitions["done"], out)

    def _run_action(self, node: Node, out: list[Command]) -> None:
        assert node.action is not None
        spec = ACTIONS[node.action]
        scope = self._scope()
        args = {arg: resolve(scope, node.args.get(arg, arg)) for arg in spec.args}
        key = f"{self.call_id}:{self.seq}" if spec.idempotent else None
        for node_ in self.flow.nodes.values():  # secrets (PINs) live only until the action that uses them
            if node_.secret and node_.var:
                self.vars.pop(node_.var, None)
        self.waiting = "action"
        self.pending_action = node.action
        out.append(RunAction(node.action, args, key))

    def _action_result(self, node: Node, result: ActionResult, out: list[Command]) -> None:
        spec = ACTIONS[result.name]
        self.waiting = None
        self.pending_action = None
        for key, value in result.data.items():
            self.vars[key] = value
        detail: dict[str, Any] = {"action": result.name, "outcome": result.outcome}
        detail.update({k: result.data[k] for k in spec.record if result.data.get(k) not in (None, "")})
        out.append(Record(node.name, detail))
        self.path.append(f"{result.name}:{result.outcome}")
        if result.name == "transfer" and result.data.get("reference"):
            self.transfers.append(str(result.data["reference"]))
        tr = node.transitions.get(result.outcome) or node.transitions.get("error")
        if tr is None:
            self._end("error", out, hang_up=True)
            return
        self._go(tr, out)

    def summary(self) -> str:
        parts = [f"lang={self.lang}", f"auth={'ok' if self.client_id else 'no'}"]
        if self.vars.get("masked_account"):
            parts.append(f"account={self.vars['masked_account']}")
        if self.path:
            parts.append("path=" + ">".join(self.path[-12:]))
        if self.transfers:
            parts.append("transfers=" + "/".join(self.transfers))
        return ";".join(parts)

    def _handoff(self, node: Node, out: list[Command]) -> None:
        summary = self.summary()
        out.append(Record("handoff", {"summary": summary}))
        self.ended = True
        self.end_reason = "handoff"
        self.waiting = None
        out.append(Handoff(summary, self.client_id, self.lang))

    def _end(self, reason: str, out: list[Command], hang_up: bool) -> None:
        self.ended = True
        self.end_reason = reason
        detail: dict[str, Any] = {"reason": reason, "node": self.node}
        if self.pending_action:
            detail["pending_action"] = self.pending_action
        out.append(Record("end", detail))
        self.waiting = None
        if hang_up:
            out.append(EndCall(reason))
