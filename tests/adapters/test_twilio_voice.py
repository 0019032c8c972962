"""Twilio voice webhooks: signed requests drive the hotline, forged ones get 403, replays do nothing twice."""

import threading
import time
import warnings
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():  # this starlette asks for "httpx2" when the TestClient is imported with httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from callcenter.services.ivr.backend import demo_backend
from callcenter.services.ivr.flow import load_flow
from callcenter.adapters.ivr.twilio_voice import InMemoryCallStateStore, make_router

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://ivr.example.com"
SID = "CA0123456789abcdef0123456789abcdef"


@pytest.fixture
def backend():
    return demo_backend()


@pytest.fixture
def client(backend):
    app = FastAPI()
    # every action answered in its own webhook here (the wait path: the slow_client tests below)
    app.include_router(make_router(backend, load_flow("hotline"), TOKEN, PUBLIC, InMemoryCallStateStore(),
                                   action_inline_s=10))
    return TestClient(app)


def post(client, path, params, token=None, sign=True, signature=None, sign_url=None):
    url = PUBLIC + path
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign:
        headers["X-Twilio-Signature"] = signature or RequestValidator(TOKEN).compute_signature(sign_url or url, params)
    if token:
        headers["I-Twilio-Idempotency-Token"] = token
    return client.post(path, content=urlencode(params), headers=headers)


def step(client, n, digits=None, token=None):
    params = {"CallSid": SID, "From": "+8613912345678"}
    if digits is None:
        return post(client, f"/twilio/voice/input?step={n}&timeout=1", params, token)
    return post(client, f"/twilio/voice/input?step={n}", {**params, "Digits": digits}, token)


def start(client):
    return post(client, "/twilio/voice", {"CallSid": SID, "From": "+8613912345678"})


def test_start_returns_gather_with_chinese_say(client):
    r = start(client)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert '<Gather action="https://ivr.example.com/twilio/voice/input?step=0"' in r.text
    assert 'input="dtmf"' in r.text and 'numDigits="1"' in r.text
    assert '<Say language="zh-CN">您好，欢迎致电证券客户服务热线。' in r.text
    assert '<Redirect method="POST">https://ivr.example.com/twilio/voice/input?step=0&amp;timeout=1</Redirect>' in r.text


def test_forged_and_unsigned_requests_are_refused(client, backend):
    assert post(client, "/twilio/voice", {"CallSid": SID}, sign=False).status_code == 403
    assert post(client, "/twilio/voice", {"CallSid": SID}, signature="AAAAbogus=").status_code == 403
    # signed for another URL (e.g. an attacker's copy of the app) or with other parameters
    assert post(client, "/twilio/voice", {"CallSid": SID}, sign_url="https://evil.example.com/twilio/voice").status_code == 403
    good = RequestValidator(TOKEN).compute_signature(PUBLIC + "/twilio/voice", {"CallSid": SID})
    assert post(client, "/twilio/voice", {"CallSid": SID, "From": "x"}, signature=good).status_code == 403
    assert post(client, "/twilio/voice/status", {"CallSid": SID, "CallStatus": "completed"}, sign=False).status_code == 403
    assert backend.events == []


def login(client):
    start(client)
    step(client, 0, "1")
    step(client, 1, "1234567890123456")
    return step(client, 2, "123456")


def test_login_and_balances(client):
    r = login(client)
    assert "验证成功" in r.text and 'finishOnKey="#"' not in r.text
    r = step(client, 3, "1")
    assert "可用资金 一万二千三百四十五元六角" in r.text


def test_english_say_language(client):
    start(client)
    r = step(client, 0, "2")
    assert '<Say language="en-US">Please enter your fund account number' in r.text
    assert 'finishOnKey="#"' in r.text and 'numDigits="21"' in r.text


def test_timeout_redirect_reprompts(client):
    start(client)
    r = step(client, 0, None)
    assert "我们没有收到您的按键" in r.text and "step=1" in r.text


