"""Quality inspection (质检) rules, pure (standard library only): evaluation forms, scoring, weekly sampling.

A form is a list of items, each with a weight and a kind:

* ``yes_no`` — the answer is ``True``/``False``; full weight for yes;
* ``scale`` — an integer 0..``scale_max``; the weight times answer/scale_max;
* ``comment`` — free text, weight 0 (it does not count).

A ``critical`` item (yes/no, e.g. 不承诺收益 "no promise of returns") answered "no" fails the whole evaluation:
its score is 0 whatever the rest. Otherwise the score is the weighted share of the points, in percent, and the
evaluation passes at the form's pass mark.

Sampling (``pick_week``): per agent and ISO week, a count (``n`` calls) or a rate (``ceil(rate x calls)``) of the
agent's recorded calls picked at random (a seeded ``random.Random``, so a run can be repeated), plus every call
that led to a complaint, which is always inspected and does not use up the random share.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

KINDS = ("yes_no", "scale", "comment")


class FormError(ValueError):
    pass


@dataclass(frozen=True)
class FormItem:
    key: str
    label: str
    kind: str = "yes_no"
    weight: int = 10
    critical: bool = False
    scale_max: int = 5

    def check(self) -> "FormItem":
        if not self.key or not self.label:
            raise FormError("an item needs a key and a label")
        if self.kind not in KINDS:
            raise FormError(f"item {self.label!r}: kind must be one of {', '.join(KINDS)}")
        if not 0 <= self.weight <= 100:
            raise FormError(f"item {self.label!r}: weight must be 0..100")
        if self.kind == "comment" and self.weight:
            raise FormError(f"item {self.label!r}: a comment has no weight")
        if self.critical and self.kind != "yes_no":
            raise FormError(f"item {self.label!r}: only a yes/no item can be critical")
        if self.kind == "scale" and not 1 <= self.scale_max <= 10:
            raise FormError(f"item {self.label!r}: scale_max must be 1..10")
        return self

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "label": self.label, "kind": self.kind, "weight": self.weight,
                "critical": self.critical, "scale_max": self.scale_max}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> "FormItem":
        return cls(str(d["key"]), str(d["label"]), str(d.get("kind", "yes_no")), int(str(d.get("weight", 10))),
                   bool(d.get("critical", False)), int(str(d.get("scale_max", 5)))).check()


def check_form(items: Sequence[FormItem]) -> list[FormItem]:
    if not items:
        raise FormError("a form needs at least one item")
    if len(items) > 50:
        raise FormError("a form has at most 50 items")
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        raise FormError("item keys must be unique")
    checked = [i.check() for i in items]
    if not any(i.weight for i in checked) and not any(i.critical for i in checked):
        raise FormError("a form needs an item that counts (a weight or a critical item)")
    return checked


def parse_form_lines(text: str) -> list[FormItem]:
    """The form editor's text, one item a line: ``label | kind | weight | critical | scale_max`` (all but the
    label optional: ``身份核实 | yes_no | 20 | critical``). Keys are ``i1``, ``i2``... in order."""
    items = []
    for n, line in enumerate((ln for ln in text.splitlines() if ln.strip()), start=1):
        cells = [c.strip() for c in line.split("|")]
        label = cells[0]
        kind = cells[1] if len(cells) > 1 and cells[1] else "yes_no"
        try:
            weight = int(cells[2]) if len(cells) > 2 and cells[2] else (0 if kind == "comment" else 10)
            scale_max = int(cells[4]) if len(cells) > 4 and cells[4] else 5
        except ValueError:
            raise FormError(f"line {n}: weight and scale_max are whole numbers") from None
        flag = cells[3].lower() if len(cells) > 3 else ""
        if flag not in ("", "critical", "关键", "yes", "no"):
            raise FormError(f"line {n}: the fourth cell is 'critical' or empty")
        items.append(FormItem(f"i{n}", label, kind, weight, flag in ("critical", "关键", "yes"), scale_max))
    return check_form(items)


@dataclass(frozen=True)
class Score:
    pct: float  # 0..100
    passed: bool
    critical_failed: tuple[str, ...]  # keys of critical items answered "no"


def score(items: Sequence[FormItem], answers: Mapping[str, object], pass_pct: float = 80.0) -> Score:
    """Score ``answers`` (item key -> bool / int / str) on ``items``; FormError for a missing or bad answer."""
    points = 0.0
    total = 0
    failed: list[str] = []
    for item in items:
        value = answers.get(item.key)
        if item.kind == "comment":
            if value is not None and not isinstance(value, str):
                raise FormError(f"{item.label}: a comment is text")
            continue
        if item.kind == "yes_no":
            if not isinstance(value, bool):
                raise FormError(f"{item.label}: answer yes or no")
            if item.critical and not value:
                failed.append(item.key)
            points += item.weight if value else 0
        else:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= item.scale_max:
                raise FormError(f"{item.label}: answer 0..{item.scale_max}")
            points += item.weight * value / item.scale_max
        total += item.weight
    if failed:
        return Score(0.0, False, tuple(failed))
    pct = round(100.0 * points / total, 1) if total else 100.0
    return Score(pct, pct >= pass_pct, ())


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(week: str) -> tuple[date, date]:
    """Monday of ISO ``week`` (``2026-W48``) and the Monday after."""
    try:
        year, w = int(week[:4]), int(week[6:])
        if week[4:6] != "-W":
            raise ValueError(week)
        monday = date.fromisocalendar(year, w, 1)
    except ValueError:
        raise ValueError(f"not an ISO week: {week!r} (expected YYYY-Www)") from None
    return monday, monday + timedelta(days=7)


@dataclass(frozen=True)
class Pick:
    recording_id: int
    agent_id: int
    reason: str  # "random" / "complaint"


def sample_size(calls: int, *, count: int | None = None, rate: float | None = None) -> int:
    """How many of an agent's ``calls`` the week's random sample takes (a count, or a rate rounded up)."""
    if (count is None) == (rate is None):
        raise ValueError("give a count or a rate")
    if count is not None:
        if count < 0:
            raise ValueError("the sample count is not negative")
        return min(count, calls)
    assert rate is not None
    if not 0 <= rate <= 1:
        raise ValueError("the sample rate is between 0 and 1")
    return min(calls, math.ceil(rate * calls - 1e-9))


def pick_week(calls: Iterable[tuple[int, int, bool]], *, count: int | None = None, rate: float | None = None,
              already: Mapping[int, int] | None = None, seed: int = 0) -> list[Pick]:
    """``calls``: (recording id, agent id, complaint?) of one week not yet sampled. Every complaint call, and per
    agent a random ``sample_size`` of the agent's calls (less what ``already`` holds: random picks made earlier
    for that agent and week, so a second run tops up and never doubles the sample)."""
    by_agent: dict[int, list[int]] = {}
    picks: list[Pick] = []
    total: dict[int, int] = dict(already or {})
    for rec_id, agent_id, complaint in calls:
        if complaint:
            picks.append(Pick(rec_id, agent_id, "complaint"))
        else:
            by_agent.setdefault(agent_id, []).append(rec_id)
    rng = random.Random(seed)
    for agent_id in sorted(by_agent):
        ids = sorted(by_agent[agent_id])
        done = total.get(agent_id, 0)
        want = sample_size(len(ids) + done, count=count, rate=rate) - done
        for rec_id in rng.sample(ids, max(0, min(want, len(ids)))):
            picks.append(Pick(rec_id, agent_id, "random"))
    return sorted(picks, key=lambda p: (p.agent_id, p.recording_id))


def average(scores: Iterable[float]) -> float | None:
    values = list(scores)
    return round(sum(values) / len(values), 1) if values else None
