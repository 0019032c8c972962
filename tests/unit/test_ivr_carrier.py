"""The one carrier loop (issue 9): every carrier is driven by callcenter.services.ivr.carrier.drive, and a command a carrier
does not handle fails loudly, naming the command, instead of being dropped."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from callcenter.adapters.ivr import agi, textphone, twilio_voice
from callcenter.services.ivr.backend import demo_backend
from callcenter.services.ivr.carrier import HANDLERS, CallerGone, UnhandledCommand, drive_sync
from callcenter.services.ivr.flow import load_flow
from callcenter.domain.ivr.interpreter import (ActionResult, Collect, DigitsEntered, FlowRun, Record, RunAction, Say,
                                        SetLanguage, SetVariable)


class Recorder:
    """A carrier that speaks and collects but has no set_variable."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.said: list[str] = []
        self.records: list[str] = []

    def speak(self, cmd) -> None:  # type: ignore[no-untyped-def]
        self.said.append(getattr(cmd, "key", type(cmd).__name__))

    def collect(self, cmd: Collect):  # type: ignore[no-untyped-def]
        if not self.keys:
            raise CallerGone("caller_hangup")
        return DigitsEntered(self.keys.pop(0))

    def record(self, cmd: Record) -> None:
        self.records.append(cmd.step)

    def set_language(self, cmd: SetLanguage) -> None:
        pass


def test_a_command_the_carrier_lacks_raises_naming_it() -> None:
    session = FlowRun(load_flow("hotline"))
    with pytest.raises(UnhandledCommand, match="Recorder does not handle the command SetVariable"):
        drive_sync(session, [Say("ivr.welcome", "zh-CN"), SetVariable("X", "1")], Recorder([]))


def test_a_command_type_nobody_knows_raises() -> None:
    @dataclass(frozen=True)
    class Beep:
        pass

    with pytest.raises(UnhandledCommand, match="command Beep"):
        drive_sync(FlowRun(load_flow("hotline")), [Beep()], Recorder([]))  # type: ignore[list-item]


def test_the_loop_drives_the_session_and_records_the_hangup() -> None:
    session = FlowRun(load_flow("hotline"))
    carrier = Recorder(["1"])
    drive_sync(session, session.start(), carrier)
    assert carrier.said[:2] == ["ivr.welcome", "ivr.choose_language"]
    assert carrier.records[0] == "start" and carrier.records[-1] == "end"
    assert session.end_reason == "caller_hangup"


def test_a_decided_action_still_runs_after_the_caller_left() -> None:
    ran: list[str] = []

    class Gone(Recorder):
        def run_action(self, cmd: RunAction) -> ActionResult:
            ran.append(cmd.name)
            return ActionResult(cmd.name, "ok", {})

        def speak(self, cmd) -> None:  # type: ignore[no-untyped-def]
            raise CallerGone("connection_lost")

    session = FlowRun(load_flow("hotline"))
    session.start()
    session.feed(DigitsEntered("1"))
    session.feed(DigitsEntered("1234567890123456"))
    commands = session.feed(DigitsEntered("123456"))  # -> RunAction(authenticate)
    assert isinstance(commands[-1], RunAction)
    drive_sync(session, [Say("ivr.x", "zh-CN")] + commands, Gone([]))
    assert ran == ["authenticate"] and session.end_reason == "connection_lost"


@pytest.mark.parametrize("carrier, missing", [
    (agi.AgiCall, set()),
    (textphone._TextCarrier, set()),
    (twilio_voice._TwilioCarrier, {"set_variable"}),  # no channel variables on Twilio: refused loudly
])
def test_each_carrier_handles_every_command_but_the_ones_it_refuses(carrier, missing) -> None:  # type: ignore[no-untyped-def]
    assert {name for name in set(HANDLERS.values()) if not hasattr(carrier, name)} == missing


def test_twilio_carrier_refuses_a_set_variable() -> None:
    voice = twilio_voice._Voice(demo_backend(), load_flow("hotline"), "https://x", twilio_voice.InMemoryCallStateStore(),
                                None, "agents")
    session = FlowRun(load_flow("hotline"))
    with pytest.raises(UnhandledCommand, match="SetVariable"):
        drive_sync(session, [SetVariable("CC_X", "1")], twilio_voice._TwilioCarrier(voice, session, 0))
