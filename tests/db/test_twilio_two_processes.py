"""Hardening finding 9: Twilio de-duplication must hold across web processes on one database.

Two app instances (two ``bootstrap`` objects, two ``create_app``) on the same database play two web processes
behind a load balancer. Twilio re-delivers a webhook (same ``I-Twilio-Idempotency-Token``, same CallSid and
step) to the other process while the first is still working on it, and again after: one effect, one answer.
And an IVR action still at work in one process (answered at once with a ``<Gather>`` that keeps the caller's
keys) is taken up by the next webhook wherever it lands: its result is in the database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from callcenter.bootstrap import bootstrap
from callcenter.settings import load_settings
from callcenter.store.models import IvrStep, Transfer
from callcenter.web.app import create_app
from tests.factories import make_client

TOKEN = "two-process-token-0123456789abcdef"
PIN = "135790"
SID = "CAtwoprocesstwoprocesstwoprocess00"


class Gate:
    """Wraps a backend: counts PIN checks; the gated one holds its check until released (bounded)."""

    def __init__(self, inner, gated: bool) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.gated = gated
        self.inside = threading.Event()
        self.release = threading.Event()
        self.checks = 0

    def authenticate(self, *args):  # type: ignore[no-untyped-def]
        self.checks += 1
        if self.gated:
            self.inside.set()
            assert self.release.wait(10), "never released"
        return self.inner.authenticate(*args)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def post(api: TestClient, public: str, path: str, params: dict[str, str], token: str | None = None) -> str:
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(public + path, params)}
    if token:
        headers["I-Twilio-Idempotency-Token"] = token
    r = api.post(path, content=urlencode(params), headers=headers)
    assert r.status_code == 200, r.text
    return r.text


def step(api: TestClient, public: str, n: int, digits: str, token: str | None = None) -> str:
    return post(api, public, f"/twilio/voice/input?step={n}", {"CallSid": SID, "From": "+8613912345678",
                                                               "Digits": digits}, token)


@contextmanager
def two_processes(settings, clock, bank_sim) -> Iterator[tuple]:  # type: ignore[no-untyped-def,type-arg]
    """Two web processes on one database (two bootstraps, two apps), a client with a PIN, A's PIN checks gated."""
    core_a = bootstrap(settings, clock=clock, bank=bank_sim.client())
    core_b = bootstrap(settings, clock=clock, bank=bank_sim.client())
    try:
        _, (account,) = make_client(core_a, accounts=[(10_000_00, 10_000_00)], pin=PIN)
        gate_a, gate_b = Gate(core_a.ivr, gated=True), Gate(core_b.ivr, gated=False)
        core_a.ivr, core_b.ivr = gate_a, gate_b
        yield core_a, account, gate_a, gate_b, TestClient(create_app(core_a)), TestClient(create_app(core_b))
    finally:
        core_a.close()
        core_b.close()


