"""Channels with no network: SMS through the twilio library with its http_client swapped for a fake, and
agentless notification calls through the simulated PBX on a virtual clock."""

from __future__ import annotations

import json
from datetime import date
from urllib.parse import parse_qs

from sqlalchemy import select
from twilio.http import HttpClient
from twilio.http.response import Response

from callcenter.services.care.dispatch import apply_sms_status, run_daily_reminders
from callcenter.services.care.events import EventInput, add_event, import_events_csv
from callcenter.services.care.notify_calls import MAX_ATTEMPTS, NotificationCaller
from callcenter.services.care.sms import make_sms_sender
from callcenter.settings import load_settings
from callcenter.store.db import run_in_transaction
from callcenter.store.models.care import CareCallback, CareDelivery, CareEvent, CareRule
from callcenter.adapters.telephony.simulated import SimulatedPbx, VirtualClock
from tests.db.test_care_support import client_holding, mobile_of, utc

SID = "AC" + "0" * 32


class FakeTwilioHttp(HttpClient):
    def __init__(self, refuse: set[str] | None = None) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.requests: list[dict] = []
        self.refuse = refuse or set()

    def request(self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False):  # type: ignore[no-untyped-def]
        self.requests.append({"method": method, "uri": uri, "data": dict(data or {})})
        if (data or {}).get("To") in self.refuse:
            return Response(400, json.dumps({"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}))
        n = len(self.requests)
        return Response(201, json.dumps({"sid": f"SM{n:032d}", "account_sid": SID, "status": "queued",
                                         "to": data.get("To"), "body": data.get("Body")}))


def test_sms_through_the_twilio_library_without_network(core):
    ok = client_holding(core, birthday=date(1980, 4, 1))
    bad = client_holding(core, birthday=date(1981, 4, 1), language="en", gender="F")
    settings = load_settings(database_url="sqlite:///:memory:", sms_backend="twilio", twilio_account_sid=SID,
                             twilio_auth_token="secret-token", twilio_from_number="+15005550006",
                             twilio_public_url="https://cc.example.com/")
    http = FakeTwilioHttp(refuse={mobile_of(core, bad)})
    sender = make_sms_sender(settings, http_client=http)
    report = run_daily_reminders(core, date(2026, 4, 1), sms=sender, now=utc(2026, 4, 1))
    assert (report.sent, report.failed) == (1, 1)
    assert {r["uri"] for r in http.requests} == {f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"}
    sent = {r["data"]["To"]: r["data"] for r in http.requests}
    assert sent[mobile_of(core, ok)]["From"] == "+15005550006"
    assert sent[mobile_of(core, ok)]["StatusCallback"] == "https://cc.example.com/twilio/sms/status"
    assert "生日快乐" in sent[mobile_of(core, ok)]["Body"]
    assert sent[mobile_of(core, bad)]["Body"].startswith("[Client Service Centre] Dear Ms")
    rows = {r.client_id: r for r in run_in_transaction(core.sessions, lambda s: list(s.scalars(select(CareDelivery))))}
    assert rows[ok].status == "sent" and rows[ok].provider_ref.startswith("SM")
    assert rows[bad].status == "failed" and "21211" in rows[bad].detail
    assert apply_sms_status(core, rows[ok].provider_ref, "undelivered")
    assert run_in_transaction(core.sessions, lambda s: s.get(CareDelivery, rows[ok].id).status) == "failed"
    # a second run sends nothing more through Twilio
    before = len(http.requests)
    run_daily_reminders(core, date(2026, 4, 1), sms=sender, now=utc(2026, 4, 1, 6))
    assert len(http.requests) == before


def _notify_rule(core) -> None:  # type: ignore[no-untyped-def]
    run_in_transaction(core.sessions, lambda s: s.add(CareRule(
        name="行权语音", kind="event", event_kind="warrant_exercise", days_before=1, channel="notify_call",
        priority=1, active=True)))


async def test_notification_calls_play_repeat_agent_and_retry(core):
    listener = client_holding(core, {"580001": 1000})
    wants_agent = client_holding(core, {"580001": 500})
    busy = client_holding(core, {"580001": 200})
    _notify_rule(core)
    add_event(core.sessions, EventInput("warrant_exercise", "580001", date(2026, 3, 10), "某某权证"), utc(2026, 3, 1))
    report = run_daily_reminders(core, date(2026, 3, 9), sms=None, now=utc(2026, 3, 9))  # type: ignore[arg-type]
    assert report.queued_calls == 3 and report.sent == 0

    vclock = VirtualClock()
    pbx = SimulatedPbx(clock=vclock, outcomes={mobile_of(core, listener): "human",
                                                mobile_of(core, wants_agent): "human", mobile_of(core, busy): "busy"})
    await pbx.start()
    core.settings.notify_zero = "callback"  # "0" books a call back when nobody is ready (nobody is)
    caller = NotificationCaller(core, pbx, caller_id="95500")
    assert await caller.place_due(utc(2026, 3, 9, 2)) == 3
    assert await caller.place_due(utc(2026, 3, 9, 2)) == 0  # already dialling: never twice
    ids = {d.client_id: d.id for d in run_in_transaction(core.sessions, lambda s: list(s.scalars(select(CareDelivery))))}

    async def pump() -> None:
        for event in pbx.stream.pending():
            await caller.handle(event)

    vclock.advance(13)  # everyone answers (12 s) or is busy (3 s)
    await pump()
    agent_call = f"care-{ids[wants_agent]}-1"
    listen_call = f"care-{ids[listener]}-1"
    assert pbx.calls[agent_call].state == pbx.calls[listen_call].state == "answered"
    agent_side = pbx.calls[agent_call]  # (the PBX forgets a call once it has ended)
    await caller.on_digit(listen_call, "1")  # hear it again
    await caller.on_digit(agent_call, "0")  # nobody free: an agent call-back is booked, the call ends
    vclock.advance(60)
    await pump()
    rows = {d.client_id: d for d in run_in_transaction(core.sessions, lambda s: list(s.scalars(select(CareDelivery))))}
    assert (rows[listener].status, rows[listener].detail) == ("answered", "plays=2")
    assert rows[wants_agent].status == "to_agent"
    assert rows[busy].status == "pending" and rows[busy].attempts == 1 and "busy" in rows[busy].detail
    cbs = run_in_transaction(core.sessions, lambda s: list(s.scalars(select(CareCallback))))
    assert [(c.client_id, c.purpose, c.script_id) for c in cbs] == [(wants_agent, "reminder", "reminder")]
    # told before the call ended: the message, then "all our agents are busy, we will call you back"
    assert agent_side.prompts == [f"cc/care/notify-{ids[wants_agent]}", "cc/zh-CN/handoff_sorry"]
    # the busy client is retried after RETRY_AFTER, then given up
    assert await caller.place_due(utc(2026, 3, 9, 2, 10)) == 0
    assert await caller.place_due(utc(2026, 3, 9, 3)) == 1
    vclock.advance(10)
    await pump()
    final = run_in_transaction(core.sessions, lambda s: s.get(CareDelivery, ids[busy]))
    assert (final.status, final.attempts) == ("failed", MAX_ATTEMPTS)
    assert await caller.place_due(utc(2026, 3, 9, 6)) == 0
    assert caller.flows == {}
    await pbx.aclose()


def test_csv_import_stores_and_reimport_changes_nothing(core):
    text = ("kind,code,name,event_date,price,ratio\n"
            "配股,600000,浦发银行,2026-03-10,8.50,10配3\n"
            "bad,1,x,nope,,\n")
    first = import_events_csv(core.sessions, text, utc(2026, 3, 1))
    again = import_events_csv(core.sessions, text, utc(2026, 3, 1))
    changed = import_events_csv(core.sessions, text.replace("8.50", "8.80"), utc(2026, 3, 2))
    assert (first.created, first.unchanged, len(first.errors)) == (1, 0, 1)
    assert (again.created, again.unchanged) == (0, 1) and changed.updated == 1
    [ev] = run_in_transaction(core.sessions, lambda s: list(s.scalars(select(CareEvent))))
    assert (ev.kind, ev.security_name, str(ev.price), ev.ratio) == ("rights_issue", "浦发银行", "8.8000", "10配3")