def test_transfer_confirm_replayed_moves_money_once(client, backend):
    login(client)
    step(client, 3, "3")
    step(client, 4, "1")
    step(client, 5, "2")
    r = step(client, 6, "1000*5")
    assert "一千元五角" in r.text and "确认请按1" in r.text
    first = step(client, 7, "1", token="tok-1")
    again_same_token = step(client, 7, "1", token="tok-1")
    again_new_token = step(client, 7, "1", token="tok-2")
    again_no_token = step(client, 7, "1")
    assert len(backend.transfers) == 1 and backend.transfers[0].amount_fen == 100050
    assert "转账成功" in first.text
    assert first.text == again_same_token.text == again_new_token.text == again_no_token.text
    assert backend.transfers[0].channel == "ivr-twilio"


def test_hangup_before_confirm_moves_nothing_and_status_is_recorded(client, backend):
    login(client)
    step(client, 3, "3")
    step(client, 4, "1")
    step(client, 5, "2")
    step(client, 6, "500#")
    r = post(client, "/twilio/voice/status", {"CallSid": SID, "CallStatus": "completed", "CallDuration": "42"})
    assert r.status_code == 204
    assert backend.transfers == []
    assert (SID, "twilio_status", {"CallStatus": "completed", "CallDuration": "42"}) in backend.events
    end = [d for cid, s, d in backend.events if s == "end"][0]
    assert end["reason"] == "twilio_completed" and end["node"] == "transfer_readback"
    # the call is over: a late or replayed confirm does nothing
    step(client, 7, "1")
    assert backend.transfers == []


def test_replayed_start_has_no_second_effect(client, backend):
    a = start(client)
    b = start(client)
    assert a.text == b.text
    assert [s for _, s, _ in backend.events].count("start") == 1


def test_handoff_parks_the_caller_for_the_call_core(client, backend):
    """No <Enqueue> to a queue nothing takes from: the caller is redirected to the telephony backend's parked
    webhook under the hand-off's call id (cc-h<IVR session id>), where the engine's call core finds them."""
    recorded = backend.record_event
    backend.record_event = lambda call_id, step, detail: (recorded(call_id, step, detail), 42)[1]
    login(client)
    r = step(client, 3, "0")
    assert "<Enqueue>" not in r.text
    assert f'<Redirect method="POST">{PUBLIC}/twilio/calls/cc-h000000000042/parked</Redirect>' in r.text


def test_handoff_without_a_record_hangs_up(client):
    login(client)
    r = step(client, 3, "0")
    assert "<Enqueue>" not in r.text and "<Hangup />" in r.text


def test_wrong_pins_hang_up(client, backend):
    start(client)
    step(client, 0, "1")
    n = 1
    for _ in range(3):
        step(client, n, "1234567890123456")
        r = step(client, n + 1, "000000")
        n += 2
    assert "<Hangup />" in r.text and "密码错误次数过多" in r.text


def test_type_ahead_every_prompt_before_a_question_is_inside_its_gather(client):
    """Issue 12: a key pressed during a prompt is taken, as on AGI: Twilio delivers keys only inside a <Gather>,
    so every <Say> of a response that asks something is nested in the <Gather> (none plays before it)."""
    import xml.etree.ElementTree as ET

    responses = [start(client), step(client, 0, "1"), step(client, 1, "1234567890123456"), step(client, 2, "123456")]
    for r in responses:
        root = ET.fromstring(r.text)
        gathers = root.findall("Gather")
        assert len(gathers) == 1, r.text
        assert root.findall("Say") == [] and gathers[0].findall("Say"), r.text


class SlowChecks:
    """The demo backend whose PIN checks wait until the test lets them go (bounded)."""

    def __init__(self, inner):
        self.inner, self.release, self.inside = inner, threading.Event(), threading.Event()

    def authenticate(self, *args):
        self.inside.set()
        assert self.release.wait(10), "never released"
        return self.inner.authenticate(*args)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def slow(backend):
    return SlowChecks(backend)


