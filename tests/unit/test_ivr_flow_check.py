"""`callcenter ivr check` / check_flow on broken flow files: right message, right line."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from callcenter.i18n import catalogue
from callcenter.commands.ivr import app
from callcenter.services.ivr.flow import FlowError, check_flow, load_flow

GOOD = """\
flow: mini
initial: menu
nodes:
  menu:
    type: menu
    say: [main_menu]
    options:
      "1": bye
      "0": agent
    transitions: {timeout: bye, invalid: bye}
  agent:
    type: handoff
    say: [transferring]
  bye:
    type: hangup
    say: [goodbye]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def messages(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in check_flow(write(tmp_path, text))]


def test_good_flow_and_hotline_pass(tmp_path):
    assert check_flow(write(tmp_path, GOOD)) == []
    assert check_flow("hotline") == []
    flow = load_flow("hotline")
    assert flow.initial == "welcome" and "main_menu" in flow.nodes


def test_unknown_target_is_reported_on_its_line(tmp_path):
    probs = messages(tmp_path, GOOD.replace('"1": bye', '"1": byebye'))
    assert (8, "node 'menu' key 1 goes to unknown node 'byebye'") in probs


def test_unreachable_node(tmp_path):
    probs = messages(tmp_path, GOOD.replace('"0": agent', '"0": bye'))
    assert (11, "node 'agent' is unreachable from 'menu'") in probs


def test_missing_prompt_text_names_the_language_file(tmp_path):
    probs = messages(tmp_path, GOOD.replace("[goodbye]", "[no_such_prompt]"))
    assert (16, "node 'bye': prompt 'no_such_prompt' has no zh-CN text in callcenter/locales/zh-CN/ivr.yaml") in probs
    assert any("no en text" in m for _, m in probs)


def test_bad_menu_key(tmp_path):
    probs = messages(tmp_path, GOOD.replace('"0": agent', '"10": agent'))
    assert any(line == 9 and "bad key '10'" in m for line, m in probs)


def test_input_node_needs_timeout_and_invalid(tmp_path):
    probs = messages(tmp_path, GOOD.replace("transitions: {timeout: bye, invalid: bye}", "transitions: {timeout: bye}"))
    assert (4, "node 'menu': an input node needs a 'invalid' transition") in probs


def test_missing_or_unknown_initial(tmp_path):
    assert (1, "missing 'initial' node") in messages(tmp_path, GOOD.replace("initial: menu\n", ""))
    assert (2, "initial node 'start' does not exist") in messages(tmp_path, GOOD.replace("initial: menu", "initial: start"))


def test_action_outcomes_must_all_be_handled(tmp_path):
    text = GOOD.replace('"1": bye', '"1": bal') + """\
  bal:
    type: action
    action: balances
    transitions: {ok: bye, nope: bye}
"""
    probs = messages(tmp_path, text)
    assert (17, "node 'bal': action 'balances' can end 'none' but has no such transition") in probs
    assert (20, "node 'bal': action 'balances' never ends 'nope'") in probs


def test_unknown_type_field_and_duplicate(tmp_path):
    text = GOOD.replace("    type: handoff\n", "    type: handof\n")
    assert any(line == 12 and "unknown type 'handof'" in m for line, m in messages(tmp_path, text))
    text = GOOD.replace("    say: [goodbye]\n", "    say: [goodbye]\n    colour: red\n")
    assert (17, "node 'bye': unknown field 'colour' for a hangup node") in messages(tmp_path, text)
    text = GOOD + "  bye:\n    type: hangup\n"
    assert (17, "node 'bye' defined twice") in messages(tmp_path, text)


def test_collect_limits(tmp_path):
    text = GOOD.replace('"1": bye', '"1": pin') + """\
  pin:
    type: collect
    say: [enter_pin]
    var: pin
    min_digits: 8
    max_digits: 6
    transitions: {done: bye, timeout: bye}
"""
    probs = messages(tmp_path, text)
    assert (17, "node 'pin': need 1 <= min_digits <= max_digits <= 32") in probs
    assert (17, "node 'pin': an input node needs a 'invalid' transition") in probs


def test_invalid_yaml_gives_a_line(tmp_path):
    probs = messages(tmp_path, GOOD.replace("    options:\n", "    options: [\n"))
    assert len(probs) == 1 and probs[0][1].startswith("not valid YAML") and probs[0][0] > 1


def test_load_flow_raises_with_every_problem(tmp_path):
    with pytest.raises(FlowError) as info:
        load_flow(write(tmp_path, GOOD.replace('"1": bye', '"1": nowhere')))
    assert "flow.yaml:8: node 'menu' key 1 goes to unknown node 'nowhere'" in str(info.value)


def test_cli_check(tmp_path):
    runner = CliRunner()
    bad = write(tmp_path, GOOD.replace('"1": bye', '"1": nowhere'))
    result = runner.invoke(app, ["check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:8: node 'menu' key 1 goes to unknown node 'nowhere'" in result.output
    ok = runner.invoke(app, ["check", "hotline"])
    assert ok.exit_code == 0 and "ok" in ok.output


def test_both_catalogues_have_the_same_ivr_keys():
    zh = {k for k in catalogue("zh-CN") if k.startswith("ivr.")}
    en = {k for k in catalogue("en") if k.startswith("ivr.")}
    assert zh == en and len(zh) > 40
