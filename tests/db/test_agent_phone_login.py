"""An agent's dialler session dials the phone they sit at: given at login, else their extension; a real PBX
refuses a login with neither, in a sentence (real-Asterisk issue item 2: the dial string was hard-coded
``Local/<staff id>@cc-agents`` and the extension ignored)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from callcenter.bootstrap import bootstrap
from callcenter.services.dialer import campaigns as dialer
from callcenter.i18n import t
from callcenter.services import desk
from callcenter.settings import load_settings
from callcenter.store.db import transaction
from callcenter.store.models.core import Staff
from callcenter.store.models.dialer import AgentSession
from tests.factories import make_group, make_staff


def phone_of(core, staff_id: int) -> str:  # type: ignore[no-untyped-def]
    with transaction(core.sessions) as s:
        return s.scalars(select(AgentSession.phone).where(AgentSession.staff_id == staff_id)).one()


@pytest.fixture
def real_pbx(db_url: str, clock, bank_sim):  # type: ignore[no-untyped-def]
    core = bootstrap(load_settings(database_url=db_url, telephony_backend="asterisk",
                                   agent_phone_template="PJSIP/{extension}"), clock=clock, bank=bank_sim.client())
    yield core
    core.close()


def test_extension_given_at_login_else_the_admins(real_pbx) -> None:  # type: ignore[no-untyped-def]
    core = real_pbx
    g = make_group(core, "一组")
    a, b = make_staff(core, "a1", "pw-a1-0000", "agent", group_id=g), make_staff(core, "a2", "pw-a2-0000", "agent", group_id=g)
    with transaction(core.sessions) as s:
        s.get(Staff, a).extension = "1004"
    dialer.agent_login(core, a)
    assert phone_of(core, a) == "PJSIP/1004"
    dialer.agent_login(core, b, phone="1010")
    assert phone_of(core, b) == "PJSIP/1010"


def test_a_real_pbx_refuses_an_agent_with_no_phone(real_pbx) -> None:  # type: ignore[no-untyped-def]
    core = real_pbx
    c = make_staff(core, "a3", "pw-a3-0000", "agent", group_id=make_group(core, "二组"))
    with pytest.raises(desk.DeskError) as refused:
        desk.set_state(core, c, "paused", "break")
    assert refused.value.code == "no_phone" and refused.value.status == 422
    assert "分机" in t("api.no_phone", "zh-CN")
    with pytest.raises(desk.DeskError) as bad:
        desk.set_state(core, c, "paused", "break", phone="10;04")
    assert bad.value.code == "bad_phone"
    desk.set_state(core, c, "paused", "break", phone="1011")
    assert phone_of(core, c) == "PJSIP/1011"


def test_the_simulated_pbx_needs_no_phone(core) -> None:  # type: ignore[no-untyped-def]
    d = make_staff(core, "a4", "pw-a4-0000", "agent", group_id=make_group(core, "三组"))
    dialer.agent_login(core, d)
    assert phone_of(core, d) == f"Local/{d}@cc-agents"
