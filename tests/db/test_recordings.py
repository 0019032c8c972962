"""Recordings and 质检 on the database: the simulated PBX's recording (a real WAV, the PIN span silent and marked,
duration = talk time, linked legs), legal hold and the purge, the weekly sample per agent, evaluations (a failed
critical item fails), disputes, and the 质检 score in the monthly group KPI ranking."""

from __future__ import annotations

import array
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callcenter.adapters.recordings_fs import FileRecordingStore
from callcenter.domain import quality as qrules
from callcenter.domain.access import Actor
from callcenter.ports.recordings import sha256_hex, wav_duration_s
from callcenter.adapters.recordings_simulated import Line, record_simulated_call, silent_share, wav_bytes
from callcenter.services import kpis, quality
from callcenter.services.recordings import RecordingError, RecordingNotVisible, RecordingService
from callcenter.store.db import run_in_transaction
from callcenter.store.models import AuditLog, Staff
from callcenter.store.models.desk import DeskContact
from callcenter.store.models.recordings import QaSample, Recording
from tests.factories import make_client, make_group, make_staff

pytestmark = pytest.mark.db
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def recs(core, tmp_path: Path) -> RecordingService:  # type: ignore[no-untyped-def]
    core.recordings = RecordingService(core.sessions, FileRecordingStore(tmp_path / "rec"), core.clock,
                                       {"callback": 3, "complaint": 3, "order": 3, "ordinary": 3})
    return core.recordings


def silence(seconds: float) -> bytes:
    return wav_bytes(array.array("h", bytes(2 * int(seconds * 8000))))


def get(core, rid: int) -> Recording:  # type: ignore[no-untyped-def]
    return run_in_transaction(core.sessions, lambda s: s.get(Recording, rid))


def audits(core, action: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    return run_in_transaction(core.sessions, lambda s: list(s.execute(
        select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)).scalars()))


def test_a_simulated_call_is_a_real_wav_with_the_pin_span_silent(core, recs) -> None:  # type: ignore[no-untyped-def]
    g = make_group(core, "录音组")
    agent = make_staff(core, "rec-agent", "pw-rec-agent-1", "agent", group_id=g)
    client, _ = make_client(core, accounts=[(1_000_00, 0)], group_id=g)
    start = core.clock()
    rid = record_simulated_call(recs, "sim-call-1", started_at=start, agent_id=agent, client_id=client,
                                retention_class="callback")
    rec = get(core, rid)
    data = recs.store.get(rec.storage_key)
    assert rec.state == "stopped" and rec.sha256 == sha256_hex(data) and rec.size_bytes == len(data)
    assert rec.duration_s == pytest.approx(wav_duration_s(data), abs=0.01) and rec.duration_s > 5
    assert (rec.ended_at - rec.started_at).total_seconds() == pytest.approx(rec.duration_s, abs=0.01)  # talk time
    [(a, b)] = rec.paused_spans  # the PIN: one marked span, silence in the file
    assert b - a == pytest.approx(2.6, abs=0.01)
    assert silent_share(data, a, b) == 1.0
    assert silent_share(data, 0, a) < 0.9  # speech before it
    assert rec.expires_at == rec.started_at.replace(year=rec.started_at.year + 3)
    # a transfer: the second agent's leg is its own recording, linked to the first
    other = make_staff(core, "rec-agent-2", "pw-rec-agent-2", "agent", group_id=g)
    leg = record_simulated_call(recs, "sim-call-1-b", started_at=rec.ended_at, agent_id=other, client_id=client,
                                parent_id=rid, lines=[Line("agent", "您好，我是转接过来的坐席。", 0.5)], pin_spans=[])
    assert get(core, leg).parent_id == rid and get(core, leg).paused_spans == []


