"""The world of the live hand-off test (tests/live/test_live_handoff.py) and of its replays
(tests/adapters/test_live_captures.py): built the same way on a fresh database, so the ids the recordings hold --
the agent's staff id (its room ``agent-<id>``, its phone ``Local/<id>@sim-agent-phones``), the IVR session id in
the hand-off's call id ``cc-h<id>`` -- are the ids of the replay too."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction
from callcenter.store.models import FundAccount
from tests.factories import make_client, make_group, make_staff

ACCOUNT, PIN = "390000000100", "246810"
# the caller: language 1 (中文), account, PIN; "0" (agent) is keyed later, once the main menu plays
KEYS, AGENT_KEY = f"1{ACCOUNT}#{PIN}#", "0"
AGENT_KEY_AFTER_S = 8.0


@dataclass(frozen=True)
class HandoffWorld:
    staff_id: int
    client_id: int

    @property
    def phone(self) -> str:
        return f"Local/{self.staff_id}@sim-agent-phones"


def build_handoff_world(core: App) -> HandoffWorld:
    group = make_group(core, "热线组")
    staff_id = make_staff(core, "hot1", "pw-hot-1", "agent", group_id=group)
    client_id, [number] = make_client(core, accounts=[(100_00, 0)], group_id=group, pin=PIN)

    def fixed(s) -> None:  # type: ignore[no-untyped-def]
        s.query(FundAccount).filter(FundAccount.account_no == number).one().account_no = ACCOUNT

    run_in_transaction(core.sessions, fixed)
    return HandoffWorld(staff_id, client_id)
