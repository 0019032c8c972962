"""The regulatory call-back (回访) and birthday greeting talk scripts: they check clean, render in both
languages, and their walks capture what client care needs (the five REGULATORY_TOPICS, under care's keys)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callcenter.services.care.callbacks import REGULATORY_TOPICS, callbacks_of, record_callback_result
from callcenter.services.care.regulatory import NEW_ACCOUNT_SCRIPT, build_regulatory_callbacks
from callcenter.services.scripts.check import check_paths
from callcenter.commands.scripts import app as scripts_app
from callcenter.domain.scripts.context import ScriptContext
from callcenter.services.scripts.render import load_script, render_notes, render_step
from callcenter.domain.scripts.run import ScriptRun
from callcenter.domain.scripts.wording import find_forbidden
from callcenter.store.db import run_in_transaction
from callcenter.store.models import Client
from tests.factories import make_client

TEMPLATES = Path(__file__).resolve().parents[2] / "scripts_templates"
REGULATORY = TEMPLATES / "regulatory_callback.yaml"
BIRTHDAY = TEMPLATES / "birthday_greeting.yaml"


@pytest.fixture(scope="module")
def regulatory():
    return load_script(REGULATORY)


@pytest.fixture(scope="module")
def birthday():
    return load_script(BIRTHDAY)


def test_both_scripts_pass_the_checker_and_the_cli():
    scripts, problems = check_paths([REGULATORY, BIRTHDAY])
    assert [p.format("en") for p in problems] == []
    assert {s.id: s.kind for s in scripts.values()} == {"regulatory_callback": "satisfaction_callback",
                                               "birthday_greeting": "birthday"}
    result = CliRunner().invoke(scripts_app, ["check", str(REGULATORY), str(BIRTHDAY), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "checked 2 talk script file(s), 0 problem(s)" in result.output


def test_care_builds_call_backs_with_this_script_id(regulatory):
    assert regulatory.id == NEW_ACCOUNT_SCRIPT == "regulatory_callback"


@pytest.mark.parametrize("path", [REGULATORY, BIRTHDAY], ids=lambda p: p.stem)
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_step_renders_with_the_sample(path, lang):
    script = load_script(path)
    ctx = ScriptContext.sample()
    notes = render_notes(script, ctx, lang)
    assert notes and "{{" not in notes
    for step_id in script.steps:
        shown = render_step(script, step_id, ctx, lang, html=False)
        assert shown.text.strip() and "{{" not in shown.text and "{%" not in shown.text, step_id
        assert all(a.label for a in shown.answers) and all(f.label for f in shown.capture)
        assert find_forbidden(shown.text) == []
        if lang == "en":  # the second language is really there, not the Chinese fallback
            zh = render_step(script, step_id, ctx, "zh-CN", html=False).text
            assert shown.text != zh, step_id
            if script.step(step_id).terminal:
                assert "goodbye" in shown.text.lower(), step_id


def test_regulatory_opening_and_identity_wording(regulatory):
    ctx = ScriptContext.sample()
    opening = render_step(regulatory, "opening", ctx, "zh-CN", html=False).text
    assert "王建国先生本人" in opening and "示例证券" in opening and "录音" in opening
    identity = render_step(regulatory, "verify_identity", ctx, "zh-CN", html=False).text
    assert "身份证号码的最后四位" in identity and "不会以任何方式向您询问交易密码" in identity
    en = render_step(regulatory, "verify_identity", ctx, "en", html=False).text
    assert "never ask you for your trading password" in en


def test_no_step_records_a_password_or_pin(regulatory, birthday):
    for script in (regulatory, birthday):
        for step in script.steps.values():
            for fld in step.capture:
                words = f"{fld.key} {fld.label.zh} {fld.label.en}".lower()
                assert not any(w in words for w in ("password", "pin", "密码", "验证码")), (script.id, fld.key)


def test_each_topic_is_a_required_field_on_every_path_to_a_finished_call_back(regulatory):
    """Each topic is captured (required) at exactly one step, and every step before the two endings that
    count as a finished call-back (completed, complaint) goes through all five."""
    owners = {}
    for step in regulatory.steps.values():
        for fld in step.capture:
            if fld.key in REGULATORY_TOPICS:
                assert fld.required, fld.key
                owners[fld.key] = step.id
    assert set(owners) == set(REGULATORY_TOPICS)
    assert [owners[t] for t in REGULATORY_TOPICS] == ["verify_identity", "q_account", "q_operator", "q_risk",
                                                      "q_discretionary"]


def _walk_clean(script) -> ScriptRun:
    run = ScriptRun.start(script)
    assert run.answer("agrees").id == "verify_identity"
    assert run.answer("verified", {"identity": "confirmed"}).id == "q_account"
    assert run.answer("all_known", {"opened_in_person": "是", "account_changes": "none"}).id == "q_operator"
    assert run.answer("self", {"operator": "self"}).id == "q_risk"
    assert run.answer("understood", {"risk_disclosure": "explained_understood"}).id == "q_discretionary"
    return run


def test_full_walk_captures_the_five_topics(regulatory):
    run = _walk_clean(regulatory)
    assert run.answer("none", {"discretionary_trading": "none"}).id == "q_complaints"
    assert run.answer("none").id == "end_completed"
    assert run.finish({"call_note": "回访完成"}) == "completed"
    assert {t: run.values[t] for t in REGULATORY_TOPICS} == {
        "identity": "confirmed",
        "account_changes": "none",
        "operator": "self",
        "risk_disclosure": "explained_understood",
        "discretionary_trading": "none",
    }
    assert run.values["opened_in_person"] is True
    # what care checks before it records a regulatory call-back as done
    assert [t for t in REGULATORY_TOPICS if t not in run.values] == []
    json.dumps(run.values)  # stored as JSON by care


def test_reported_discretionary_trading_ends_as_a_complaint_with_all_topics(regulatory):
    run = ScriptRun.start(regulatory)
    run.answer("agrees")
    run.answer("verified", {"identity": "confirmed"})
    run.answer("all_known", {"opened_in_person": True, "account_changes": "by_client"})
    assert run.answer("staff", {"operator": "staff"}).id == "operator_staff"
    assert run.answer("recorded", {"operator_detail": "客户经理李某，去年起代为买卖"}).id == "q_risk"
    assert run.answer("unclear", {"risk_disclosure": "not_explained"}).id == "risk_explain"
    assert run.answer("done", {"risk_explained_on_call": "true"}).id == "q_discretionary"
    assert run.answer("reported", {"discretionary_trading": "both"}).id == "conduct_report"
    with pytest.raises(ValueError):  # the report itself must be written down
        run.answer("recorded", {})
    assert run.answer("recorded", {"conduct_detail": "去年5月李某说收益包他身上", "reply_phone_ok": "true"}).id == "end_complaint"
    assert run.finish() == "complaint"
    assert run.path()[-2:] == ["conduct_report", "end_complaint"]
    assert all(t in run.values for t in REGULATORY_TOPICS)
    assert run.values["discretionary_trading"] == "both" and run.values["operator"] == "staff"


def test_a_failed_identity_check_ends_without_the_topics(regulatory):
    run = ScriptRun.start(regulatory)
    run.answer("agrees")
    assert run.answer("not_verified", {"identity": "mismatch"}).id == "end_not_verified"
    assert run.finish() == "wrong_number"
    assert [t for t in REGULATORY_TOPICS if t not in run.values] == list(REGULATORY_TOPICS[1:])


def test_topic_fields_refuse_values_care_would_not_understand(regulatory):
    run = ScriptRun.start(regulatory)
    run.answer("agrees")
    with pytest.raises(ValueError):
        run.answer("verified", {"identity": "maybe"})
    with pytest.raises(ValueError):
        run.answer("verified", {})  # identity is required
    assert run.current == "verify_identity"


def test_irregular_account_is_recorded_and_the_call_back_goes_on(regulatory):
    run = ScriptRun.start(regulatory)
    run.answer("agrees")
    run.answer("verified", {"identity": "confirmed"})
    step = run.answer("irregular", {"opened_in_person": "false", "account_changes": "unknown_to_client"})
    assert step.id == "account_irregular"
    assert run.answer("recorded", {"account_irregularity_detail": "手机号被改过，本人不知情"}).id == "q_operator"
    assert run.values["opened_in_person"] is False


@pytest.mark.db
def test_care_accepts_the_walks_answers_for_a_new_account(core, clock):
    """End to end with the real care service: the values a finished walk captured are what
    record_callback_result demands; a walk stopped at the identity check is refused."""
    cid, _ = make_client(core, accounts=[(0, 0)])

    def opened(s):  # type: ignore[no-untyped-def]
        s.get(Client, cid).opened_on = date(2026, 3, 2)

    run_in_transaction(core.sessions, opened)
    clock.now = datetime(2026, 3, 10, 2, 0, tzinfo=timezone.utc)
    assert build_regulatory_callbacks(core, date(2026, 3, 10)).new_accounts == 1
    [cb] = callbacks_of(core, cid)
    assert cb.script_id == "regulatory_callback"

    stopped = ScriptRun.start(load_script(REGULATORY))
    stopped.answer("agrees")
    stopped.answer("not_verified", {"identity": "refused"})
    with pytest.raises(ValueError, match="account_changes"):
        record_callback_result(core, cb.id, "done", stopped.values, staff_id=None)

    run = _walk_clean(load_script(REGULATORY))
    run.answer("none", {"discretionary_trading": "none"})
    run.answer("none")
    run.finish()
    record_callback_result(core, cb.id, "done", run.values, staff_id=None)
    [done] = callbacks_of(core, cid)
    assert done.status == "done"


# --- birthday greeting ---------------------------------------------------------------------------------


def test_birthday_opening_wishes_from_the_service_group(birthday):
    ctx = ScriptContext.sample()
    zh = render_step(birthday, "opening", ctx, "zh-CN", html=False).text
    assert "示例证券第三服务小组的张明" in zh and "生日快乐" in zh
    en = render_step(birthday, "opening", ctx, "en", html=False).text
    assert "Mr Wang" in en and "happy birthday" in en


def test_birthday_client_wanting_fewer_calls_ends_do_not_call(birthday):
    run = ScriptRun.start(birthday)
    assert run.answer("thanks").id == "care"
    assert run.answer("all_fine").id == "ask_contact"
    with pytest.raises(ValueError):  # the wish must be recorded
        run.answer("fewer_calls", {})
    assert run.answer("fewer_calls", {"wants_fewer_calls": "是", "preferred_channel": "sms"}).id == "end_do_not_call"
    assert run.finish() == "do_not_call"
    assert run.values == {"wants_fewer_calls": True, "preferred_channel": "sms"}


def test_birthday_client_objecting_at_once_ends_do_not_call(birthday):
    run = ScriptRun.start(birthday)
    assert run.answer("no_calls").id == "end_do_not_call"
    assert run.finish() == "do_not_call"


def test_birthday_optional_review_is_booked_only_with_a_time(birthday):
    run = ScriptRun.start(birthday)
    run.answer("thanks")
    assert run.answer("wants_review").id == "book_review"
    with pytest.raises(ValueError):
        run.answer("booked", {"review_channel": "phone"})  # no appointment time
    assert run.answer("booked", {"appointment_at": "2026-09-15T10:00", "review_channel": "branch"}).id == "end_review"
    assert run.finish() == "appointment_booked"
    assert run.values["appointment_at"] == "2026-09-15T10:00"


def test_birthday_happy_path_completes(birthday):
    run = ScriptRun.start(birthday)
    run.answer("thanks")
    assert run.answer("has_issue").id == "note_issue"
    assert run.answer("recorded", {"issue_text": "交易软件登录慢"}).id == "ask_contact"
    assert run.answer("calls_ok", {"wants_fewer_calls": False}).id == "end_completed"
    assert run.finish() == "completed"
    assert run.values["wants_fewer_calls"] is False