def test_pause_resume_stop_life_cycle(core, recs) -> None:  # type: ignore[no-untyped-def]
    t0 = core.clock()
    rid = recs.start("call-lc", at=t0)
    recs.pause(rid, t0 + timedelta(seconds=3))
    recs.pause(rid, t0 + timedelta(seconds=4))  # twice: no second span
    recs.resume(rid, t0 + timedelta(seconds=6))
    recs.pause(rid, t0 + timedelta(seconds=9))  # still paused at hang-up: closed at the end
    recs.stop(rid, t0 + timedelta(seconds=10))
    rec = get(core, rid)
    assert rec.paused_spans == [[3.0, 6.0], [9.0, 10.0]] and rec.duration_s == 10.0 and rec.state == "stopped"
    with pytest.raises(RecordingError) as e:
        recs.stop(rid)
    assert e.value.code == "bad_state"
    with pytest.raises(RecordingError):
        recs.start("x", retention_class="forever")
    with pytest.raises(RecordingError) as e:
        recs.attach_audio(rid, b"not audio")
    assert e.value.code == "bad_audio"


def test_purge_deletes_an_expired_recording_and_keeps_one_on_legal_hold(core, recs) -> None:  # type: ignore[no-untyped-def]
    adm = make_staff(core, "rec-adm", "pw-rec-adm-1", "admin")
    sup = make_staff(core, "rec-sup", "pw-rec-sup-1", "supervisor")
    old = core.clock() - timedelta(days=3 * 366 + 1)
    expired, held, young = (recs.start(f"call-{n}", at=at) for n, at in
                            (("e", old), ("h", old), ("y", core.clock() - timedelta(days=30))))
    for rid in (expired, held, young):
        recs.stop(rid, get(core, rid).started_at + timedelta(seconds=2), audio=silence(2))
    admin = Actor.staff("admin", adm)
    with pytest.raises(RecordingError) as e:
        recs.set_legal_hold(admin, held, True, "  ")
    assert e.value.code == "reason_required"
    with pytest.raises(RecordingNotVisible):  # only admins
        recs.set_legal_hold(Actor.staff("supervisor", sup), held, True, "诉讼")
    recs.set_legal_hold(admin, held, True, "客户诉讼 (2026)民初123号")
    report = recs.purge_expired()
    assert (report.deleted, report.kept_on_hold) == ([expired], [held])
    assert get(core, expired).state == "purged" and not recs.store.exists(get(core, expired).storage_key)
    assert recs.store.exists(get(core, held).storage_key) and recs.store.exists(get(core, young).storage_key)
    assert [a.detail.split(" ")[1] for a in audits(core, "recording_purge")] == [str(expired)]
    assert [a.detail for a in audits(core, "recording_hold")] == [f"recording {held}: 客户诉讼 (2026)民初123号"]
    recs.set_legal_hold(admin, held, False, "结案")
    assert recs.purge_expired().deleted == [held]  # hold lifted: the next purge takes it
    assert len(audits(core, "recording_release")) == 1
    with pytest.raises(RecordingNotVisible):  # a purged recording cannot be played
        recs.authorize(admin, expired, download=False)


def _week_calls(core, recs, agents: dict[int, int], complaint_agent: int) -> list[int]:  # type: ignore[no-untyped-def]
    """Recorded calls on Monday..Friday of 2026-W48 (the clock's week) per agent; one of ``complaint_agent``'s a
    complaint call (its desk contact is marked)."""
    monday = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
    ids = []
    for agent, n in agents.items():
        for i in range(n):
            at = monday + timedelta(days=i % 5, minutes=i)

            def contact(s, at=at, agent=agent, i=i) -> int:  # type: ignore[no-untyped-def]
                c = DeskContact(agent_id=agent, started_at=at, ended_at=at, disposition="contacted",
                                complaint=agent == complaint_agent and i == 0)
                s.add(c)
                s.flush()
                return c.id

            cid = run_in_transaction(core.sessions, contact)
            rid = recs.start(f"w48-{agent}-{i}", agent_id=agent, desk_contact_id=cid, at=at)
            recs.stop(rid, at + timedelta(seconds=1), audio=silence(1))
            ids.append(rid)
    late = recs.start("w49", agent_id=next(iter(agents)), at=monday + timedelta(days=7))  # next week: not sampled
    recs.stop(late, monday + timedelta(days=7, seconds=1), audio=silence(1))
    return ids