@pytest.fixture
def slow_client(slow):
    app = FastAPI()
    app.include_router(make_router(slow, load_flow("hotline"), TOKEN, PUBLIC, InMemoryCallStateStore(),
                                   action_inline_s=0.05))
    return TestClient(app)


def waits(twiml):
    return 'numDigits="32"' in twiml and "<Say" not in twiml


def until_done(client, n, slow, first):
    """Let the check go, then follow the wait's silence (as Twilio would) until the call goes on."""
    slow.release.set()
    r = first
    for _ in range(200):
        if not waits(r.text):
            return r, n
        time.sleep(0.02)
        r, n = step(client, n, None), n + 1
    raise AssertionError(r.text)


def test_keys_typed_during_a_slow_pin_check_answer_the_next_questions(slow_client, slow):
    """Issue 12: type-ahead on Twilio. The PIN's webhook is answered at once with "please wait" inside a
    <Gather>; keys typed meanwhile (menu 3 = transfer, account 1, direction 2, then the start of the amount) are
    kept over several webhooks; when the check is done the call goes on from them, and the amount's <Gather>
    takes the rest of the amount after the keys already typed."""
    start(slow_client)
    step(slow_client, 0, "1")
    step(slow_client, 1, "1234567890123456")
    r = step(slow_client, 2, "123456")
    assert slow.inside.wait(5)
    assert waits(r.text) is False and "请稍候" in r.text and 'numDigits="32"' in r.text and "step=3" in r.text
    r = step(slow_client, 3, "31")  # keys typed during "please wait" and the check
    assert waits(r.text) and "step=4" in r.text
    r = step(slow_client, 4, "210")
    r, n = until_done(slow_client, 5, slow, r)
    # the amount's question, its prompts cut by the keys (as on AGI), two keys of it typed already
    assert "<Say" not in r.text and 'finishOnKey="#"' in r.text and f"step={n}" in r.text
    assert 'numDigits="11"' in r.text  # the amount takes 13 keys at most: 2 are typed
    r = step(slow_client, n, "00*5")  # the rest of the amount: 10 typed ahead + 00*5
    assert "一千元五角" in r.text and "确认请按1" in r.text


def test_keys_typed_during_a_failed_pin_check_are_dropped(slow_client, slow):
    """After a wrong PIN the caller hears what went wrong: keys typed during the check do not skip it."""
    start(slow_client)
    step(slow_client, 0, "1")
    step(slow_client, 1, "1234567890123456")
    r = step(slow_client, 2, "000000")
    assert slow.inside.wait(5)
    r = step(slow_client, 3, "1")
    r, _ = until_done(slow_client, 4, slow, r)
    assert "有误" in r.text, r.text
    assert "可用资金" not in r.text


def test_an_action_whose_result_never_comes_is_an_error_for_the_caller(backend):
    """The process running the check died (its result never stored): after claim_stale_s the waiting webhooks
    take it as an error, the caller hears it, and nothing is run a second time."""
    store = InMemoryCallStateStore()
    now = [datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)]
    slow = SlowChecks(backend)
    app = FastAPI()
    app.include_router(make_router(slow, load_flow("hotline"), TOKEN, PUBLIC, store, action_inline_s=0.05,
                                   clock=lambda: now[0]))
    client = TestClient(app)
    start(client)
    step(client, 0, "1")
    step(client, 1, "1234567890123456")
    step(client, 2, "123456")
    assert slow.inside.wait(5)
    assert waits(step(client, 3, None).text)
    now[0] += timedelta(seconds=61)  # never released: the result will not come
    r = step(client, 4, None)
    assert not waits(r.text) and "<Say" in r.text and "验证成功" not in r.text
    slow.release.set()
