"""The dial template's placeholders (real-Asterisk issue item 5): carrier contexts that match ``_X.`` or national
numbers need the number without ``+`` or in national form; a template with an unknown field is refused."""

from __future__ import annotations

import pytest

from callcenter.settings import SettingsError, load_settings
from callcenter.ports.telephony import check_dial_template, dial_string


@pytest.mark.parametrize(("template", "number", "channel"), [
    ("PJSIP/{number}@trunk", "+8613912345678", "PJSIP/+8613912345678@trunk"),
    ("PJSIP/{digits}@trunk", "+8613912345678", "PJSIP/8613912345678@trunk"),
    ("PJSIP/{national}@trunk", "+8613912345678", "PJSIP/13912345678@trunk"),
    ("PJSIP/{national}@trunk", "+862195500", "PJSIP/02195500@trunk"),  # a Shanghai landline keeps its 0
    ("PJSIP/{national}@trunk", "13912345678", "PJSIP/13912345678@trunk"),  # already national
    ("Local/9{national}@out", "+14155550100", "Local/94155550100@out"),
])
def test_placeholders(template: str, number: str, channel: str) -> None:
    assert dial_string(template, number) == channel


@pytest.mark.parametrize("template", ["PJSIP/trunk", "PJSIP/{nmber}@trunk", "PJSIP/{number@trunk", "A/{0}", "P/{number}\r\nX"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        check_dial_template(template)


def test_the_setting_is_checked_with_the_same_rule() -> None:
    assert load_settings(ami_dial_template="PJSIP/{national}@trunk").ami_dial_template == "PJSIP/{national}@trunk"
    with pytest.raises(SettingsError, match="ami_dial_template"):
        load_settings(ami_dial_template="PJSIP/{nmber}@trunk")


def test_a_bad_number_never_reaches_the_template() -> None:
    with pytest.raises(ValueError):
        dial_string("PJSIP/{number}@trunk", "139;Hangup")
