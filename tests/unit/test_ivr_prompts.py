import shutil
import wave

import pytest

from callcenter.adapters.ivr import prompts
from callcenter.services.ivr.flow import load_flow


def test_every_prompt_and_number_piece_has_a_file_name():
    zh = prompts.prompt_texts("zh-CN")
    assert zh["welcome"].startswith("您好") and zh["bank_icbc"] == "中国工商银行"
    assert zh["num_wan"] == "万" and zh["num_d0"] == "零"
    en = prompts.prompt_texts("en")
    assert en["num_forty"] == "forty" and en["num_yuan"] == "yuan"
    flow = load_flow("hotline")
    keys = {item.value for node in flow.nodes.values() for item in node.say if item.kind == "key"}
    assert {k for k in keys if k not in zh} == set()


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng/sox not installed")
def test_build_renders_8khz_mono_wav_once(tmp_path):
    report = prompts.build(tmp_path, ("zh-CN",), only={"welcome", "num_wan"})
    assert sorted(p.name for p in report.built) == ["num_wan.wav", "welcome.wav"]
    with wave.open(str(tmp_path / "zh-CN" / "welcome.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2) and w.getnframes() > 4000
    again = prompts.build(tmp_path, ("zh-CN",), only={"welcome", "num_wan"})
    assert again.built == [] and again.unchanged == 2


def test_missing_tools_are_named(monkeypatch):
    monkeypatch.setattr(prompts.shutil, "which", lambda tool: None)
    with pytest.raises(prompts.PromptToolsMissing, match="espeak-ng and sox not found.*apt-get install espeak-ng sox"):
        prompts.check_tools()


def test_outbound_prompts_say_who_calls_and_the_number_to_call_back():
    firm = prompts.Company("华夏证券", "Huaxia Securities", "400-888-1234")
    zh = prompts.prompt_texts("zh-CN", firm)
    assert "华夏证券" in zh["outbound_safe_harbour"] and "四零零八八八一二三四" in zh["outbound_safe_harbour"]
    assert "华夏证券" in zh["outbound_leave_message"] and "四零零八八八一二三四" in zh["outbound_leave_message"]
    en = prompts.prompt_texts("en", firm)
    assert "Huaxia Securities" in en["outbound_safe_harbour"] and "four zero zero" in en["outbound_safe_harbour"]
    assert all("{" not in text for text in (*zh.values(), *en.values()))  # every placeholder filled
    default = prompts.prompt_texts("zh-CN")  # without settings: the settings' defaults
    assert "示例证券" in default["outbound_safe_harbour"] and "九五五零零" in default["outbound_safe_harbour"]


def test_prompts_build_cli_takes_the_firm_from_the_settings(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from callcenter.commands.prompts import app

    seen = {}

    def fake_build(out, langs, only=None, company=None, progress=None):
        seen.update(out=out, langs=langs, company=company)
        progress(1, 1)  # the command hands the build its progress bar
        return prompts.BuildReport([], 0)

    monkeypatch.setattr(prompts, "build", fake_build)
    monkeypatch.setenv("CALLCENTER_COMPANY_NAME", "华夏证券")
    monkeypatch.setenv("CALLCENTER_COMPANY_HOTLINE", "95566")
    result = CliRunner().invoke(app, ["--out", str(tmp_path)])  # its one command
    assert result.exit_code == 0, result.output
    assert seen["company"].name == "华夏证券" and seen["company"].hotline == "95566"


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="espeak-ng/sox not installed")
def test_build_puts_the_diallers_prompts_at_the_top_of_the_tree(tmp_path):
    """The dialler plays cc/safe-harbour and cc/leave-message: with the tree copied to <sounds>/cc/ they exist."""
    from callcenter.services.dialer.engine import MACHINE_PROMPT, SAFE_HARBOUR_PROMPT

    wanted = {"outbound_safe_harbour", "outbound_leave_message"}
    report = prompts.build(tmp_path, ("en", "zh-CN"), only=wanted)
    for name in (SAFE_HARBOUR_PROMPT, MACHINE_PROMPT):
        stem = name.removeprefix("cc/")
        top = tmp_path / f"{stem}.wav"
        assert top in report.built
        # in the default language (Chinese), whatever order the languages were given in
        assert top.read_bytes() == (tmp_path / "zh-CN" / f"{prompts.prompt_stem(prompts.OUTBOUND_PROMPTS[stem])}.wav").read_bytes()
        with wave.open(str(top)) as w:
            assert (w.getframerate(), w.getnchannels()) == (8000, 1)
    again = prompts.build(tmp_path, ("en", "zh-CN"), only=wanted)
    assert again.built == []
    en_only = prompts.build(tmp_path / "en-only", ("en",), only=wanted)
    assert (tmp_path / "en-only" / "safe-harbour.wav") in en_only.built
