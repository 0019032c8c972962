"""Which phone an agent sits at (real-Asterisk issue item 2): the extension or dial string they give at login,
else the extension an admin set, through the ``agent_phone_template`` setting."""

from __future__ import annotations

import pytest

from callcenter.settings import SettingsError, load_settings
from callcenter.ports.telephony import agent_phone


@pytest.mark.parametrize(("given", "extension", "phone"), [
    ("", "1004", "PJSIP/1004"),  # the admin's extension
    ("1007", "1004", "PJSIP/1007"),  # the agent sits elsewhere today
    ("Local/4@sim-agent-phones", "1004", "Local/4@sim-agent-phones"),  # a whole dial string
    (" 1008 ", "", "PJSIP/1008"),
    ("", "", None),  # nobody said
])
def test_phone_from_login_or_extension(given: str, extension: str, phone: str | None) -> None:
    assert agent_phone("PJSIP/{extension}", given=given, extension=extension, staff_id=4) == phone


def test_the_template_may_name_the_staff_id() -> None:
    assert agent_phone("Local/{staff_id}@cc-agents", given="", extension="1004", staff_id=4) == "Local/4@cc-agents"


@pytest.mark.parametrize("given", ["10 04", "1004;Hangup", "PJSIP/1004\r\nAction: Originate"])
def test_a_bad_phone_is_refused(given: str) -> None:
    with pytest.raises(ValueError):
        agent_phone("PJSIP/{extension}", given=given, extension="", staff_id=4)


def test_the_setting_refuses_unknown_placeholders() -> None:
    assert load_settings(agent_phone_template="SIP/{extension}").agent_phone_template == "SIP/{extension}"
    with pytest.raises(SettingsError, match="agent_phone_template"):
        load_settings(agent_phone_template="PJSIP/{ext}")
