"""The wall board's "parts" line (hardening finding 2): each engine part and its state, in the page's language,
with the reason when a part is down; the same line is in the live snapshot the board refreshes itself from."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.web.app import create_app
from callcenter.web.pages.common import parts_line
from tests.e2e.desk_world import World, build, page_login

pytestmark = pytest.mark.db


@pytest.fixture
def world(core: App) -> World:
    return build(core)


def board(core: App) -> None:
    core.parts.set("web", "running")
    core.parts.set("fastagi", "running")
    core.parts.set("dialler", "restarting",
                   error="AMI login refused by 127.0.0.1:5038 (Authentication failed; check ami_username / ami_secret)")


def test_wallboard_page_shows_the_parts_line_in_chinese(core: App, world: World) -> None:
    board(core)
    client = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(client, "sup1")
    html = client.get("/supervisor/wallboard").text
    assert "系统组件" in html and "网页服务 运行中" in html and "自助语音 运行中" in html
    assert "外呼拨号 重启中 (AMI login refused by 127.0.0.1:5038" in html


def test_live_snapshot_parts_in_english_and_unknown_parts_by_name(core: App) -> None:
    board(core)
    core.parts.set("bank", "running")
    core.parts.set("pricing", "running")
    line = {p["name"]: p for p in parts_line(core, "en", ZoneInfo("Asia/Shanghai"))}
    assert (line["dialler"]["label"], line["dialler"]["state_label"]) == ("Dialler", "restarting")
    assert line["dialler"]["error"].startswith("AMI login refused") and line["dialler"]["since"].startswith("since ")
    assert line["bank"]["label"] == "Depository bank" and line["pricing"]["label"] == "pricing"
    assert line["web"]["error"] == ""


def test_no_parts_line_outside_the_runtime(core: App, world: World) -> None:
    client = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(client, "sup1")
    assert 'id="wb-parts" hidden' in client.get("/supervisor/wallboard").text
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["parts"] == {}
