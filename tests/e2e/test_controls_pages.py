"""The screens of the call controls render for their roles: the call card's buttons, the wall board's monitoring
panel, in both languages, every label a sentence of the locale files."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.web.app import create_app
from tests.e2e.desk_world import build, connect_call, page_login

pytestmark = pytest.mark.db


@pytest.mark.parametrize("lang,hold,listen", [("zh-CN", "保持", "正在进行的通话"), ("en", "Hold", "Live calls")])
def test_the_card_has_the_call_controls_and_the_wall_board_the_monitoring(core: App, lang: str, hold: str,
                                                                          listen: str) -> None:
    world = build(core)
    pop = connect_call(core, world)
    c = TestClient(create_app(core), raise_server_exceptions=True)
    c.cookies.set("cc_lang", lang)
    page_login(c, "ag1")
    card = c.get(f"/agent/contacts/{pop['contact_id']}/card")
    assert card.status_code == 200 and 'id="call-controls"' in card.text and f">{hold}<" in card.text
    s = TestClient(create_app(core), raise_server_exceptions=True)
    s.cookies.set("cc_lang", lang)
    page_login(s, "sup1")
    board = s.get("/supervisor/wallboard")
    assert board.status_code == 200 and 'id="wb-live"' in board.text and listen in board.text
    live = s.get("/api/supervisor/live-calls").json()
    assert [x["agent_id"] for x in live] == [world.staff["ag1"]]
