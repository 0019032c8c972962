"""Branching talk scripts for agents (话术): YAML flows in scripts_templates/, rendered in a Jinja2 sandbox.

Public surface:
    load_script(path) -> Script, load_all(dir) -> dict[str, Script], loads_script(text, source)
    render_step(script, step_id, ctx, lang, *, html=True) -> RenderedStep, render_notes(script, ctx, lang)
    ScriptRun.start(script) / .answer(key, captured) / .finish(captured) / .end_early(outcome) / .back()
    ScriptRun.to_dict() / ScriptRun.from_dict(data, script)
    ScriptContext (+ ClientInfo, Holding, AgentInfo, CompanyInfo, CampaignInfo, EventInfo), ScriptContext.sample()
    check_paths(paths) -> (scripts, problems); find_forbidden(text)
"""

from callcenter.services.scripts.check import check_file, check_paths
from callcenter.domain.scripts.context import (
    AgentInfo,
    CampaignInfo,
    ClientInfo,
    CompanyInfo,
    EventInfo,
    Holding,
    ScriptContext,
    yuan_from_fen,
)
from callcenter.services.scripts.render import (
    RenderedAnswer,
    RenderedField,
    RenderedStep,
    ScriptRenderError,
    load_all,
    load_script,
    loads_script,
    render_notes,
    render_step,
)
from callcenter.domain.scripts.model import KINDS, OUTCOMES, Script, Step
from callcenter.services.scripts.problems import Problem, ScriptInvalid
from callcenter.domain.scripts.run import CaptureError, RunError, ScriptRun
from callcenter.domain.scripts.wording import FORBIDDEN_TERMS, find_forbidden

__all__ = [
    "FORBIDDEN_TERMS",
    "KINDS",
    "OUTCOMES",
    "AgentInfo",
    "CampaignInfo",
    "CaptureError",
    "ClientInfo",
    "CompanyInfo",
    "EventInfo",
    "Holding",
    "Problem",
    "RenderedAnswer",
    "RenderedField",
    "RenderedStep",
    "RunError",
    "Script",
    "ScriptContext",
    "ScriptInvalid",
    "ScriptRenderError",
    "ScriptRun",
    "Step",
    "check_file",
    "check_paths",
    "find_forbidden",
    "load_all",
    "load_script",
    "loads_script",
    "render_notes",
    "render_step",
    "yuan_from_fen",
]
