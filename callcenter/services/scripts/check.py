"""The talk-script checker behind ``callcenter scripts check``.

For each file: YAML and shape (loader), the step graph (dangling next steps, unreachable steps, steps
from which no terminal outcome can be reached, loops not marked ``loop: true``), every ``say``/``hint``
template (syntax, variables not in :mod:`callcenter.domain.scripts.context`, attributes starting with ``_``,
``event`` used outside reminder scripts, rendering against ``ScriptContext.sample()`` in zh and en), and
forbidden wording anywhere in the file (:mod:`callcenter.domain.scripts.wording`). Every problem has a file line.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import fields, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from callcenter.domain.scripts.context import ROOT_TYPES, ScriptContext, live_shapes
from callcenter.services.scripts.loader import parse_script
from callcenter.domain.scripts.model import Script, Text
from callcenter.services.scripts.problems import Problem
from callcenter.services.scripts.sandbox import BLANK, blank_probe, compile_template, environment
from callcenter.domain.scripts.wording import find_forbidden

SCRIPT_SUFFIXES = (".yaml", ".yml")


# --- graph -------------------------------------------------------------------------------------------
def _reach(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen = {start}
    todo = deque([start])
    while todo:
        for nxt in edges.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _distances(start: str, edges: dict[str, list[str]]) -> dict[str, int]:
    dist = {start: 0}
    todo = deque([start])
    while todo:
        here = todo.popleft()
        for nxt in edges.get(here, ()):
            if nxt not in dist:
                dist[nxt] = dist[here] + 1
                todo.append(nxt)
    return dist


def check_graph(script: Script) -> list[Problem]:
    problems: list[Problem] = []
    path = script.source
    edges: dict[str, list[str]] = {sid: [] for sid in script.steps}
    for step in script.steps.values():
        for ans in step.answers:
            if ans.next not in script.steps:
                problems.append(Problem(path, ans.line, "dangling_next", {"step": step.id, "answer": ans.key, "next": ans.next}))
            else:
                edges[step.id].append(ans.next)
    if script.initial not in script.steps:
        return problems  # missing_initial already reported by the loader
    reachable = _reach(script.initial, edges)
    for step in script.steps.values():
        if step.id not in reachable:
            problems.append(Problem(path, step.line, "unreachable", {"step": step.id}))
    reverse: dict[str, list[str]] = {sid: [] for sid in script.steps}
    for src, targets in edges.items():
        for dst in targets:
            reverse[dst].append(src)
    can_finish: set[str] = set()
    for step in script.steps.values():
        if step.terminal:
            can_finish |= _reach(step.id, reverse)
    for step in script.steps.values():
        if step.id in reachable and step.id not in can_finish and step.answers:
            problems.append(Problem(path, step.line, "no_terminal_path", {"step": step.id}))
    # An answer "goes back" when its target lies on a cycle through this step and is no further from the
    # initial step than this step is (breadth-first distance): that answer must say `loop: true`.
    reach_from = {sid: _reach(sid, edges) for sid in script.steps}
    dist = _distances(script.initial, edges)
    for step in script.steps.values():
        for ans in step.answers:
            if ans.next not in script.steps:
                continue
            closes_cycle = step.id in reach_from[ans.next] and dist.get(ans.next, 0) <= dist.get(step.id, 0)
            if closes_cycle and not ans.loop:
                problems.append(Problem(path, ans.line, "unmarked_loop", {"step": step.id, "answer": ans.key, "next": ans.next}))
            elif ans.loop and not closes_cycle:
                problems.append(Problem(path, ans.line, "loop_not_a_loop", {"step": step.id, "answer": ans.key}))
    types: dict[str, tuple[str, str]] = {}
    for step in script.steps.values():
        for fld in step.capture:
            first = types.get(fld.key)
            if first is None:
                types[fld.key] = (fld.type, step.id)
            elif first[0] != fld.type:
                problems.append(
                    Problem(path, fld.line, "capture_type_conflict", {"key": fld.key, "type": fld.type, "other": first[0], "step": first[1]})
                )
    return problems


# --- templates ---------------------------------------------------------------------------------------
class _Unknown:
    """The type of an expression the walker cannot follow (loop helper, set variable, filter result)."""


_PRIMITIVES = (str, int, Decimal, bool)
_DATE_ATTRS = {"year", "month", "day"}


def _strip_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


class _TemplateWalker:
    def __init__(self, problems: list[Problem], path: str, base_line: int, where: str, kind: str) -> None:
        self.problems = problems
        self.path = path
        self.base_line = base_line
        self.where = where
        self.kind = kind

    def line(self, node: nodes.Node) -> int:
        return self.base_line + max(getattr(node, "lineno", 1), 1) - 1

    def report(self, node: nodes.Node, code: str, **params: Any) -> None:
        self.problems.append(Problem(self.path, self.line(node), code, {"where": self.where, **params}))

    def walk(self, node: nodes.Node, scope: dict[str, Any]) -> None:
        if isinstance(node, nodes.For):
            self.type_of(node.iter, scope)
            elem = self._element_type(self.type_of_quiet(node.iter, scope))
            inner = dict(scope)
            for target in node.target.find_all(nodes.Name) if not isinstance(node.target, nodes.Name) else [node.target]:
                inner[target.name] = elem if isinstance(node.target, nodes.Name) else _Unknown
            inner["loop"] = _Unknown
            if node.test is not None:
                self.type_of(node.test, inner)
            for child in node.body:
                self.walk(child, inner)
            for child in node.else_:
                self.walk(child, scope)
            return
        if isinstance(node, nodes.Assign):
            value_type = self.type_of(node.node, scope)
            if isinstance(node.target, nodes.Name):
                scope[node.target.name] = value_type
            return
        if isinstance(node, nodes.Expr):
            self.type_of(node, scope)
            return
        if isinstance(node, (nodes.Macro, nodes.CallBlock, nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)):
            self.report(node, "unsafe_attribute", attr=type(node).__name__.lower())
            return
        for child in node.iter_child_nodes():
            self.walk(child, scope)

    def type_of_quiet(self, node: nodes.Node, scope: dict[str, Any]) -> Any:
        saved = len(self.problems)
        tp = self.type_of(node, scope)
        del self.problems[saved:]
        return tp

    @staticmethod
    def _element_type(tp: Any) -> Any:
        if typing.get_origin(tp) is list and typing.get_args(tp):
            return typing.get_args(tp)[0]
        return _Unknown

    def type_of(self, node: nodes.Node, scope: dict[str, Any]) -> Any:
        if isinstance(node, nodes.Name):
            if node.ctx != "load":
                return _Unknown
            if node.name in scope:
                if node.name == "event" and self.kind != "reminder" and scope[node.name] is ROOT_TYPES["event"]:
                    self.report(node, "event_outside_reminder")
                return scope[node.name]
            self.report(node, "undefined_variable", name=node.name)
            return _Unknown
        if isinstance(node, nodes.Getattr):
            base = self.type_of(node.node, scope)
            return self._attr(node, base, node.attr)
        if isinstance(node, nodes.Getitem):
            base = self.type_of(node.node, scope)
            self.type_of(node.arg, scope)
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                return self._attr(node, base, node.arg.value)
            return self._element_type(base)
        if isinstance(node, nodes.Const):
            return type(node.value) if isinstance(node.value, _PRIMITIVES) else _Unknown
        for child in node.iter_child_nodes():
            self.type_of(child, scope) if isinstance(child, nodes.Expr) else self.walk(child, scope)
        return _Unknown

    def _attr(self, node: nodes.Node, base: Any, attr: str) -> Any:
        base = _strip_optional(base)
        if attr.startswith("_"):
            self.report(node, "unsafe_attribute", attr=attr)
            return _Unknown
        if is_dataclass(base) and isinstance(base, type):
            hints = typing.get_type_hints(base)
            if attr in {f.name for f in fields(base)}:
                return _strip_optional(hints[attr])
            self.report(node, "undefined_variable", name=f"{base.__name__}.{attr}")
            return _Unknown
        if base in (dt.date, dt.datetime) and attr in _DATE_ATTRS | ({"hour", "minute"} if base is dt.datetime else set()):
            return int
        if base is _Unknown:
            return _Unknown
        name = getattr(base, "__name__", str(base))
        self.report(node, "undefined_variable", name=f"{name}.{attr}")
        return _Unknown


def _template_texts(script: Script) -> Iterator[tuple[str, str, str, int]]:
    """(where, lang, source, first file line) for every templated text of the script."""
    if script.notes is not None:
        for lang, source in script.notes.items():
            if source:
                yield f"notes.{lang}", lang, source, script.notes.lines.get(lang, script.line)
    for step in script.steps.values():
        for label, text in (("say", step.say), ("hint", step.hint)):
            if text is None:
                continue
            for lang, source in text.items():
                if source:
                    yield f"{step.id}.{label}.{lang}", lang, source, text.lines.get(lang, step.line)


def check_templates(script: Script, ctx: ScriptContext | None = None) -> list[Problem]:
    problems: list[Problem] = []
    env = environment(True)
    sample = (ctx or ScriptContext.sample()).as_template_vars()
    for where, _lang, source, base_line in _template_texts(script):
        try:
            ast = env.parse(source)
            compile_template(source, True)  # also catches unknown filters and tests
        except TemplateSyntaxError as exc:
            problems.append(Problem(script.source, base_line + (exc.lineno or 1) - 1, "template_syntax", {"where": where, "detail": exc.message or str(exc)}))
            continue
        before = len(problems)
        walker = _TemplateWalker(problems, script.source, base_line, where, script.kind)
        walker.walk(ast, dict(ROOT_TYPES))
        if len(problems) > before:
            continue  # do not pile a render error on top of what the walk found
        try:
            compile_template(source, True).render(sample)
        except (UndefinedError, SecurityError, TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            problems.append(Problem(script.source, base_line, "render_error", {"where": where, "detail": f"{type(exc).__name__}: {exc}"}))
            continue
        if ctx is None:
            problems.extend(_blank_on_live_calls(script, where, source, base_line))
    return problems


def _blank_on_live_calls(script: Script, where: str, source: str, base_line: int) -> list[Problem]:
    """Render with contexts shaped like real calls of the script's kind; an empty interpolation is a gap the agent
    would read out ("您原来的资料由负责…"), reported with the words around it and the line it is on."""
    out: list[Problem] = []
    for shape, live in live_shapes(script.kind):
        try:
            text = blank_probe(source).render(live.as_template_vars())
        except (UndefinedError, SecurityError, TemplateError, TypeError, ValueError, ArithmeticError):
            continue  # the sample render above reports template errors
        at = text.find(BLANK)
        if at >= 0:
            line = base_line + text.count("\n", 0, at)
            snippet = " ".join(text[max(0, at - 20):at + 20].split())
            out.append(Problem(script.source, line, "blank_on_live_call",
                               {"where": where, "shape": shape, "context": snippet}))
    return out


# --- wording -----------------------------------------------------------------------------------------
def check_wording(text: str, path: str) -> list[Problem]:
    problems: list[Problem] = []
    for hit in find_forbidden(text):
        line = text.count("\n", 0, hit.start) + 1
        problems.append(Problem(path, line, "forbidden_wording", {"term": hit.term, "text": hit.matched}))
    return problems


def _texts_of(text: Text | None) -> Iterable[str]:
    return () if text is None else (text.zh, text.en)


def script_wording_texts(script: Script) -> Iterator[str]:
    """All wording of a script built in memory (titles, notes, say, hints, labels, choices)."""
    yield from _texts_of(script.title)
    yield from _texts_of(script.description)
    yield from _texts_of(script.notes)
    for step in script.steps.values():
        for t in (step.title, step.say, step.hint):
            yield from _texts_of(t)
        for ans in step.answers:
            yield from _texts_of(ans.label)
        for fld in step.capture:
            yield from _texts_of(fld.label)
            for ch in fld.choices:
                yield from _texts_of(ch.label)


# --- files -------------------------------------------------------------------------------------------
def check_text(text: str, path: str = "<string>") -> tuple[Script | None, list[Problem]]:
    """Every check on one script's YAML text. Returns the script (None if it could not be built) and problems."""
    script, problems = parse_script(text, path)
    problems = list(problems)
    problems += check_wording(text, path)
    if script is not None:
        problems += check_graph(script)
        problems += check_templates(script)
    problems.sort(key=lambda p: (p.path, p.line, p.code))
    return script, problems


def check_file(path: str | Path) -> tuple[Script | None, list[Problem]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(str(p), 0, "schema", {"where": "file", "detail": str(exc)})]
    return check_text(text, str(p))


def iter_script_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix in SCRIPT_SUFFIXES and f.is_file()))
        else:
            out.append(p)
    return out


def check_paths(paths: Iterable[str | Path]) -> tuple[dict[str, Script], list[Problem]]:
    """Check every script file under ``paths`` (files or directories). Also reports duplicate script ids."""
    scripts: dict[str, Script] = {}
    problems: list[Problem] = []
    for f in iter_script_files(paths):
        script, found = check_file(f)
        problems += found
        if script is None:
            continue
        if script.id in scripts:
            problems.append(Problem(str(f), script.line, "schema", {"where": "script", "detail": f"duplicate script id {script.id!r} (also in {scripts[script.id].source})"}))
            continue
        scripts[script.id] = script
    return scripts, problems
