import shutil
import wave

import pytest

from callcenter.ivr import prompts
from callcenter.ivr.flow import load_flow


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