def test_sampling_picks_the_right_number_per_agent_per_week(core, recs) -> None:  # type: ignore[no-untyped-def]
    g = make_group(core, "质检组")
    a, b, c = (make_staff(core, f"qa-ag{n}", "pw-qa-agent-1", "agent", group_id=g) for n in range(3))
    _week_calls(core, recs, {a: 8, b: 2, c: 5}, complaint_agent=c)
    picks = run_in_transaction(core.sessions, lambda s: quality.sample_week(s, "2026-W48", TZ, core.clock(), count=3))
    by = {(p.agent_id, p.reason) for p in picks}
    counts = {k: sum(1 for p in picks if (p.agent_id, p.reason) == k) for k in by}
    assert counts == {(a, "random"): 3, (b, "random"): 2, (c, "random"): 3, (c, "complaint"): 1}
    again = run_in_transaction(core.sessions, lambda s: quality.sample_week(s, "2026-W48", TZ, core.clock(), count=3))
    assert again == []  # idempotent
    rows = run_in_transaction(core.sessions, lambda s: s.execute(select(QaSample.week).distinct()).scalars().all())
    assert rows == ["2026-W48"]
    rate = run_in_transaction(core.sessions, lambda s: quality.sample_week(s, "2026-W48", TZ, core.clock(), rate=0.5))
    assert sorted((p.agent_id for p in rate)) == [a]  # a: ceil(0.5 x 8) = 4, one more than the 3 taken


def _form(core) -> int:  # type: ignore[no-untyped-def]
    sup = make_staff(core, "qa-form-sup", "pw-qa-sup-1", "supervisor")
    items = qrules.parse_form_lines("开场白规范 | yes_no | 20\n身份核实 | yes_no | 30 | critical\n风险揭示 | scale | 50 | | 5")
    return run_in_transaction(core.sessions, lambda s: quality.create_form(
        s, Actor.staff("supervisor", sup), "回访质检表", items, 80.0, core.clock()))


def test_evaluations_critical_items_disputes(core, recs) -> None:  # type: ignore[no-untyped-def]
    g = make_group(core, "评估组")
    agent = make_staff(core, "ev-agent", "pw-ev-agent-1", "agent", group_id=g)
    qa_id = make_staff(core, "ev-qa", "pw-ev-qa-1", "qa")
    sup = make_staff(core, "ev-sup", "pw-ev-sup-1", "supervisor", supervises=[g])
    other_sup = make_staff(core, "ev-sup2", "pw-ev-sup-2", "supervisor")
    form = _form(core)
    r1, r2 = (recs.start(f"ev-{n}", agent_id=agent) for n in (1, 2))
    for rid in (r1, r2):
        recs.stop(rid, audio=silence(1))
    qa = Actor.staff("qa", qa_id)

    def ev(rid: int, answers: dict[str, object], actor: Actor = qa):  # type: ignore[no-untyped-def]
        return run_in_transaction(core.sessions, lambda s: quality.evaluate(
            s, recs, actor, rid, form, answers, "", core.clock(), TZ)).id

    failed = ev(r1, {"i1": True, "i2": False, "i3": 5})  # identity not verified: critical
    good = ev(r2, {"i1": True, "i2": True, "i3": 3})
    rows = {e.id: e for e in run_in_transaction(core.sessions, lambda s: quality.of_agent(s, agent))}
    assert (rows[failed].score_pct, rows[failed].passed, rows[failed].critical_failed) == (0.0, False, True)
    assert (rows[good].score_pct, rows[good].passed) == (80.0, True)
    with pytest.raises(quality.QualityError) as e:
        ev(r2, {"i1": True, "i2": True, "i3": 3})
    assert e.value.code == "already_evaluated"
    with pytest.raises(quality.QualityError) as e:
        ev(r2, {"i1": True, "i2": True, "i3": 3}, Actor.staff("supervisor", sup, {g}))
    assert e.value.code == "forbidden"  # evaluations are QA staff's
    with pytest.raises(quality.QualityError) as e:
        ev(r2, {"i1": True, "i3": 3}, Actor.staff("qa", make_staff(core, "ev-qa2", "pw-ev-qa-2", "qa")))
    assert e.value.code == "bad_answers"
    # the agent disputes; a supervisor of another group cannot decide; the agent's supervisor revises
    me = Actor.staff("agent", agent, {g})
    with pytest.raises(quality.QualityError):
        run_in_transaction(core.sessions, lambda s: quality.dispute(s, Actor.staff("agent", sup), failed, "x", core.clock()))
    run_in_transaction(core.sessions, lambda s: quality.dispute(s, me, failed, "客户已在IVR验证过身份", core.clock()))
    with pytest.raises(quality.QualityError) as e:
        run_in_transaction(core.sessions, lambda s: quality.dispute(s, me, failed, "again", core.clock()))
    assert e.value.code == "bad_state"
    with pytest.raises(quality.QualityError) as e:
        run_in_transaction(core.sessions, lambda s: quality.resolve(
            s, Actor.staff("supervisor", other_sup, frozenset()), failed, "revise", "", core.clock(), 90.0))
    assert e.value.code == "not_found"
    run_in_transaction(core.sessions, lambda s: quality.resolve(
        s, Actor.staff("supervisor", sup, {g}), failed, "revise", "IVR 已核身", core.clock(), 90.0))
    revised = run_in_transaction(core.sessions, lambda s: {e.id: e for e in quality.of_agent(s, agent)})[failed]
    assert (revised.status, revised.score_pct, revised.passed) == ("revised", 90.0, True)


