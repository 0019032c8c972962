"""Agents' phones as PJSIP endpoints (issue 18) through the real app: an administrator gives an agent the browser
softphone and a desk SIP phone (audited, never the secret); the engine writes pjsip_agents.conf from the
database and reloads res_pjsip over AMI with its own account; at login the agent picks the phone they sit at and
the engine dials PJSIP/<endpoint>; the desk refuses "ready" while that phone is not registered."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.adapters.telephony.pjsip_agents import AmiReload, PjsipAgentsFile, ReloadFailed, publisher_from
from callcenter.bootstrap import App
from callcenter.services import phones
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog
from callcenter.store.models.dialer import AgentSession
from callcenter.store.models.phones import AgentPhone
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

pytestmark = pytest.mark.db


class FakeAmi:
    """A loopback AMI that takes one login and answers Reload; it records the actions it was sent."""

    def __init__(self, secret: str = "s3cret-phones") -> None:
        self.secret = secret
        self.actions: list[dict[str, str]] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
                buf = b""
                logged_in = False
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    buf += data
                    while b"\r\n\r\n" in buf:
                        raw, buf = buf.split(b"\r\n\r\n", 1)
                        fields = dict(line.split(": ", 1) for line in raw.decode().split("\r\n"))
                        self.actions.append(fields)
                        aid = fields.get("ActionID", "")
                        if fields["Action"] == "Login":
                            logged_in = fields.get("Secret") == self.secret
                            reply = "Success" if logged_in else "Error"
                        elif fields["Action"] == "Reload":
                            reply = "Success" if logged_in else "Error"
                        else:
                            reply = "Goodbye"
                        conn.sendall(f"Response: {reply}\r\nActionID: {aid}\r\nMessage: ok\r\n\r\n".encode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def world(core: App) -> World:
    return build(core)


@pytest.fixture
def ami() -> Any:
    server = FakeAmi()
    yield server
    server.close()


def _audit(core: App, action: str) -> list[dict[str, Any]]:
    rows = run_in_transaction(core.sessions, lambda s: [e.detail for e in s.execute(
        select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).scalars()])
    return [json.loads(d) for d in rows]


def test_admin_sets_phones_written_for_asterisk_and_reloaded(core: App, world: World, ami: FakeAmi,
                                                             tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "pjsip_agents.conf"
    core.phones = publisher_from(str(conf), f"127.0.0.1:{ami.port}", "callcenter-phones", ami.secret)
    c = TestClient(create_app(core), raise_server_exceptions=True)
    csrf = page_login(c, "adm")
    ag1 = world.staff["ag1"]
    assert "坐席话机" in c.get("/admin/phones").text
    r = c.post("/admin/phones", data={"csrf": csrf, "staff_id": str(ag1), "kind": "sip", "endpoint": "10;04"})
    assert r.status_code == 422 and "终端名须以字母或数字开头" in r.text
    r = c.post("/admin/phones", data={"csrf": csrf, "staff_id": str(ag1), "kind": "sip", "endpoint": "1004",
                                      "password": "desk-phone-pass-1"})
    assert r.status_code == 200 and "已写入 Asterisk 并重新加载" in r.text
    assert "desk-phone-pass-1" in r.text  # shown this once to type into the phone
    r = c.post("/admin/phones", data={"csrf": csrf, "staff_id": str(ag1), "kind": "webrtc"})
    assert r.status_code == 200 and "已写入 Asterisk 并重新加载" in r.text
    r = c.post("/admin/phones", data={"csrf": csrf, "staff_id": str(world.staff["ag2"]), "kind": "sip",
                                      "endpoint": "1004"})
    assert r.status_code == 422 and "终端名 1004 已被使用" in r.text
    # the file: both endpoints from the shipped templates, the HA1 as password_digest, no clear password
    text = conf.read_text()
    realm = core.settings.sip_realm
    assert "[1004](cc-desk-phone)" in text and f"[webrtc-{ag1}](cc-webrtc)" in text
    assert "[1004](cc-aor-desk)" in text and f"[webrtc-{ag1}](cc-aor-webrtc)" in text
    digest = hashlib.md5(f"1004:{realm}:desk-phone-pass-1".encode()).hexdigest()
    assert f"password_digest = MD5:{digest}" in text and "desk-phone-pass-1" not in text
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    reloads = [a for a in ami.actions if a["Action"] == "Reload"]
    assert len(reloads) == 2 and all(a["Module"] == "res_pjsip.so" for a in reloads)
    assert {a["Username"] for a in ami.actions if a["Action"] == "Login"} == {"callcenter-phones"}
    # audited, never the secret or its digest
    sets = _audit(core, "phone_set")
    assert [s_["after"]["endpoint"] for s_ in sets] == ["1004", f"webrtc-{ag1}"]
    assert all("desk-phone-pass-1" not in json.dumps(s_) and digest not in json.dumps(s_) for s_ in sets)
    page = c.get("/admin/phones").text
    assert 'data-endpoint="1004"' in page and "未注册" in page
    # removed: audited, gone from the file
    pid = run_in_transaction(core.sessions, lambda s: s.scalars(select(AgentPhone.id).where(
        AgentPhone.endpoint == "1004")).one())
    r = c.post(f"/admin/phones/{pid}/remove", data={"csrf": csrf})
    assert r.status_code == 200 and "[1004]" not in conf.read_text() and f"[webrtc-{ag1}]" in conf.read_text()
    assert _audit(core, "phone_removed")[0]["before"]["endpoint"] == "1004"
    # agents do not get in
    agent = TestClient(create_app(core), raise_server_exceptions=False)
    page_login(agent, "ag1")
    assert agent.get("/admin/phones").status_code == 403


def test_without_a_reload_account_the_file_is_written_for_an_operator(core: App, world: World, tmp_path: Path) -> None:
    conf = tmp_path / "pjsip_agents.conf"
    core.phones = publisher_from(str(conf), "127.0.0.1:5038", "", "")
    c = TestClient(create_app(core))
    csrf = page_login(c, "adm")
    r = c.post("/admin/phones", data={"csrf": csrf, "staff_id": str(world.staff["ag1"]), "kind": "webrtc"})
    assert "请运维人员重新加载 res_pjsip" in r.text and "[webrtc-" in conf.read_text()


def test_a_refused_reload_is_said(ami: FakeAmi, tmp_path: Path) -> None:
    with pytest.raises(ReloadFailed):
        AmiReload("127.0.0.1", ami.port, "callcenter-phones", "wrong")()
    assert PjsipAgentsFile(None).publish("x") == "off"


def test_agent_sits_at_the_softphone_and_cannot_go_ready_unregistered(core: App, world: World, clock: Any) -> None:
    ag1 = world.staff["ag1"]
    core.settings.softphone_ws_url = "wss://pbx.example.com:8089/ws"
    admin_principal = _admin(core, world)
    phones.set_phone(core, admin_principal, phones.NoPublisher(), ag1, "webrtc")
    c = TestClient(create_app(core), raise_server_exceptions=False)
    h = {"X-CSRF-Token": page_login(c, "ag1")}
    page = c.get("/agent").text
    assert 'id="softphone"' in page and 'value="webrtc"' in page
    body = c.get("/api/desk/phone").json()
    assert body["phones"] == {"webrtc": f"webrtc-{ag1}"} and body["registered"] is None
    soft = body["softphone"]
    assert soft["ws_url"] == "wss://pbx.example.com:8089/ws" and soft["uri"] == f"sip:webrtc-{ag1}@pbx.example.com"
    assert len(soft["ha1"]) == 32 and "password" not in soft
    # no desk phone: refused in a sentence
    r = c.post("/api/desk/state", json={"state": "paused", "reason": "break", "phone": "sip"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_such_phone"
    assert c.post("/api/desk/state", json={"state": "paused", "reason": "break", "phone": "webrtc"},
                  headers=h).status_code == 200
    dial = run_in_transaction(core.sessions, lambda s: s.scalars(select(AgentSession.phone).where(
        AgentSession.staff_id == ag1)).one())
    assert dial == f"PJSIP/webrtc-{ag1}"
    assert c.get("/api/desk/status").json()["phone_registered"] is False
    r = c.post("/api/desk/state", json={"state": "ready"}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "phone_not_registered"
    # the page reports its registration: ready allowed
    assert c.post("/api/desk/phone/registration", json={"registered": True}, headers=h).json() == {"registered": True}
    assert c.get("/api/desk/status").json()["phone_registered"] is True
    assert c.post("/api/desk/state", json={"state": "paused", "reason": "meal"}, headers=h).status_code == 200
    # a page that stops reporting stops counting as registered
    clock.now += timedelta(seconds=core.settings.phone_report_stale_s + 1)
    assert c.get("/api/desk/status").json()["phone_registered"] is False
    assert c.post("/api/desk/state", json={"state": "ready"}, headers=h).json()["error"]["code"] == "phone_not_registered"
    c.post("/api/desk/phone/registration", json={"registered": True}, headers=h)
    assert c.post("/api/desk/state", json={"state": "ready"}, headers=h).status_code == 200
    # Asterisk's word: the contact stopped answering its OPTIONS
    assert phones.contact_status(core, f"webrtc-{ag1}", "Unreachable") is False
    assert c.get("/api/desk/status").json()["phone_registered"] is False
    assert phones.contact_status(core, f"webrtc-{ag1}", "Reachable") is True
    assert phones.contact_status(core, "someone-else", "Reachable") is None
    assert c.get("/api/desk/status").json()["phone_registered"] is True


def test_a_dial_string_given_at_login_is_not_checked(core: App, world: World) -> None:
    c = TestClient(create_app(core), raise_server_exceptions=False)
    h = {"X-CSRF-Token": page_login(c, "ag2")}
    assert c.post("/api/desk/state", json={"state": "paused", "reason": "break", "phone": "Local/9@x"},
                  headers=h).status_code == 200
    assert c.get("/api/desk/status").json()["phone_registered"] is None
    assert c.post("/api/desk/state", json={"state": "ready"}, headers=h).status_code == 200


def test_render_skips_what_is_not_a_safe_name() -> None:
    good = AgentPhone(staff_id=1, kind="sip", endpoint="1004", realm="callcenter", ha1="a" * 32, active=True)
    bad = AgentPhone(staff_id=2, kind="sip", endpoint="x]\n[evil", realm="callcenter", ha1="b" * 32, active=True)
    off = AgentPhone(staff_id=3, kind="webrtc", endpoint="webrtc-3", realm="callcenter", ha1="c" * 32, active=False)
    text = phones.render_agents_conf([bad, good, off])
    assert "[1004](cc-desk-phone)" in text and "evil" not in text and "webrtc-3" not in text


def _admin(core: App, world: World) -> Any:
    from callcenter.services.staff_sessions import staff_principal

    return staff_principal(core.sessions, "adm")


def test_asterisks_contact_status_over_ami_is_a_port_event() -> None:
    from callcenter.adapters.telephony.ami_events import CallTracker
    from callcenter.ports.telephony import PhoneContact

    tracker = CallTracker("pbx1")
    assert tracker.feed({"Event": "ContactStatus", "URI": "sip:1004@127.0.0.1:5070", "ContactStatus": "Unreachable",
                         "AOR": "1004", "EndpointName": "1004"}, 5.0) == [PhoneContact("1004", "Unreachable", 5.0, "pbx1")]
    assert tracker.feed({"Event": "ContactStatus", "AOR": "1004"}, 5.0) == []


async def test_the_dialler_engine_records_contact_status(core: App, world: World) -> None:
    """The engine's AMI reader hands ContactStatus to the dialler engine, which records it on the agent's phone:
    the desk's "ready" then reads Asterisk's word (a phone that stopped answering its qualify is not registered)."""
    from callcenter.adapters.telephony.simulated import SimulatedPbx
    from callcenter.parts.dialer import dialer_deps
    from callcenter.ports.telephony import PhoneContact
    from callcenter.services.dialer.engine import DialerEngine

    ag1 = world.staff["ag1"]
    phones.set_phone(core, _admin(core, world), phones.NoPublisher(), ag1, "sip", endpoint="1004", password="x" * 12)
    engine = DialerEngine(dialer_deps(core), SimulatedPbx(), dialer_id="contacts", sync_s=0.3)

    def registered() -> bool | None:
        return run_in_transaction(core.sessions, lambda s: phones.registered(s, "PJSIP/1004", core.clock()))

    assert registered() is False
    await engine.handle(PhoneContact("1004", "Reachable", 1.0))
    assert registered() is True
    await engine.handle(PhoneContact("1004", "Unreachable", 2.0))
    assert registered() is False
    await engine.handle(PhoneContact("someone-else", "Reachable", 3.0))
    assert registered() is False


async def test_the_dialler_engine_reads_the_phones_states_at_start(core: App, world: World) -> None:
    """ContactStatus only tells changes: a phone Asterisk had reported registered that left while no engine ran
    (or the PBX restarted meanwhile), and one that registered meanwhile. At start the engine asks the PBX
    (``phone_states``: the AMI port's Getvar of DEVICE_STATE(PJSIP/<endpoint>), proven in tests/live/test_live_sip.py)
    and records its word before anything else, so "ready" is refused, or allowed, on the truth."""
    import asyncio

    from callcenter.adapters.telephony.simulated import SimulatedPbx
    from callcenter.parts.dialer import dialer_deps
    from callcenter.ports.telephony import PhoneContact
    from callcenter.services.dialer.engine import DialerEngine

    asked: list[list[str]] = []

    class SipPbx(SimulatedPbx):
        async def phone_states(self, endpoints: list[str]) -> dict[str, str]:
            asked.append(list(endpoints))
            return {"1004": "Unavailable", "1005": "Reachable"}  # 1006: Asterisk cannot tell; left as it was

    admin = _admin(core, world)
    for staff, endpoint in (("ag1", "1004"), ("ag2", "1005"), ("bo1", "1006")):
        phones.set_phone(core, admin, phones.NoPublisher(), world.staff[staff], "sip", endpoint=endpoint,
                         password="x" * 12)
    before = DialerEngine(dialer_deps(core), SimulatedPbx(), dialer_id="contacts", sync_s=0.3)
    await before.handle(PhoneContact("1004", "Reachable", 1.0))  # the last word the previous engine heard
    await before.handle(PhoneContact("1006", "Reachable", 1.0))

    def registered(endpoint: str) -> bool | None:
        return run_in_transaction(core.sessions, lambda s: phones.registered(s, f"PJSIP/{endpoint}", core.clock()))

    assert [registered(e) for e in ("1004", "1005", "1006")] == [True, False, True]
    engine = DialerEngine(dialer_deps(core), SipPbx(), dialer_id="contacts", sync_s=0.3)
    stop = asyncio.Event()
    runner = asyncio.create_task(engine.run(stop))
    try:
        for _ in range(200):
            if asked:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
    assert asked == [["1004", "1005", "1006"]]
    assert [registered(e) for e in ("1004", "1005", "1006")] == [False, True, True]


async def test_the_dialler_engine_reads_the_phones_states_again_when_the_pbx_comes_back(core: App,
                                                                                         world: World) -> None:
    """The PBX went away and came back (a restart): the ContactStatus events of the time between are lost to us, so
    after its ServerDown and ServerUp the engine reads the phones' states again; a ServerUp alone (the first
    connection) does not repeat the read at start."""
    import asyncio

    from callcenter.adapters.telephony.simulated import SimulatedPbx
    from callcenter.parts.dialer import dialer_deps
    from callcenter.ports.telephony import ServerDown, ServerUp
    from callcenter.services.dialer.engine import DialerEngine

    answers = [{"1004": "Reachable"}, {"1004": "Unavailable"}]
    asked: list[list[str]] = []

    class SipPbx(SimulatedPbx):
        async def phone_states(self, endpoints: list[str]) -> dict[str, str]:
            asked.append(list(endpoints))
            return answers[min(len(asked), len(answers)) - 1]

    phones.set_phone(core, _admin(core, world), phones.NoPublisher(), world.staff["ag1"], "sip", endpoint="1004",
                     password="x" * 12)
    pbx = SipPbx()
    engine = DialerEngine(dialer_deps(core), pbx, dialer_id="contacts", sync_s=0.3)

    def registered() -> bool | None:
        return run_in_transaction(core.sessions, lambda s: phones.registered(s, "PJSIP/1004", core.clock()))

    async def until(check: Any) -> None:
        for _ in range(250):
            if check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("timed out")

    stop = asyncio.Event()
    runner = asyncio.create_task(engine.run(stop))
    try:
        await until(lambda: asked)
        assert registered() is True
        pbx.stream.publish(ServerUp(pbx.server, 1.0))  # not a comeback: no second read
        await asyncio.sleep(0.3)
        assert len(asked) == 1
        pbx.stream.publish(ServerDown(pbx.server, 2.0, "restart"))
        pbx.stream.publish(ServerUp(pbx.server, 3.0))
        await until(lambda: len(asked) == 2)
        await until(lambda: registered() is False)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
