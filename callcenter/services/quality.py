"""Quality inspection (质检) on the store: evaluation forms (supervisors), the weekly sample per agent, evaluations
by QA staff while they listen, the agent's dispute and a supervisor's decision, and the scores by agent, group and
month (the group figure feeds the monthly KPI ranking, ``callcenter.services.kpis``). The rules are
``callcenter.domain.quality``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from callcenter.domain import quality as rules
from callcenter.domain.access import Actor
from callcenter.services.recordings import RecordingNotVisible, RecordingService, is_complaint_call
from callcenter.store.models import AuditLog, ServiceGroup, Staff
from callcenter.store.models.recordings import QaEvaluation, QaForm, QaSample, Recording


class QualityError(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


SUPERVISING = ("supervisor", "admin")


def create_form(s: Session, actor: Actor, name: str, items: list[rules.FormItem], pass_pct: float,
                now: datetime) -> int:
    if actor.role not in SUPERVISING:
        raise QualityError("forbidden")
    name = name.strip()
    if not name:
        raise QualityError("bad_form", "a form needs a name")
    if not 0 <= pass_pct <= 100:
        raise QualityError("bad_form", "the pass mark is 0..100")
    try:
        checked = rules.check_form(items)
    except rules.FormError as exc:
        raise QualityError("bad_form", str(exc)) from None
    form = QaForm(name=name, items=[i.to_dict() for i in checked], pass_pct=pass_pct, active=True,
                  created_by=actor.staff_id, created_at=now)
    s.add(form)
    s.flush()
    return form.id


def forms(s: Session, active_only: bool = True) -> list[QaForm]:
    q = select(QaForm).order_by(QaForm.id.desc())
    if active_only:
        q = q.where(QaForm.active.is_(True))
    return list(s.execute(q).scalars())


def form_items(form: QaForm) -> list[rules.FormItem]:
    return [rules.FormItem.from_dict(d) for d in form.items]


# --- sampling ---------------------------------------------------------------------------------------------

def sample_week(s: Session, week: str, tz: ZoneInfo, now: datetime, *, count: int | None = None,
                rate: float | None = None, seed: int | None = None) -> list[rules.Pick]:
    """Pick the week's recordings for inspection (idempotent: a second run only tops up what is missing).
    ``seed`` None: derived from the week, so the same week picks the same calls."""
    try:
        monday, next_monday = rules.week_bounds(week)
    except ValueError as exc:
        raise QualityError("bad_week", str(exc)) from None
    start = datetime.combine(monday, time(0), tz)
    end = datetime.combine(next_monday, time(0), tz)
    sampled = set(s.execute(select(QaSample.recording_id)).scalars())
    recs = s.execute(select(Recording).where(Recording.state == "stopped", Recording.agent_id.is_not(None),
                                             Recording.started_at >= start, Recording.started_at < end)
                     .order_by(Recording.id)).scalars().all()
    calls = [(r.id, int(r.agent_id), is_complaint_call(s, r)) for r in recs if r.id not in sampled and r.agent_id]
    already = dict(s.execute(select(QaSample.agent_id, func.count()).where(QaSample.week == week,
                                                                           QaSample.reason == "random")
                             .group_by(QaSample.agent_id)).all())
    picks = rules.pick_week(calls, count=count, rate=rate, already={int(k): int(v) for k, v in already.items()},
                            seed=seed if seed is not None else int(week[:4]) * 100 + int(week[6:]))
    for p in picks:
        s.add(QaSample(recording_id=p.recording_id, agent_id=p.agent_id, week=week, reason=p.reason, picked_at=now))
    s.flush()
    return picks


def queue(s: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Sampled recordings not evaluated yet, oldest week first."""
    evaluated = select(QaEvaluation.recording_id)
    rows = s.execute(select(QaSample, Recording, Staff.display_name)
                     .join(Recording, Recording.id == QaSample.recording_id)
                     .join(Staff, Staff.id == QaSample.agent_id)
                     .where(QaSample.recording_id.not_in(evaluated), Recording.state == "stopped")
                     .order_by(QaSample.week, QaSample.id).limit(limit)).all()
    return [{"recording_id": r.id, "agent": name, "week": q.week, "reason": q.reason, "started_at": r.started_at,
             "duration_s": r.duration_s} for q, r, name in rows]


# --- evaluations ------------------------------------------------------------------------------------------

def evaluate(s: Session, recordings: RecordingService, actor: Actor, recording_id: int, form_id: int,
             answers: dict[str, Any], comment: str, now: datetime, tz: ZoneInfo) -> QaEvaluation:
    """A QA staff member's evaluation of a recording they may listen to (one per recording and evaluator)."""
    if actor.role != "qa":
        raise QualityError("forbidden")
    try:
        rec = recordings.visible(s, actor, recording_id)
    except RecordingNotVisible:
        raise QualityError("not_found") from None
    if rec.agent_id is None:
        raise QualityError("no_agent")
    form = s.get(QaForm, form_id)
    if form is None or not form.active:
        raise QualityError("no_form")
    if s.execute(select(QaEvaluation.id).where(QaEvaluation.recording_id == rec.id,
                                               QaEvaluation.evaluator_id == actor.staff_id)).first():
        raise QualityError("already_evaluated")
    try:
        result = rules.score(form_items(form), answers, form.pass_pct)
    except rules.FormError as exc:
        raise QualityError("bad_answers", str(exc)) from None
    agent = s.get(Staff, rec.agent_id)
    ev = QaEvaluation(recording_id=rec.id, form_id=form.id, agent_id=rec.agent_id,
                      group_id=agent.service_group_id if agent else None, evaluator_id=actor.staff_id,
                      month=rec.started_at.astimezone(tz).strftime("%Y-%m"), created_at=now, answers=answers,
                      score_pct=result.pct, passed=result.passed, critical_failed=bool(result.critical_failed),
                      comment=comment.strip(), status="final")
    s.add(ev)
    s.flush()
    return ev


