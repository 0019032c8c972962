"""A second engine process for tests/db/test_pg_events.py: emits one ``AgentStateChanged`` through its own bus
and bridge, then exits. ``python -m tests.db.pg_events_worker <conninfo> <staff id> <state>``."""

from __future__ import annotations

import asyncio
import sys

from callcenter.adapters.pg_events import PgEventBridge
from callcenter.domain.events import AgentStateChanged
from callcenter.services.bus import EventBus


async def main(conninfo: str, staff_id: int, state: str) -> int:
    bus = EventBus()
    bridge = PgEventBridge(conninfo, bus)
    await bridge.start()
    try:
        if not await bridge.wait_listening(30):
            print("never connected:", bridge.state(), file=sys.stderr)
            return 2
        bus.emit(AgentStateChanged(staff_id=staff_id, state=state, reason="lunch", since="2026-11-25T02:30:00+00:00",
                                   attempt_id=42))
    finally:
        await bridge.aclose(drain_timeout_s=10)
    sent = bridge.counts["sent"]
    print(f"sent={sent}")
    return 0 if sent == 1 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
