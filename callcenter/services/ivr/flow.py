"""Load IVR flows from YAML and check them before any call runs them.

``check_flow(path)`` returns every problem with the file and line it comes from; ``load_flow(path)``
returns a :class:`~callcenter.domain.ivr.model.Flow` or raises :class:`FlowError` listing the problems.

File format (see ``ivr_flows/hotline.yaml``)::

    flow: hotline
    initial: welcome
    nodes:
      welcome:
        type: menu
        say: [welcome, choose_language]        # catalogue keys under "ivr." (callcenter/locales/*/ivr.yaml)
        timeout_s: 5
        retries: 1
        options:
          "1": {next: ask_account, set: {lang: zh-CN}}
          "2": {next: ask_account, set: {lang: en}}
        transitions: {timeout: ask_account, invalid: ask_account}
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from callcenter import yamlines
from callcenter.domain.ivr.model import (
    ACTIONS,
    DTMF_KEYS,
    INPUT_TYPES,
    NODE_TYPES,
    PROMPT_AREA,
    TERMINAL_TYPES,
    Flow,
    Node,
    SayItem,
    Transition,
)
from callcenter.shipped import shipped_dir
from callcenter.yamlines import LineDict

FLOWS_DIR = shipped_dir("ivr_flows")  # the flows shipped with the engine; settings.flows_path may point elsewhere
LANGS = ("zh-CN", "en")

_COMMON_FIELDS = {"type", "say"}
_FIELDS: dict[str, set[str]] = {
    "prompt": _COMMON_FIELDS | {"next"},
    "menu": _COMMON_FIELDS | {"options", "transitions", "timeout_s", "retries", "retry_say"},
    "collect": _COMMON_FIELDS | {"transitions", "timeout_s", "retries", "retry_say", "var", "min_digits",
                                 "max_digits", "terminator", "amount", "secret"},
    "choose": _COMMON_FIELDS | {"options", "transitions", "timeout_s", "retries", "retry_say", "list", "as",
                                "item_say"},
    "action": {"type", "action", "args", "transitions"},
    "branch": {"type", "var", "cases", "next"},
    "handoff": _COMMON_FIELDS,
    "hangup": _COMMON_FIELDS | {"reason"},
}
_REQUIRED_EVENTS = {"menu": ("timeout", "invalid"), "collect": ("done", "timeout", "invalid"),
                    "choose": ("done", "timeout", "invalid")}
_SAY_KINDS = ("key", "name", "digits", "number", "amount", "text", "each")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class FlowError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --- YAML with line numbers: callcenter.yamlines (shared with the talk-script checker) -------------

def _line(obj: Any, key: Any = None, default: int = 1) -> int:
    if key is not None and isinstance(obj, LineDict):
        return obj.line_of(key)
    return getattr(obj, "line", default) or default


# --- parsing + checking -----------------------------------------------------------------------
class _Builder:
    def __init__(self, file: str, has_prompt: Callable[[str, str], bool]) -> None:
        self.file = file
        self.has_prompt = has_prompt
        self.problems: list[Problem] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def say_items(self, raw: Any, line: int, where: str) -> tuple[SayItem, ...]:
        if raw is None:
            return ()
        if isinstance(raw, (str, dict)):
            raw = [raw]
        if not isinstance(raw, list):
            self.problem(line, f"{where}: 'say' must be a list")
            return ()
        items = []
        for entry in raw:
            item = self.say_item(entry, _line(raw, default=line), where)
            if item is not None:
                items.append(item)
        return tuple(items)

    def say_item(self, entry: Any, line: int, where: str) -> SayItem | None:
        if isinstance(entry, str):
            entry_line = line
            self.check_prompt(entry, entry_line, where)
            return SayItem("key", entry, line=entry_line)
        if not isinstance(entry, dict):
            self.problem(line, f"{where}: a say item must be a prompt key or a mapping")
            return None
        entry_line = _line(entry, default=line)
        kinds = [k for k in _SAY_KINDS if k in entry]
        unknown = set(entry) - set(_SAY_KINDS) - {"when", "say", "limit"}
        if len(kinds) != 1 or unknown:
            self.problem(entry_line, f"{where}: a say item needs exactly one of {', '.join(_SAY_KINDS)}"
                         + (f" (unknown: {', '.join(sorted(map(str, unknown)))})" if unknown else ""))
            return None
        kind = kinds[0]
        value = str(entry[kind])
        nested: tuple[SayItem, ...] = ()
        if kind == "key":
            self.check_prompt(value, entry_line, where)
        if kind == "each":
            nested = self.say_items(entry.get("say"), entry_line, where)
            if not nested:
                self.problem(entry_line, f"{where}: 'each' needs a 'say' list")
        limit = entry.get("limit")
        return SayItem(kind, value, nested, when=entry.get("when"), limit=int(limit) if limit else None,
                       line=entry_line)

    def check_prompt(self, key: str, line: int, where: str) -> None:
        for lang in LANGS:
            if not self.has_prompt(f"{PROMPT_AREA}.{key}", lang):
                self.problem(line, f"{where}: prompt '{key}' has no {lang} text in callcenter/locales/{lang}/"
                             f"{PROMPT_AREA}.yaml")

    def transition(self, raw: Any, line: int, where: str) -> Transition | None:
        if isinstance(raw, str):
            return Transition(raw, line=line)
        if isinstance(raw, dict):
            line = _line(raw, default=line)
            unknown = set(raw) - {"next", "set", "count", "max", "exceeded"}
            if unknown or not isinstance(raw.get("next"), str):
                self.problem(line, f"{where}: a transition needs 'next' (and optionally set/count/max/exceeded)")
                return None
            sets = raw.get("set") or {}
            if not isinstance(sets, dict):
                self.problem(line, f"{where}: 'set' must be a mapping")
                sets = {}
            if raw.get("count") and not (raw.get("max") and raw.get("exceeded")):
                self.problem(line, f"{where}: a counted transition needs 'max' and 'exceeded'")
            return Transition(raw["next"], tuple((str(k), str(v)) for k, v in sets.items()), raw.get("count"),
                              int(raw["max"]) if raw.get("max") else None, raw.get("exceeded"), line=line)
        self.problem(line, f"{where}: a transition must be a node name or a mapping")
        return None

    def transitions(self, raw: Any, line: int, where: str) -> dict[str, Transition]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problem(line, f"{where}: 'transitions' must be a mapping")
            return {}
        result = {}
        for event, target in raw.items():
            tr = self.transition(target, _line(raw, event), f"{where} on {event}")
            if tr is not None:
                result[str(event)] = tr
        return result

    def node(self, name: str, raw: Any, line: int) -> Node | None:
        where = f"node '{name}'"
        if not isinstance(raw, dict):
            self.problem(line, f"{where}: must be a mapping")
            return None
        ntype = raw.get("type")
        if ntype not in NODE_TYPES:
            self.problem(_line(raw, "type", line), f"{where}: unknown type {ntype!r} "
                         f"(expected one of {', '.join(sorted(NODE_TYPES))})")
            return None
        for key in raw:
            if key not in _FIELDS[ntype]:
                self.problem(_line(raw, key), f"{where}: unknown field '{key}' for a {ntype} node")
        for key, dup_line in getattr(raw, "duplicates", []):
            self.problem(dup_line, f"{where}: '{key}' given twice")
        kw: dict[str, Any] = {"name": name, "type": ntype, "line": line}
        kw["say"] = self.say_items(raw.get("say"), _line(raw, "say", line), where)
        kw["retry_say"] = self.say_items(raw.get("retry_say"), _line(raw, "retry_say", line), where)
        kw["transitions"] = self.transitions(raw.get("transitions"), _line(raw, "transitions", line), where)
        if ntype in ("prompt", "branch"):
            if "next" not in raw:
                self.problem(line, f"{where}: a {ntype} node needs 'next'")
            else:
                kw["next"] = self.transition(raw["next"], _line(raw, "next"), where)
        if ntype == "branch":
            kw["var"] = raw.get("var")
            if not kw["var"]:
                self.problem(line, f"{where}: a branch node needs 'var'")
            cases = raw.get("cases") or {}
            if not isinstance(cases, dict) or not cases:
                self.problem(line, f"{where}: a branch node needs 'cases'")
            else:
                kw["cases"] = {str(k): tr for k, v in cases.items()
                               if (tr := self.transition(v, _line(cases, k), f"{where} case {k}")) is not None}
        if ntype in ("menu", "choose"):
            options = raw.get("options") or {}
            if ntype == "menu" and not options:
                self.problem(line, f"{where}: a menu needs 'options'")
            parsed = {}
            if isinstance(options, dict):
                for key, dup_line in getattr(options, "duplicates", []):
                    self.problem(dup_line, f"{where}: key '{key}' given twice")
                for key, target in options.items():
                    key_line = _line(options, key)
                    if str(key) not in DTMF_KEYS:
                        self.problem(key_line, f"{where}: bad key {key!r} (one of 0-9, * or #; quote '*' and '#')")
                        continue
                    tr = self.transition(target, key_line, f"{where} key {key}")
                    if tr is not None:
                        parsed[str(key)] = tr
            kw["options"] = parsed
        if ntype in INPUT_TYPES:
            for event in _REQUIRED_EVENTS[ntype]:
                if event not in kw["transitions"]:
                    self.problem(line, f"{where}: an input node needs a '{event}' transition")
            kw["timeout_s"] = float(raw.get("timeout_s", 8))
            kw["retries"] = int(raw.get("retries", 2))
            if kw["timeout_s"] <= 0 or kw["retries"] < 0:
                self.problem(line, f"{where}: timeout_s must be > 0 and retries >= 0")
        if ntype == "collect":
            kw["var"] = raw.get("var")
            if not kw["var"]:
                self.problem(line, f"{where}: a collect node needs 'var'")
            kw["min_digits"] = int(raw.get("min_digits", 1))
            kw["max_digits"] = int(raw.get("max_digits", kw["min_digits"]))
            if not 1 <= kw["min_digits"] <= kw["max_digits"] <= 32:
                self.problem(line, f"{where}: need 1 <= min_digits <= max_digits <= 32")
            kw["terminator"] = str(raw.get("terminator", "#") or "")
            if kw["terminator"] not in ("", "#", "*"):
                self.problem(_line(raw, "terminator"), f"{where}: terminator must be '#' or '*'")
            kw["amount"] = bool(raw.get("amount", False))
            kw["secret"] = bool(raw.get("secret", False))
            if kw["amount"] and kw["terminator"] == "*":
                self.problem(line, f"{where}: '*' is the decimal point of an amount, it cannot end input")
        if ntype == "choose":
            kw["list_var"] = raw.get("list")
            kw["item_var"] = raw.get("as")
            if not kw["list_var"] or not kw["item_var"]:
                self.problem(line, f"{where}: a choose node needs 'list' and 'as'")
            kw["item_say"] = self.say_items(raw.get("item_say"), _line(raw, "item_say", line), where)
            for key in kw["options"]:
                if key.isdigit() and key != "0":
                    self.problem(_line(raw.get("options"), key), f"{where}: key {key} is used to pick an item")
        if ntype == "action":
            action = raw.get("action")
            spec = ACTIONS.get(str(action))
            if spec is None:
                self.problem(_line(raw, "action", line), f"{where}: unknown action {action!r} "
                             f"(known: {', '.join(sorted(ACTIONS))})")
            else:
                kw["action"] = action
                for outcome in spec.outcomes:
                    if outcome not in kw["transitions"]:
                        self.problem(line, f"{where}: action '{action}' can end '{outcome}' but has no such transition")
                for outcome in kw["transitions"]:
                    if outcome not in spec.outcomes:
                        self.problem(kw["transitions"][outcome].line,
                                     f"{where}: action '{action}' never ends '{outcome}'")
                args = raw.get("args") or {}
                for arg in args:
                    if arg not in spec.args:
                        self.problem(_line(args, arg), f"{where}: action '{action}' takes no argument '{arg}'")
                kw["args"] = {str(k): str(v).lstrip("$") for k, v in args.items()}
        if ntype == "hangup":
            kw["reason"] = str(raw.get("reason", "goodbye"))
        if ntype not in INPUT_TYPES | {"action"} and kw["transitions"]:
            self.problem(_line(raw, "transitions"), f"{where}: a {ntype} node takes no 'transitions'")
        return Node(**kw)


def _default_has_prompt(key: str, lang: str) -> bool:
    from callcenter import i18n

    return key in i18n.catalogue(lang)


def parse_flow(text: str, file: str = "<flow>", has_prompt: Callable[[str, str], bool] | None = None
               ) -> tuple[Flow | None, list[Problem]]:
    builder = _Builder(file, has_prompt or _default_has_prompt)
    try:
        raw = yamlines.load(text)
    except yamlines.YamlSyntaxError as exc:
        return None, [Problem(file, exc.line, f"not valid YAML: {exc.full}")]
    if not isinstance(raw, LineDict):  # every YAML mapping loads as a LineDict
        return None, [Problem(file, 1, "a flow file must be a mapping with 'initial' and 'nodes'")]
    for key in raw:
        if key not in ("flow", "initial", "nodes", "description"):
            builder.problem(_line(raw, key), f"unknown top-level field '{key}'")
    nodes_raw = raw.get("nodes")
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        builder.problem(_line(raw, "nodes"), "the flow has no 'nodes'")
        return None, builder.problems
    for key, dup_line in getattr(nodes_raw, "duplicates", []):
        builder.problem(dup_line, f"node '{key}' defined twice")
    nodes: dict[str, Node] = {}
    for name, body in nodes_raw.items():
        node = builder.node(str(name), body, _line(nodes_raw, name))
        if node is not None:
            nodes[str(name)] = node
    initial = raw.get("initial")
    if not initial:
        builder.problem(raw.line, "missing 'initial' node")
    elif initial not in nodes_raw:
        builder.problem(_line(raw, "initial"), f"initial node '{initial}' does not exist")
    # targets
    for node in nodes.values():
        for label, tr in _edges(node):
            for target in tr.targets():
                if target not in nodes_raw:
                    builder.problem(tr.line or node.line, f"node '{node.name}' {label} goes to unknown node "
                                                          f"'{target}'")
    # reachability
    if initial in nodes:
        seen = {initial}
        queue = deque([initial])
        while queue:
            for _, tr in _edges(nodes[queue.popleft()]):
                for target in tr.targets():
                    if target in nodes and target not in seen:
                        seen.add(target)
                        queue.append(target)
        for node in nodes.values():
            if node.name not in seen:
                builder.problem(node.line, f"node '{node.name}' is unreachable from '{initial}'")
    problems = sorted(builder.problems, key=lambda p: (p.line, p.message))
    if problems or not initial:
        return None, problems
    return Flow(str(raw.get("flow") or Path(file).stem), str(initial), nodes, file), []


def _edges(node: Node) -> list[tuple[str, Transition]]:
    edges: list[tuple[str, Transition]] = []
    if node.next:
        edges.append(("next", node.next))
    edges += [(f"key {key}", tr) for key, tr in node.options.items()]
    edges += [(f"case {value}", tr) for value, tr in node.cases.items()]
    edges += [(f"on {event}", tr) for event, tr in node.transitions.items()]
    return edges


def flow_path(name_or_path: str | Path, folder: Path | None = None) -> Path:
    """``hotline`` -> <folder>/hotline.yaml (default: the shipped ivr_flows/); a path is returned as is."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return (folder or FLOWS_DIR) / f"{name_or_path}.yaml"


def check_flow(path: str | Path) -> list[Problem]:
    path = flow_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return [Problem(str(path), 0, f"cannot read: {exc.strerror}")]
    return parse_flow(text, str(path))[1]


def load_flow(path: str | Path) -> Flow:
    path = flow_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError([Problem(str(path), 0, f"cannot read: {exc.strerror}")]) from None
    flow, problems = parse_flow(text, str(path))
    if flow is None:
        raise FlowError(problems)
    return flow