def dispute(s: Session, actor: Actor, evaluation_id: int, text: str, now: datetime) -> None:
    """The agent disputes an evaluation of their own call, once, with a reason."""
    ev = s.get(QaEvaluation, evaluation_id, with_for_update=True)
    if ev is None or actor.role != "agent" or ev.agent_id != actor.staff_id:
        raise QualityError("not_found")
    if ev.status != "final":
        raise QualityError("bad_state", ev.status)
    if not text.strip():
        raise QualityError("reason_required")
    ev.status, ev.dispute_text, ev.disputed_at = "disputed", text.strip(), now


def resolve(s: Session, actor: Actor, evaluation_id: int, decision: str, note: str, now: datetime,
            score_pct: float | None = None) -> None:
    """A supervisor of the agent's group (or an admin) upholds a disputed evaluation or revises its score."""
    ev = s.get(QaEvaluation, evaluation_id, with_for_update=True)
    if ev is None or actor.role not in SUPERVISING or (
            actor.role == "supervisor" and (ev.group_id is None or ev.group_id not in actor.group_ids)):
        raise QualityError("not_found")
    if ev.status != "disputed":
        raise QualityError("bad_state", ev.status)
    if decision == "uphold":
        ev.status = "upheld"
    elif decision == "revise":
        if score_pct is None or not 0 <= score_pct <= 100:
            raise QualityError("bad_score")
        form = s.get(QaForm, ev.form_id)
        ev.score_pct = round(score_pct, 1)
        ev.passed = score_pct >= (form.pass_pct if form else 80.0)
        ev.critical_failed = False if ev.passed else ev.critical_failed
        ev.status = "revised"
    else:
        raise QualityError("bad_decision")
    ev.resolution, ev.resolved_by, ev.resolved_at = note.strip(), actor.staff_id, now
    s.add(AuditLog(at=now, staff_id=actor.staff_id, action="qa_dispute_" + ev.status, client_id=None,
                   detail=f"evaluation {ev.id}"))


def of_agent(s: Session, agent_id: int, limit: int = 100) -> list[QaEvaluation]:
    return list(s.execute(select(QaEvaluation).where(QaEvaluation.agent_id == agent_id)
                          .order_by(QaEvaluation.id.desc()).limit(limit)).scalars())


def disputed(s: Session, actor: Actor) -> list[QaEvaluation]:
    q = select(QaEvaluation).where(QaEvaluation.status == "disputed").order_by(QaEvaluation.id)
    if actor.role == "supervisor":
        q = q.where(QaEvaluation.group_id.in_(actor.group_ids or {-1}))
    return list(s.execute(q).scalars())


# --- scores -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreRow:
    key: int | None
    label: str
    evaluations: int
    average_pct: float | None
    passed: int
    critical_failed: int


def _scores(s: Session, month: str, column: Any, names: dict[int, str],
            group_ids: frozenset[int] | None) -> list[ScoreRow]:
    q = (select(column, func.count(QaEvaluation.id), func.avg(QaEvaluation.score_pct),
                func.sum(case((QaEvaluation.passed.is_(True), 1), else_=0)),
                func.sum(case((QaEvaluation.critical_failed.is_(True), 1), else_=0)))
         .where(QaEvaluation.month == month).group_by(column))
    if group_ids is not None:
        q = q.where(QaEvaluation.group_id.in_(group_ids or {-1}))
    rows = [ScoreRow(k, names.get(k, "—") if k is not None else "—", int(n),
                     round(float(avg), 1) if avg is not None else None, int(p or 0), int(c or 0))
            for k, n, avg, p, c in s.execute(q).all()]
    return sorted(rows, key=lambda r: (-(r.average_pct or 0), r.label))


def scores_by_agent(s: Session, month: str, group_ids: frozenset[int] | None = None) -> list[ScoreRow]:
    names = {sid: name for sid, name in s.execute(select(Staff.id, Staff.display_name))}
    return _scores(s, month, QaEvaluation.agent_id, names, group_ids)


def scores_by_group(s: Session, month: str, group_ids: frozenset[int] | None = None) -> list[ScoreRow]:
    names = {gid: name for gid, name in s.execute(select(ServiceGroup.id, ServiceGroup.name))}
    return _scores(s, month, QaEvaluation.group_id, names, group_ids)


def group_month_scores(s: Session, month: str) -> dict[int, tuple[float, int]]:
    """group id -> (mean 质检 score, evaluations) of ``month``: the KPI ranking's quality figure."""
    return {r.key: (r.average_pct, r.evaluations) for r in scores_by_group(s, month)
            if r.key is not None and r.average_pct is not None}


def sample_settings_week(core: Any, day: Any) -> int:
    """Sample the ISO week of ``day`` by the settings (``qa_sample_rate`` when > 0, else ``qa_sample_count``);
    the care part's daily ``qa_sampling`` job. Returns how many recordings were picked now."""
    from callcenter.store.db import run_in_transaction

    st = core.settings
    week = rules.iso_week(day)
    kwargs: dict[str, Any] = {"rate": st.qa_sample_rate} if st.qa_sample_rate > 0 else {"count": st.qa_sample_count}
    return len(run_in_transaction(core.sessions, lambda s: sample_week(s, week, st.tz, core.clock(), **kwargs)))
