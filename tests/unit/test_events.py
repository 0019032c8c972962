"""Typed live events on the bus: ``emit`` delivers each event to its topics as its payload, the payload reads
back as the same event (``from_payload``), anything else is an ``EventError``; with a bridge attached ``emit``
also hands the event over (``deliver`` never does); the bridge's notification text round-trips and refuses
garbage."""

from __future__ import annotations

import asyncio
import json

import pytest

from callcenter.adapters.pg_events import MAX_PAYLOAD_BYTES, PgEventBridge, conninfo_from_url, decode, encode
from callcenter.domain.events import (
    EVENT_TYPES,
    AgentStateChanged,
    AttemptEnded,
    BenchPing,
    CampaignChanged,
    Event,
    EventError,
    PreviewOffered,
    from_payload,
)
from callcenter.services.bus import EventBus

STATE = AgentStateChanged(staff_id=7, state="paused", reason="lunch", since="2026-11-25T02:30:00+00:00",
                          attempt_id=42)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Event] = []

    def send(self, event: Event) -> None:
        self.sent.append(event)


def drain(*subs: object) -> list[list[tuple[str, dict[str, object]]]]:
    out = []
    for sub in subs:
        items = []
        while not sub.queue.empty():  # type: ignore[attr-defined]
            items.append(sub.queue.get_nowait())  # type: ignore[attr-defined]
        out.append(items)
    return out


async def test_emit_delivers_to_every_topic_of_the_event_and_only_there() -> None:
    bus = EventBus()
    async with bus.subscribe("agent:7") as agent, bus.subscribe("wallboard") as board, \
            bus.subscribe("agent:8") as other, bus.subscribe("calls") as calls:
        bus.emit(STATE)
        bus.emit(AttemptEnded(attempt_id=1, campaign_id=2, lead_id=3, outcome="no_answer", abandoned=False))
        got_agent, got_board, got_other, got_calls = drain(agent, board, other, calls)
    assert [topic for topic, _ in got_agent] == ["agent:7"]
    assert [(topic, e["type"]) for topic, e in got_board] == [("wallboard", "agent_state"),
                                                               ("wallboard", "attempt_ended")]
    assert got_other == [] and [e["type"] for _, e in got_calls] == ["attempt_ended"]
    # every delivery carries the bus's sequence number and topic; the payload reads back as the same event
    assert from_payload(got_agent[0][1]) == STATE and from_payload(got_board[0][1]) == STATE
    assert got_agent[0][1]["seq"] < got_board[0][1]["seq"] < got_board[1][1]["seq"]


def test_every_event_type_round_trips_through_its_payload() -> None:
    samples: dict[str, Event] = {
        "agent_state": STATE, "campaign": CampaignChanged(3, "running"), "bench": BenchPing(1, 2, 0.5),
        "preview": PreviewOffered(staff_id=1, lead_id=2, campaign_id=3, client_id=None, name="张三",
                                  phone="13800000000", attempt_no=1),
    }
    for name, cls in EVENT_TYPES.items():
        event = samples.get(name)
        if event is None:  # the others: every field an int (or the type's own default)
            import dataclasses

            event = cls(**{f.name: 1 for f in dataclasses.fields(cls)})
        payload = event.to_payload()
        assert payload["type"] == name == cls.type
        assert from_payload(json.loads(json.dumps(payload))) == event, name
        assert event.topics(), name


@pytest.mark.parametrize("payload, message", [
    ({"type": "no_such_event", "x": 1}, "unknown event type 'no_such_event'"),
    ({"campaign_id": 1}, "unknown event type None"),
    ({"type": "campaign"}, "bad campaign event"),
    ({"type": "agent_state", "state": "ready"}, "bad agent_state event"),
])
def test_from_payload_refuses_what_is_not_an_event(payload: dict[str, object], message: str) -> None:
    with pytest.raises(EventError, match=message):
        from_payload(payload)


async def test_emit_hands_the_event_to_an_attached_bridge_and_deliver_does_not() -> None:
    bus, bridge = EventBus(), Recorder()
    bus.attach(bridge)
    async with bus.subscribe("wallboard") as board:
        bus.emit(CampaignChanged(1, "paused"))
        bus.deliver(CampaignChanged(2))  # an event from another process: local subscribers only
        got = drain(board)[0]
    assert [from_payload(e) for _, e in got] == [CampaignChanged(1, "paused"), CampaignChanged(2)]
    assert bridge.sent == [CampaignChanged(1, "paused")]
    bus.attach(None)
    bus.emit(CampaignChanged(3))
    assert len(bridge.sent) == 1


async def test_emit_threadsafe_delivers_on_the_loop() -> None:
    bus = EventBus()
    async with bus.subscribe("agent:7") as agent:
        await asyncio.to_thread(bus.emit_threadsafe, STATE)
        _, got = await asyncio.wait_for(agent.__anext__(), 5)
    assert from_payload(got) == STATE


def test_publish_stays_local_even_with_a_bridge() -> None:
    bus, bridge = EventBus(), Recorder()
    bus.attach(bridge)
    bus.publish("wallboard", {"type": "campaign", "campaign_id": 1})
    assert bridge.sent == []


def test_the_notification_text_round_trips_and_refuses_garbage() -> None:
    text = encode(STATE, "host:1:ab")
    assert json.loads(text)["topics"] == ["agent:7", "wallboard"]
    assert decode(text) == ("host:1:ab", STATE)
    for bad in ("nonsense", "[1]", '{"origin": "x"}', '{"origin": 1, "event": {"type": "campaign", "campaign_id": 1}}',
                '{"origin": "x", "event": {"type": "nope"}}'):
        with pytest.raises(EventError):
            decode(bad)


async def test_the_bridge_sends_nothing_too_big_or_not_json_safe() -> None:
    bus = EventBus()
    bridge = PgEventBridge("postgresql://unused", bus)  # never started: send only enqueues
    bridge.send(CampaignChanged(1))
    bridge.send(PreviewOffered(staff_id=1, lead_id=2, campaign_id=3, client_id=None, name="张" * 2700,
                               phone="1", attempt_no=1))
    bridge.send(BenchPing(1, 2, float("nan")))
    assert bridge.state()["queued"] == 1
    assert (bridge.counts["too_big"], bridge.counts["not_json_safe"]) == (1, 1)
    assert len(encode(PreviewOffered(staff_id=1, lead_id=2, campaign_id=3, client_id=None, name="张" * 2600,
                                     phone="1", attempt_no=1), bridge.origin).encode()) <= MAX_PAYLOAD_BYTES


def test_conninfo_from_a_sqlalchemy_url() -> None:
    assert conninfo_from_url("postgresql+psycopg://u:p@h:5432/d") == "postgresql://u:p@h:5432/d"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        conninfo_from_url("sqlite:///x.db")