@pytest.mark.db
def test_a_webhook_replayed_to_another_process_has_no_second_effect(db_url: str, clock, bank_sim, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a webhook that works on its action until done (twilio_action_inline_s long): Twilio gives up on it and
    # re-delivers it elsewhere
    settings = load_settings(database_url=db_url, twilio_auth_token=TOKEN, twilio_replay_wait_s=0.3,
                             twilio_action_inline_s=10, prompts_dir=str(tmp_path / "prompts"))
    with two_processes(settings, clock, bank_sim) as (core_a, account, gate_a, gate_b, api_a, api_b):
        public = settings.twilio_public_url
        post(api_a, public, "/twilio/voice", {"CallSid": SID, "From": "+8613912345678"})
        step(api_b, public, 0, "1")  # the next webhook may reach any process: the state is in the database
        step(api_a, public, 1, account)

        # a wrong PIN: process A is slow; Twilio times out and re-delivers the same request to process B
        answers: dict[str, str] = {}
        first = threading.Thread(target=lambda: answers.update(a=step(api_a, public, 2, "000000", "tok-pin")))
        first.start()
        assert gate_a.inside.wait(10)
        answers["b_during"] = step(api_b, public, 2, "000000", "tok-pin")
        gate_a.release.set()
        first.join(10)
        answers["b_after"] = step(api_b, public, 2, "000000", "tok-pin")
        answers["b_after_no_token"] = step(api_b, public, 2, "000000")

        assert gate_a.checks + gate_b.checks == 1  # one PIN typed, one PIN checked (was 2: locked after 3 typed)
        assert "<Redirect" in answers["b_during"] and "step=2" in answers["b_during"]  # "ask again", no effect
        assert "wrong_credentials" not in answers["b_during"]
        assert answers["a"] == answers["b_after"] == answers["b_after_no_token"]
        with core_a.sessions() as s:
            checks = s.scalar(select(func.count()).select_from(IvrStep).where(IvrStep.step == "authenticate"))
        assert checks == 1

        # log in, transfer 100 yuan, and the confirmation is re-delivered to the other process
        step(api_a, public, 3, account)
        gate_a.gated = False
        step(api_b, public, 4, PIN)
        for n, digits in ((5, "3"), (6, "2"), (7, "100#")):
            step(api_a, public, n, digits)
        done_a = step(api_a, public, 8, "1", "tok-confirm")
        done_b = step(api_b, public, 8, "1", "tok-confirm")
        assert done_a == done_b and "/cc/zh-CN/transfer_ok.wav</Play>" in done_a  # 转账成功: the rendered prompt
        with core_a.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Transfer)) == 1
            recorded = s.scalar(select(func.count()).select_from(IvrStep).where(IvrStep.step == "do_transfer"))
        assert recorded == 1  # was recorded twice


def is_wait(twiml: str) -> bool:
    """The TwiML of an action still at work: a silent <Gather> for keys typed meanwhile, nothing said."""
    return 'numDigits="32"' in twiml and "<Play>" not in twiml and "<Say" not in twiml


def timed_out(api: TestClient, public: str, n: int) -> str:
    return post(api, public, f"/twilio/voice/input?step={n}&timeout=1", {"CallSid": SID, "From": "+8613912345678"})


@pytest.mark.db
def test_an_action_at_work_in_one_process_is_taken_up_by_the_next_webhook_in_another(db_url: str, clock, bank_sim,
                                                                                    tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The PIN check is slow in process A: A answers the PIN's webhook at once with "please wait" inside a
    ``<Gather>``; the caller types the menu key meanwhile, which Twilio posts to process B (still working: B
    keeps the key and waits on); the check ends in A, its result goes to the database, and the next webhook (the
    wait's silence, again to B) goes on from it: the key typed during the check chose the menu item."""
    settings = load_settings(database_url=db_url, twilio_auth_token=TOKEN, twilio_action_inline_s=0.05,
                             prompts_dir=str(tmp_path / "prompts"))
    with two_processes(settings, clock, bank_sim) as (core_a, account, gate_a, gate_b, api_a, api_b):
        public = settings.twilio_public_url
        post(api_a, public, "/twilio/voice", {"CallSid": SID, "From": "+8613912345678"})
        step(api_a, public, 0, "1")
        step(api_a, public, 1, account)
        waiting = step(api_a, public, 2, PIN)  # answered while the check is still held in A
        assert gate_a.inside.wait(10)
        assert "/cc/zh-CN/please_wait.wav</Play>" in waiting and "step=3" in waiting and 'numDigits="32"' in waiting
        still = step(api_b, public, 3, "1")  # "1" (balances) typed during the check, posted to B
        assert "<Gather" in still and "step=4" in still and "<Play>" not in still  # B keeps it and waits on
        gate_a.release.set()
        n, answer = 4, still
        while is_wait(answer) and n < 200:  # the wait's silence comes back (to B) until A has stored the result
            time.sleep(0.02)
            answer, n = timed_out(api_b, public, n), n + 1
        assert gate_a.checks == 1 and gate_b.checks == 0  # checked once, in A
        assert "/cc/zh-CN/main_menu.wav" not in answer  # the menu was answered by the key typed ahead
        with core_a.sessions() as s:
            steps = [r for (r,) in s.execute(select(IvrStep.step).order_by(IvrStep.id))]
        assert steps.count("authenticate") == 1
        assert steps[steps.index("authenticate"):][:3] == ["authenticate", "main_menu", "balances"], steps
