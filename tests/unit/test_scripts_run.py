"""ScriptRun (the pure state machine), captured-value validation, the sandbox and the context."""

from __future__ import annotations

import dataclasses
import functools
import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from callcenter.domain.scripts.context import ScriptContext, documented_fields, yuan_from_fen
from callcenter.services.scripts.render import ScriptRenderError, loads_script, render_step
from callcenter.domain.scripts.model import CaptureField, Text
from callcenter.domain.scripts.run import CaptureError, RunError, ScriptRun, validate_value

SCRIPT = """\
id: mini
kind: reminder
title: {zh: 测试, en: Test}
initial: ask
steps:
  - id: ask
    say: {zh: "您好{{ client.surname }}", en: "Hello {{ client.surname_latin }}"}
    capture:
      - key: score
        type: choice
        label: {zh: 分数, en: Score}
        required: true
        choices:
          - {key: "1", label: {zh: 一, en: One}}
          - {key: "2", label: {zh: 二, en: Two}}
      - key: when
        type: datetime
        label: {zh: 时间, en: When}
    answers:
      - key: book
        label: {zh: 约, en: Book}
        next: confirm
        requires: [when]
      - key: skip
        label: {zh: 跳过, en: Skip}
        next: done
  - id: confirm
    say: {zh: "{{ event.security_name }}", en: "{{ event.security_name }}"}
    capture:
      - key: amount
        type: number
        label: {zh: 金额, en: Amount}
        min: 0
        max: 1000
      - key: ok
        type: bool
        label: {zh: 同意, en: Agreed}
      - key: day
        type: date
        label: {zh: 日期, en: Day}
    answers:
      - key: again
        label: {zh: 重来, en: Again}
        next: ask
        loop: true
      - key: fine
        label: {zh: 好, en: Fine}
        next: done
  - id: done
    say: {zh: 再见, en: Bye}
    capture:
      - key: note
        type: text
        label: {zh: 记录, en: Note}
        max: 10
    outcome: completed
"""


@pytest.fixture()
def script():
    return loads_script(SCRIPT, "mini.yaml")


def test_walk_back_and_finish(script):
    run = ScriptRun.start(script)
    assert run.answer("book", {"score": "2", "when": "2024-06-03T09:30"}).id == "confirm"
    assert run.answer("again", {"amount": "1,000", "ok": "是", "day": "2024-06-04"}).id == "ask"
    # the second pass overwrites score; back() must restore the first value
    run.answer("skip", {"score": "1"})
    assert run.values["score"] == "1"
    assert run.back().id == "ask"
    assert run.values == {"score": "2", "when": "2024-06-03T09:30", "amount": "1000", "ok": True, "day": "2024-06-04"}
    run.answer("skip", {"score": "1"})
    assert run.finish({"note": "好"}) == "completed" and run.finished
    with pytest.raises(RunError) as info:
        run.answer("skip")
    assert info.value.code == "finished"
    run.back()  # undo the finish
    assert not run.finished and run.current == "done" and "note" not in run.values
    assert run.path() == ["ask", "confirm", "ask", "done"]


def test_capture_errors_name_each_field(script):
    run = ScriptRun.start(script)
    with pytest.raises(CaptureError) as info:
        run.answer("book", {"score": "9", "colour": "red"})
    assert info.value.errors == {"score": "bad_choice", "colour": "unknown_field", "when": "required"}
    with pytest.raises(CaptureError) as info:
        run.answer("skip", {})
    assert info.value.errors == {"score": "required"}
    assert run.current == "ask" and run.history == []  # nothing moved


def test_wrong_moves(script):
    run = ScriptRun.start(script)
    with pytest.raises(RunError) as info:
        run.answer("nope", {"score": "1"})
    assert info.value.code == "unknown_answer"
    with pytest.raises(RunError) as info:
        run.finish()
    assert info.value.code == "not_terminal"
    with pytest.raises(RunError) as info:
        run.back()
    assert info.value.code == "nothing_to_undo"
    run.answer("skip", {"score": "1"})
    with pytest.raises(RunError) as info:
        run.answer("skip")
    assert info.value.code == "is_terminal"


def test_end_early_records_an_outcome(script):
    run = ScriptRun.start(script)
    assert run.end_early("do_not_call") == "do_not_call" and run.finished
    with pytest.raises(RunError):
        ScriptRun.start(script).end_early("sold_something")


def test_round_trip_through_json(script):
    run = ScriptRun.start(script)
    run.answer("book", {"score": "2", "when": dt.datetime(2024, 6, 3, 9, 30)})
    data = json.loads(json.dumps(run.to_dict()))
    again = ScriptRun.from_dict(data, script)
    assert again.current == "confirm" and again.values == run.values and again.history == run.history
    assert again.back().id == "ask" and again.values == {}


def test_from_dict_refuses_foreign_or_stale_state(script):
    state = ScriptRun.start(script).to_dict()
    with pytest.raises(RunError) as info:
        ScriptRun.from_dict({**state, "script": "other"}, script)
    assert info.value.code == "script_mismatch"
    with pytest.raises(RunError) as info:
        ScriptRun.from_dict({**state, "current": "removed_step"}, script)
    assert info.value.code == "script_changed"


