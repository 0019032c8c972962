"""The Twilio hotline plays the rendered prompt files (``<Play>`` of their signed URLs, the files AGI streams),
and falls back to ``<Say>`` only for what no file renders."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI

from callcenter.adapters.ivr.prompt_files import PromptFiles, PromptSigner
from callcenter.adapters.ivr.twilio_voice import InMemoryCallStateStore, make_router, prompt_names
from callcenter.domain.ivr.interpreter import Say, SayAmount, SayDigits, SayText
from callcenter.services.ivr.backend import demo_backend
from callcenter.services.ivr.flow import load_flow
from callcenter.web.routes.prompts import make_router as prompts_router
from tests.adapters.test_twilio_voice import PUBLIC, TOKEN, TestClient, start, step


def app_with(files: PromptFiles) -> TestClient:
    signer = PromptSigner(PUBLIC, b"prompt-key-for-tests")
    app = FastAPI()
    app.include_router(make_router(demo_backend(), load_flow("hotline"), TOKEN, PUBLIC, InMemoryCallStateStore(),
                                   prompt_files=files, prompt_signer=signer))
    app.include_router(prompts_router(files, signer))
    return TestClient(app)


def plays(twiml: str) -> tuple[list[str], list[str]]:
    root = ET.fromstring(twiml)
    return [e.text or "" for e in root.iter("Play")], [e.text or "" for e in root.iter("Say")]


def test_the_hotline_plays_the_rendered_prompts_and_their_urls_return_audio(tmp_path: Path) -> None:
    client = app_with(PromptFiles(tmp_path / "prompts"))
    r = start(client)
    urls, says = plays(r.text)
    assert says == [] and urls, r.text
    root = ET.fromstring(r.text)
    assert [e.tag for e in root] == ["Gather", "Redirect"] and root[0].findall("Play")  # type-ahead kept
    assert all(u.startswith(f"{PUBLIC}/prompts/") and u.endswith(".wav") for u in urls)
    assert any(u.endswith("/cc/zh-CN/welcome.wav") for u in urls), urls
    for url in urls:  # what Twilio fetches: the file rendered on demand, cacheable
        got = client.get(urlsplit(url).path)
        assert got.status_code == 200 and got.content[:4] == b"RIFF"
        assert got.headers["content-type"] == "audio/wav" and "max-age" in got.headers["cache-control"]
    assert (tmp_path / "prompts" / "zh-CN" / "welcome.wav").exists()  # the same tree prompts build writes


def test_an_amount_is_played_as_its_number_files(tmp_path: Path) -> None:
    client = app_with(PromptFiles(tmp_path / "prompts"))
    start(client)
    step(client, 0, "1")
    step(client, 1, "1234567890123456")
    step(client, 2, "123456")
    urls, says = plays(step(client, 3, "1").text)
    assert says == [], says
    assert any(u.endswith("/cc/zh-CN/num_wan.wav") for u in urls), urls  # 一万二千... from the token files


class _ToolsMissing(PromptFiles):
    def ensure(self, name: str) -> Path | None:
        raise RuntimeError("espeak-ng and sox not found")


def test_without_the_speech_tools_the_words_are_said(tmp_path: Path) -> None:
    r = start(app_with(_ToolsMissing(tmp_path / "prompts")))
    urls, says = plays(r.text)
    assert urls == [] and any("欢迎致电" in s for s in says), r.text


def test_what_no_file_says_is_said() -> None:
    assert prompt_names(SayText("今日公告：……", "zh-CN")) is None  # free text
    assert prompt_names(Say("ivr.welcome", "zh-CN", params={"x": "1"})) is None  # words filled in at run time
    assert prompt_names(Say("ivr.welcome", "en")) == ["cc/en/welcome"]
    assert prompt_names(SayDigits("95", "zh-CN")) == ["cc/zh-CN/num_d9", "cc/zh-CN/num_d5"]
    assert prompt_names(SayAmount(100, "en")) is not None


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_digit_names_are_prompt_names_the_files_know(lang: str, tmp_path: Path) -> None:
    files = PromptFiles(tmp_path)
    for name in prompt_names(SayDigits("0123456789", lang)) or []:
        assert files.path_of(name) is not None, name