def test_scores_reach_the_monthly_group_ranking(core, recs) -> None:  # type: ignore[no-untyped-def]
    g1, g2 = make_group(core, "甲组"), make_group(core, "乙组")
    a1 = make_staff(core, "rk-a1", "pw-rk-a1-1", "agent", group_id=g1)
    a2 = make_staff(core, "rk-a2", "pw-rk-a2-1", "agent", group_id=g2)
    for gid in (g1, g2):  # a back-office member each: valid groups
        bo = make_staff(core, f"rk-bo{gid}", "pw-rk-bo-1", "agent", group_id=gid)
        run_in_transaction(core.sessions, lambda s, bo=bo: setattr(s.get(Staff, bo), "back_office", True))
    qa = Actor.staff("qa", make_staff(core, "rk-qa", "pw-rk-qa-1", "qa"))
    form = _form(core)
    for agent, scale in ((a1, [1, 2]), (a2, [5, 4])):
        for i, v in enumerate(scale):
            rid = recs.start(f"rk-{agent}-{i}", agent_id=agent)
            recs.stop(rid, audio=silence(1))
            run_in_transaction(core.sessions, lambda s, rid=rid, v=v: quality.evaluate(
                s, recs, qa, rid, form, {"i1": True, "i2": True, "i3": v}, "", core.clock(), TZ))
    month = core.clock().astimezone(TZ).strftime("%Y-%m")
    rows = kpis.compute_month(core.sessions, month, core.clock(), TZ)
    by = {r.group_id: r for r in rows}
    assert (by[g1].qa_score_pct, by[g1].qa_evaluations) == (65.0, 2)  # (60 + 70) / 2
    assert (by[g2].qa_score_pct, by[g2].qa_evaluations) == (95.0, 2)  # (100 + 90) / 2
    assert [r.group_id for r in rows] == [g2, g1]  # same (zero) asset growth: the better 质检 score ranks first
    assert [r.group_id for r in kpis.ranking(core.sessions, month)] == [g2, g1]
    by_agent = run_in_transaction(core.sessions, lambda s: quality.scores_by_agent(s, month))
    assert [(r.key, r.average_pct, r.evaluations) for r in by_agent] == [(a2, 95.0, 2), (a1, 65.0, 2)]