def _field(kind, **kw):
    return CaptureField(key="f", type=kind, label=Text("f", "f"), **kw)


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("text", "  你好 ", "你好"),
        ("date", "2024-02-29", "2024-02-29"),
        ("date", dt.date(2024, 1, 2), "2024-01-02"),
        ("datetime", "2024-06-03 14:30", "2024-06-03T14:30"),
        ("datetime", "2024-06-03T14:30:15", "2024-06-03T14:30:15"),
        ("number", "12.50", "12.5"),
        ("number", 7, "7"),
        ("number", Decimal("0.10"), "0.1"),
        ("bool", "on", True),
        ("bool", "否", False),
        ("text", "", None),
    ],
)
def test_values_are_normalised(kind, raw, expected):
    assert validate_value(_field(kind), raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw", "code"),
    [
        ("date", "2024-02-30", "bad_date"),
        ("datetime", "2024-06-03", "bad_datetime"),  # a time is required
        ("number", 1.5, "bad_number"),  # never float
        ("number", "abc", "bad_number"),
        ("number", "NaN", "bad_number"),
        ("bool", "maybe", "bad_bool"),
        ("text", 5, "bad_text"),
    ],
)
def test_bad_values_are_refused(kind, raw, code):
    with pytest.raises(ValueError) as info:
        validate_value(_field(kind), raw)
    assert str(info.value) == code


def test_number_bounds():
    with pytest.raises(ValueError, match="too_large"):
        validate_value(_field("number", min=1, max=5), "6")
    with pytest.raises(ValueError, match="too_small"):
        validate_value(_field("number", min=1, max=5), "0")


@functools.lru_cache(maxsize=1)
def _mini():
    return loads_script(SCRIPT, "mini.yaml")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["book", "skip", "again", "fine", "back", "finish"]), max_size=30))
def test_random_walks_keep_state_consistent(moves):
    """Whatever the agent clicks, the run stays on an existing step and survives a JSON round trip."""
    script = _mini()
    run = ScriptRun.start(script)
    captured = {"ask": {"score": "1", "when": "2024-06-03T10:00"}, "confirm": {"amount": "3"}, "done": {"note": "x"}}
    for move in moves:
        try:
            if move == "back":
                run.back()
            elif move == "finish":
                run.finish(captured[run.current])
            else:
                run.answer(move, captured[run.current])
        except RunError:
            pass
        assert run.current in script.steps
        assert (run.outcome is not None) == (bool(run.history) and run.history[-1]["outcome"] is not None)
        run = ScriptRun.from_dict(json.loads(json.dumps(run.to_dict())), script)
    while run.history:
        run.back()
    assert run.current == "ask" and run.values == {} and run.outcome is None


# --- sandbox -----------------------------------------------------------------------------------------
def _unchecked(say: str, kind: str = "other"):
    text = SCRIPT.replace('"您好{{ client.surname }}"', f'"{say}"').replace("kind: reminder", f"kind: {kind}")
    return loads_script(text, "x.yaml", check=False)


@pytest.mark.parametrize(
    "say",
    [
        "{{ ''.__class__ }}",
        "{{ client.__class__.__init__.__globals__ }}",
        "{{ client.holdings.__class__ }}",
    ],
)
def test_sandbox_refuses_internals(say):
    script = _unchecked(say)
    with pytest.raises(ScriptRenderError) as info:
        render_step(script, "ask", ScriptContext.sample(), "zh-CN")
    assert isinstance(info.value.__cause__, SecurityError)


def test_sandbox_refuses_mutation():
    script = _unchecked("{{ client.holdings.append(1) }}")
    with pytest.raises(ScriptRenderError) as info:
        render_step(script, "ask", ScriptContext.sample(), "zh-CN")
    assert isinstance(info.value.__cause__, SecurityError)


def test_missing_variable_is_an_error_not_blank_text():
    script = _unchecked("{{ client.wealth }}")
    with pytest.raises(ScriptRenderError):
        render_step(script, "ask", ScriptContext.sample(), "zh-CN")


def test_reminder_step_without_event_is_an_error(script):
    ctx = dataclasses.replace(ScriptContext.sample(), event=None)
    assert render_step(script, "ask", ctx, "en").text == "Hello Wang"
    with pytest.raises(ScriptRenderError):
        render_step(script, "confirm", ctx, "en")


def test_none_renders_empty_and_filters_format_money():
    script = _unchecked("{{ client.closed_reason }}|{{ client.total_assets|money }}|{{ client.month_change|signed_money }}")
    ctx = ScriptContext.sample()
    ctx = dataclasses.replace(ctx, client=dataclasses.replace(ctx.client, closed_reason=None, total_assets=yuan_from_fen(123456789)))
    assert render_step(script, "ask", ctx, "zh").text == "|1,234,567.89|-12,380.00"


def test_documented_fields_cover_the_context():
    names = documented_fields()
    for expected in ("client.honorific", "client.holdings[].market_value", "client.dormant_days", "agent.group", "company.hotline", "campaign.kind", "event.security_code"):
        assert expected in names
