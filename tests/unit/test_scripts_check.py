"""The checker catches each kind of problem, with the right file line, on small broken scripts."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from callcenter.services.scripts.check import check_file, check_paths
from callcenter.commands.scripts import app
from callcenter.services.scripts.render import load_script
from callcenter.services.scripts.problems import ScriptInvalid
from callcenter.domain.scripts.wording import find_forbidden

GOOD = """\
id: tiny
kind: cold_call
title: {zh: 小脚本, en: Tiny}
initial: hello
steps:
  - id: hello
    say:
      zh: |
        您好，{{ client.surname }}{{ client.honorific }}！
        我是{{ agent.name }}。
      en: "Hello {{ client.honorific_en }} {{ client.surname_latin }}"
    answers:
      - key: go_on
        label: {zh: 继续, en: "Go on"}
        next: done
  - id: done
    say: {zh: 再见, en: Goodbye}
    outcome: completed
"""


def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def codes(problems):
    return [(p.code, p.line) for p in problems]


def test_good_script_is_clean(tmp_path):
    script, problems = check_file(write(tmp_path, GOOD))
    assert problems == []
    assert script is not None and script.initial == "hello"


@pytest.mark.parametrize(
    "wording",
    [
        "本产品保本，请放心",
        "保　本",  # full-width space inside the term
        "稳 赚 不 赔",  # spaces between characters
        "保·证·收·益",
        "保證收益",  # traditional characters
        "零風險",
    ],
)
def test_forbidden_wording_variants_are_caught_with_their_line(tmp_path, wording):
    text = GOOD.replace("我是{{ agent.name }}。", f"我是{{{{ agent.name }}}}，{wording}。")
    _, problems = check_file(write(tmp_path, text))
    assert [p.code for p in problems] == ["forbidden_wording"]
    assert problems[0].line == 10


def test_forbidden_english_with_full_width_letters(tmp_path):
    text = GOOD.replace('"Hello {{', '"ＧＵＡＲＡＮＴＥＥＤ  returns, Hello {{')
    _, problems = check_file(write(tmp_path, text))
    assert [(p.code, p.line, p.params["term"]) for p in problems] == [("forbidden_wording", 11, "guaranteed returns")]


def test_wording_in_labels_and_comments_is_caught_too(tmp_path):
    text = GOOD.replace('label: {zh: 继续, en: "Go on"}', 'label: {zh: 包赚, en: "risk-free"}')
    _, problems = check_file(write(tmp_path, text))
    assert sorted(p.params["term"] for p in problems if p.code == "forbidden_wording") == ["risk-free", "包赚"]
    assert {p.line for p in problems} == {14}


def test_disclaimers_are_not_reported():
    assert find_forbidden("股市有风险，我们不承诺收益，也不保本。") == []
    assert find_forbidden("严禁承诺赔偿损失") == []
    assert find_forbidden("Returns are not guaranteed; there is no guaranteed return.") == []
    assert [h.term for h in find_forbidden("跟着我们稳赚不赔")] == ["稳赚不赔"]  # longest term wins, once


def test_undefined_variables(tmp_path):
    text = GOOD.replace("我是{{ agent.name }}。", "我是{{ agent.nickname }}，{{ balance }}，{% for h in client.holdings %}{{ h.price }}{% endfor %}")
    _, problems = check_file(write(tmp_path, text))
    found = [(p.code, p.line, p.params["name"]) for p in problems]
    assert found == [
        ("undefined_variable", 10, "AgentInfo.nickname"),
        ("undefined_variable", 10, "balance"),
        ("undefined_variable", 10, "Holding.price"),
    ]


def test_event_only_in_reminders(tmp_path):
    text = GOOD.replace("我是{{ agent.name }}。", "{{ event.security_name }}")
    _, problems = check_file(write(tmp_path, text))
    assert codes(problems) == [("event_outside_reminder", 10)]
    _, problems = check_file(write(tmp_path, text.replace("kind: cold_call", "kind: reminder")))
    assert problems == []


def test_template_syntax_error(tmp_path):
    text = GOOD.replace("我是{{ agent.name }}。", "我是{% if agent.name %}{{ agent.name }}")
    _, problems = check_file(write(tmp_path, text))
    assert [p.code for p in problems] == ["template_syntax"]
    assert problems[0].line >= 9


def test_unknown_filter_is_a_syntax_error(tmp_path):
    text = GOOD.replace("{{ agent.name }}", "{{ agent.name|shout }}")
    _, problems = check_file(write(tmp_path, text))
    assert [p.code for p in problems] == ["template_syntax"]


def test_unsafe_attribute(tmp_path):
    text = GOOD.replace("我是{{ agent.name }}。", "{{ ''.__class__ }}")
    _, problems = check_file(write(tmp_path, text))
    assert codes(problems) == [("unsafe_attribute", 10)]


def test_dangling_next_step(tmp_path):
    _, problems = check_file(write(tmp_path, GOOD.replace("next: done", "next: gone")))
    assert ("dangling_next", 13) in codes(problems)


def test_unreachable_step(tmp_path):
    text = GOOD + (
        "  - id: island\n"
        "    say: {zh: 孤岛, en: Island}\n"
        "    outcome: completed\n"
    )
    _, problems = check_file(write(tmp_path, text))
    assert codes(problems) == [("unreachable", 19)]


def test_step_that_cannot_reach_a_terminal(tmp_path):
    text = GOOD.replace("next: done", "next: spin") + (
        "  - id: spin\n"
        "    say: {zh: 转圈, en: Spin}\n"
        "    answers:\n"
        "      - {key: again, label: {zh: 再来, en: Again}, next: spin, loop: true}\n"
    )
    _, problems = check_file(write(tmp_path, text))
    # hello only leads into the endless spin; done is no longer reachable
    assert codes(problems) == [("no_terminal_path", 6), ("unreachable", 16), ("no_terminal_path", 19)]


def test_loops_must_be_marked(tmp_path):
    text = GOOD.replace(
        "        next: done\n",
        "        next: done\n      - key: repeat\n        label: {zh: 再说一遍, en: Repeat}\n        next: hello\n",
    )
    _, problems = check_file(write(tmp_path, text))
    assert codes(problems) == [("unmarked_loop", 16)]
    _, problems = check_file(write(tmp_path, text.replace("next: hello\n", "next: hello\n        loop: true\n")))
    assert problems == []


def test_duplicate_answer_keys_and_steps(tmp_path):
    text = GOOD.replace(
        "        next: done\n",
        "        next: done\n      - key: go_on\n        label: {zh: 继续, en: Again}\n        next: done\n",
    )
    text += "  - id: done\n    say: {zh: 又一个, en: Another}\n    outcome: completed\n"
    _, problems = check_file(write(tmp_path, text))
    assert codes(problems) == [("duplicate_answer", 16), ("duplicate_step", 22)]


def test_shape_problems(tmp_path):
    text = GOOD.replace("outcome: completed", "outcome: sold").replace('en: "Go on"', "en: ").replace("kind: cold_call", "kind: spam")
    text = text.replace("    answers:\n", "    colour: red\n    answers:\n")
    _, problems = check_file(write(tmp_path, text))
    assert {p.code for p in problems} == {"bad_kind", "bad_outcome", "missing_translation", "unknown_key"}


def test_bare_yes_key_is_refused(tmp_path):
    # YAML 1.1 reads a bare yes as the boolean true
    _, problems = check_file(write(tmp_path, GOOD.replace("key: go_on", "key: yes")))
    schema = [p for p in problems if p.code == "schema"]
    assert len(schema) == 1 and "quote" in schema[0].params["detail"] and schema[0].line == 13


def test_yaml_syntax_error(tmp_path):
    _, problems = check_file(write(tmp_path, GOOD.replace("title: {zh: 小脚本, en: Tiny}", "title: {zh: 小脚本, en: Tiny")))
    assert [p.code for p in problems] == ["yaml_syntax"]


def test_load_script_refuses_a_broken_script(tmp_path):
    path = write(tmp_path, GOOD.replace("我是{{ agent.name }}。", "保本"))
    with pytest.raises(ScriptInvalid) as info:
        load_script(path)
    assert [p.code for p in info.value.problems] == ["forbidden_wording"]
    assert load_script(path, check=False).id == "tiny"


def test_duplicate_script_ids_across_files(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    scripts, problems = check_paths([tmp_path])
    assert list(scripts) == ["tiny"] and [p.code for p in problems] == ["schema"]


def test_cli_check_exit_codes_and_output(tmp_path):
    runner = CliRunner()
    good = write(tmp_path, GOOD, "good.yaml")
    result = runner.invoke(app, ["check", str(good), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "1 talk script file(s), 0 problem(s)" in result.output

    bad = write(tmp_path, GOOD.replace("我是{{ agent.name }}。", "保 证 收 益 {{ client.wealth }}").replace("id: tiny", "id: bad"), "bad.yaml")
    result = runner.invoke(app, ["check", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:10: [forbidden_wording]" in result.output
    assert f"{bad}:10: [undefined_variable]" in result.output and "ClientInfo.wealth" in result.output
    assert "2 个话术文件，发现 2 个问题" in result.output


def test_cli_check_default_directory_is_clean():
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 0, result.output


# --- issue 13: live scripts always complete -----------------------------------------------------------
def test_a_field_real_calls_lack_is_a_gap_reported_with_its_line_and_words(tmp_path):
    """A cold-call lead has no ``met_at``: the sample context fills it, a real call would read out a gap."""
    text = GOOD.replace("我是{{ agent.name }}。", "我是{{ agent.name }}，前几天在{{ client.met_at }}见过您。")
    script, problems = check_file(write(tmp_path, text))
    gaps = [p for p in problems if p.code == "blank_on_live_call"]
    assert [p.line for p in gaps] == [10]  # the line of the gap, inside the block
    assert "前几天在▒见过您" in gaps[0].params["context"]
    message = gaps[0].message("zh-CN")
    assert "名单线索" in message and "blank_on_live_call" not in message and "lead" not in message
    assert "a lead, no client record" in gaps[0].message("en")


def test_a_guarded_optional_field_and_the_fields_live_calls_have_pass(tmp_path):
    text = GOOD.replace("我是{{ agent.name }}。",
                        "我是{{ client.service_group }}的{{ agent.name }}（{{ agent.group }}）"
                        "{% if client.met_at %}，前几天在{{ client.met_at }}见过您{% endif %}。")
    script, problems = check_file(write(tmp_path, text))
    assert problems == []


def test_reminder_scripts_are_rendered_for_every_event_kind_with_only_the_stored_fields(tmp_path):
    text = GOOD.replace("kind: cold_call", "kind: reminder").replace(
        "我是{{ agent.name }}。", "{% if event.kind == 'warrant_expiry' %}行权价{{ event.price|money }}元{% endif %}")
    _, problems = check_file(write(tmp_path, text))
    assert [p.code for p in problems] == ["blank_on_live_call"]  # only the warrant shape reaches the price


def test_every_shipped_script_renders_without_gaps_on_live_shaped_calls():
    from callcenter.shipped import shipped_dir

    _, problems = check_paths([shipped_dir("scripts_templates")])
    assert [p for p in problems if p.code == "blank_on_live_call"] == []
