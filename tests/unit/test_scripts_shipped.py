"""The talk scripts shipped in scripts_templates/: they load, check clean, render, and their branches walk."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from callcenter.services.scripts.check import check_paths
from callcenter.domain.scripts.context import EventInfo, ScriptContext
from callcenter.services.scripts.render import load_all, load_script, render_notes, render_step
from callcenter.domain.scripts.run import ScriptRun
from callcenter.domain.scripts.wording import find_forbidden

TEMPLATES = Path(__file__).resolve().parents[2] / "scripts_templates"
FILES = sorted(TEMPLATES.glob("*.yaml"))
REQUIRED_KINDS = {"win_back", "branch_prospect", "cold_call", "dormant", "satisfaction_callback", "reminder"}


@pytest.fixture(scope="module")
def scripts():
    return load_all(TEMPLATES)


def test_every_required_kind_is_shipped(scripts):
    assert REQUIRED_KINDS <= {s.kind for s in scripts.values()}


def test_checker_finds_nothing_in_shipped_scripts():
    scripts, problems = check_paths([TEMPLATES])
    assert [p.format("en") for p in problems] == []
    assert len(scripts) == len(FILES) >= 6


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_step_renders_with_the_sample(path, lang):
    script = load_script(path)
    ctx = ScriptContext.sample()
    assert render_notes(script, ctx, lang) or script.notes is None
    for step_id in script.steps:
        shown = render_step(script, step_id, ctx, lang)
        assert shown.text.strip(), step_id
        assert "{{" not in shown.text and "{%" not in shown.text
        assert all(a.label for a in shown.answers)
        assert all(f.label for f in shown.capture)
        # what is shown to the agent never contains forbidden wording either
        assert find_forbidden(shown.text) == []


def test_rendering_fills_client_data_and_escapes_html(scripts):
    ctx = ScriptContext.sample()
    evil = dataclasses.replace(ctx, client=dataclasses.replace(ctx.client, surname="<b>王</b>"))
    zh = render_step(scripts["win_back"], "opening", evil, "zh-CN")
    assert "&lt;b&gt;王&lt;/b&gt;先生" in zh.text
    assert "示例证券人民路营业部" in zh.text and "我姓张" in zh.text
    plain = render_step(scripts["win_back"], "opening", evil, "zh-CN", html=False)
    assert "<b>王</b>先生" in plain.text
    en = render_step(scripts["win_back"], "opening", ctx, "en")
    assert "Mr Wang" in en.text and "Example Securities" in en.text


def test_dormant_lists_the_holdings(scripts):
    shown = render_step(scripts["dormant"], "offer_review", ScriptContext.sample(), "zh-CN")
    assert "招商银行（600036）3000股、五粮液（000858）500股。" in shown.text


def test_reminder_renders_a_rights_issue(scripts):
    ctx = dataclasses.replace(
        ScriptContext.sample(),
        event=EventInfo(
            kind="rights_issue",
            security_code="600000",
            security_name="浦发银行",
            start_date=dt.date(2024, 7, 1),
            end_date=dt.date(2024, 7, 5),
            price=Decimal("6.12"),
            ratio="10配3",
        ),
    )
    shown = render_step(scripts["reminder"], "notify", ctx, "zh-CN")
    assert "配股比例10配3，配股价6.12元，缴款期是2024年7月1日至2024年7月5日" in shown.text
    assert "权证" not in shown.text


def test_branch_prospect_has_both_openings(scripts):
    prepare = scripts["branch_prospect"].step("prepare")
    assert {a.next for a in prepare.answers} == {"a_remember", "b_remember"}
    a = render_step(scripts["branch_prospect"], "a_remember", ScriptContext.sample(), "zh-CN").text
    b = render_step(scripts["branch_prospect"], "b_remember", ScriptContext.sample(), "zh-CN").text
    assert "还记得我吗" in a and "建设银行人民路支行跟您聊过股票的小张" in b


def test_win_back_walk_losses_to_booked_appointment(scripts):
    run = ScriptRun.start(scripts["win_back"])
    assert run.answer("listening").id == "why_left"
    assert run.answer("losses", {"leave_reason_detail": "去年亏了不少"}).id == "address_losses"
    assert run.answer("interested").id == "invite"
    assert run.answer("accepts").id == "fix_date"
    step = run.answer("booked", {"appointment_at": "2024-06-03T14:30", "appointment_type": "analyst_review"})
    assert step.id == "end_appointment" and run.at_terminal and not run.finished
    assert run.finish({"call_note": "周一下午来营业部"}) == "appointment_booked"
    assert run.values == {
        "leave_reason_detail": "去年亏了不少",
        "appointment_at": "2024-06-03T14:30",
        "appointment_type": "analyst_review",
        "call_note": "周一下午来营业部",
    }
    assert run.path() == ["opening", "why_left", "address_losses", "invite", "fix_date", "end_appointment"]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("service", "address_service"),
        ("losses", "address_losses"),
        ("commission", "address_commission"),
        ("moved", "address_moved"),
        ("other_broker", "ask_current_broker"),
        ("quit", "address_quit"),
    ],
)
def test_win_back_branches_per_reason(scripts, reason, expected):
    run = ScriptRun.start(scripts["win_back"])
    run.answer("listening")
    assert run.answer(reason).id == expected


def test_satisfaction_survey_walk_with_complaint(scripts):
    run = ScriptRun.start(scripts["satisfaction_callback"])
    run.answer("agrees")
    run.answer("dissatisfied", {"satisfaction": "2"})
    run.answer("wants_complaint", {"dissatisfaction_area": "hotline", "dissatisfaction_detail": "热线总打不通"})
    run.answer("recorded", {"complaint_text": "热线高峰期打不通", "reply_phone_ok": "true"})
    assert run.finish() == "complaint"
    assert run.values["satisfaction"] == "2" and run.values["reply_phone_ok"] is True


def test_every_shipped_outcome_is_reachable_by_some_walk(scripts):
    """Breadth-first over answers: every terminal step of every script is actually reached by ScriptRun."""
    for script in scripts.values():
        reached: set[str] = set()
        frontier = [ScriptRun.start(script).to_dict()]
        seen: set[str] = set()
        while frontier:
            state = frontier.pop()
            run = ScriptRun.from_dict(state, script)
            if run.current in seen:
                continue
            seen.add(run.current)
            if run.at_terminal:
                reached.add(run.current)
                continue
            for ans in run.step.answers:
                branch = ScriptRun.from_dict(run.to_dict(), script)
                values = {f.key: _sample_value(f) for f in branch.step.capture}
                branch.answer(ans.key, values)
                frontier.append(branch.to_dict())
        assert reached == {s.id for s in script.steps.values() if s.terminal}, script.id


def _sample_value(field):
    return {
        "text": "记录",
        "choice": field.choices[0].key if field.choices else "",
        "date": "2024-06-03",
        "datetime": "2024-06-03T10:00",
        "number": "1",
        "bool": "true",
    }[field.type]
