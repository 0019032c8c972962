"""What the desk says of a live call's hold and mute (``desk.fold_controls``): the call core's bookkeeping of the
controls it carried out, replayed in order."""

from __future__ import annotations

import pytest

from callcenter.services.desk import fold_controls


@pytest.mark.parametrize(("kinds", "expected"), [
    ([], (False, False)),
    (["hold"], (True, False)),
    (["hold", "mute"], (True, True)),
    (["hold", "mute", "resume"], (False, True)),
    (["mute", "unmute", "hold", "resume"], (False, False)),
    (["consult"], (True, False)),  # the caller waits on hold while the agent consults
    (["consult", "consult_cancel"], (False, False)),
    (["consult", "conference"], (False, False)),
    (["mute", "transfer"], (False, False)),  # a transfer lets the call go: unmuted
    (["hold", "mute", "transfer_ivr"], (False, False)),
    (["hold", "dtmf", "listen"], (True, False)),  # others change neither
])
def test_the_controls_carried_out_decide_hold_and_mute(kinds: list[str], expected: tuple[bool, bool]) -> None:
    assert fold_controls(kinds) == expected
