"""The fake Asterisks of ``callcenter bench agi``, run in their own process (so the server's figures do not include
the clients' CPU time): reads a JSON spec on stdin, places the calls, prints one JSON object of measurements.

Spec: ``{"host", "port", "concurrency", "calls": [{"inputs": [...], "uniqueid": "...", "callerid": "..."}]}``.  Per call it reports
the AGI turnarounds, and for the PIN: ``pin_wait_s`` (from the PIN's GET DATA answer to the command that plays the
outcome: auth_ok / wrong_credentials / ...) and ``silence_s`` (from that answer to the first sound the caller hears:
"please wait" or the outcome)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from callcenter.adapters.ivr.fake_asterisk import FakeCall, run_fake_call

OUTCOMES = ("/auth_ok", "/wrong_credentials", "/account_locked", "/too_many_attempts", "/system_busy")
SOUNDS = ("STREAM FILE", "SAY DIGITS", "SAY NUMBER")


def measure(call: FakeCall) -> dict[str, Any]:
    commands = [c for _, c in call.timeline]
    out: dict[str, Any] = {"turnarounds": call.turnarounds, "commands": len(commands),
                           "balances_read": any("/available" in c for c in commands),  # 可用资金 was read
                           "please_wait": any("/please_wait" in c for c in commands)}
    pin = next((i for i, c in enumerate(commands) if c.startswith("GET DATA") and "/enter_pin" in c), None)
    if pin is not None and pin < len(call.answered_at):
        typed = call.answered_at[pin]
        outcome = next((t for t, c in call.timeline[pin + 1:] if any(o in c for o in OUTCOMES)), None)
        sound = next((t for t, c in call.timeline[pin + 1:] if c.startswith(SOUNDS)), None)
        out["pin_wait_s"] = None if outcome is None else outcome - typed
        out["silence_s"] = None if sound is None else sound - typed
    return out


async def place(spec: dict[str, Any]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(int(spec["concurrency"]))
    results: list[dict[str, Any]] = []

    async def one(c: dict[str, Any]) -> None:
        async with gate:
            call = await run_fake_call(spec["host"], int(spec["port"]), FakeCall(list(c["inputs"]),
                                                                                uniqueid=c.get("uniqueid", ""),
                                                                                callerid=c.get("callerid", "13912345678")),
                                       timeout_s=float(spec.get("timeout_s", 300)))
            results.append(measure(call))

    async with asyncio.TaskGroup() as group:
        for c in spec["calls"]:
            group.create_task(one(c))
    return results


def main() -> None:
    spec = json.loads(sys.stdin.read())
    results = asyncio.run(place(spec))
    sys.stdout.write(json.dumps({"calls": results}) + "\n")


if __name__ == "__main__":
    main()
