"""Load talk scripts (refusing any the checker finds a problem in) and render their steps for a call.

    scripts = load_all(Path("scripts_templates"))
    run = ScriptRun.start(scripts["win_back"])
    shown = render_step(run.script, run.current, ctx, "zh-CN")      # RenderedStep for the agent screen
    run.answer("losses", {"leave_reason_detail": "..."})
    state = run.to_dict()                                           # keep in the database
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2.exceptions import SecurityError, TemplateError, UndefinedError

from callcenter.services.scripts.check import check_file, check_text, iter_script_files
from callcenter.domain.scripts.context import ScriptContext
from callcenter.domain.scripts.model import Script, Text, lang_key
from callcenter.services.scripts.problems import Problem, ScriptInvalid
from callcenter.domain.scripts.run import CaptureError, RunError, ScriptRun, validate_capture, validate_value
from callcenter.services.scripts.sandbox import compile_template

__all__ = [
    "CaptureError",
    "RenderedAnswer",
    "RenderedChoice",
    "RenderedField",
    "RenderedStep",
    "RunError",
    "ScriptInvalid",
    "ScriptRenderError",
    "ScriptRun",
    "load_all",
    "load_script",
    "loads_script",
    "render_notes",
    "render_step",
    "validate_capture",
    "validate_value",
]


class ScriptRenderError(Exception):
    """A step could not be rendered for this context (e.g. a reminder script without an event)."""

    def __init__(self, script_id: str, step_id: str, detail: str) -> None:
        self.script_id = script_id
        self.step_id = step_id
        super().__init__(f"{script_id}/{step_id}: {detail}")


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise ScriptInvalid(problems)


def loads_script(text: str, source: str = "<string>", *, check: bool = True) -> Script:
    """Build a script from YAML text. With ``check`` (the default) any problem raises ScriptInvalid;
    without it only problems that prevent building the script do."""
    script, problems = check_text(text, source) if check else _parse_only(text, source)
    if check:
        _raise_if(problems)
    if script is None:
        raise ScriptInvalid(problems)
    return script


def _parse_only(text: str, source: str) -> tuple[Script | None, list[Problem]]:
    from callcenter.services.scripts.loader import parse_script

    return parse_script(text, source)


def load_script(path: str | Path, *, check: bool = True) -> Script:
    p = Path(path)
    if not check:
        return loads_script(p.read_text(encoding="utf-8"), str(p), check=False)
    script, problems = check_file(p)
    _raise_if(problems)
    assert script is not None
    return script


def load_all(directory: str | Path) -> dict[str, Script]:
    """Every script in ``directory`` by id; raises ScriptInvalid listing the problems of all files."""
    scripts: dict[str, Script] = {}
    problems: list[Problem] = []
    for f in iter_script_files([directory]):
        script, found = check_file(f)
        problems += found
        if script is not None:
            if script.id in scripts:
                problems.append(Problem(str(f), script.line, "schema", {"where": "script", "detail": f"duplicate script id {script.id!r}"}))
            scripts[script.id] = script
    _raise_if(problems)
    return scripts


@dataclass(frozen=True)
class RenderedAnswer:
    key: str
    label: str
    next: str
    requires: tuple[str, ...]


@dataclass(frozen=True)
class RenderedChoice:
    key: str
    label: str


@dataclass(frozen=True)
class RenderedField:
    key: str
    type: str
    label: str
    required: bool
    choices: tuple[RenderedChoice, ...]
    min: int | None
    max: int | None


@dataclass(frozen=True)
class RenderedStep:
    """One step ready for the agent screen. With ``html=True`` ``text`` and ``hint`` are escaped HTML
    (line breaks kept as newlines; render them with ``white-space: pre-line``); labels are plain text."""

    script_id: str
    step_id: str
    lang: str
    title: str
    text: str
    hint: str
    answers: tuple[RenderedAnswer, ...]
    capture: tuple[RenderedField, ...]
    outcome: str | None

    @property
    def terminal(self) -> bool:
        return self.outcome is not None


def _render(script: Script, step_id: str, text: Text | None, ctx: ScriptContext, lang: str, html: bool) -> str:
    if text is None:
        return ""
    source = text.get(lang)
    try:
        return compile_template(source, html).render(ctx.as_template_vars()).strip()
    except (UndefinedError, SecurityError, TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise ScriptRenderError(script.id, step_id, f"{type(exc).__name__}: {exc}") from exc


def render_step(script: Script, step_id: str, ctx: ScriptContext, lang: str, *, html: bool = True) -> RenderedStep:
    """Render ``step_id`` of ``script`` for ``ctx`` in ``lang`` ("zh-CN"/"zh" or "en") in the sandbox."""
    key = lang_key(lang)
    step = script.step(step_id)
    return RenderedStep(
        script_id=script.id,
        step_id=step.id,
        lang=key,
        title=step.title.get(key) if step.title else "",
        text=_render(script, step.id, step.say, ctx, key, html),
        hint=_render(script, step.id, step.hint, ctx, key, html),
        answers=tuple(RenderedAnswer(a.key, a.label.get(key), a.next, a.requires) for a in step.answers),
        capture=tuple(
            RenderedField(
                key=f.key,
                type=f.type,
                label=f.label.get(key),
                required=f.required,
                choices=tuple(RenderedChoice(c.key, c.label.get(key)) for c in f.choices),
                min=f.min,
                max=f.max,
            )
            for f in step.capture
        ),
        outcome=step.outcome,
    )


def render_notes(script: Script, ctx: ScriptContext, lang: str, *, html: bool = True) -> str:
    """The script's preparation notes (通话前准备) for ``ctx``, or "" when it has none."""
    return _render(script, "notes", script.notes, ctx, lang_key(lang), html)
