"""Pacing of the outbound dialler: how many attempts to start now.

Pure standard library (and the pure rule ``callcenter.domain.abandon``), no I/O, no clock: time comes in
through ``DialerState.now``.
The contract (see DESIGN.md, "Pacing API") is stable; benchmarks and outside checks drive it::

    pacer = make_pacer("predictive", target_abandon=0.03)
    pacer.record(AttemptOutcome(kind="human", ring_s=7.2, talk_s=95.0, abandoned=False))
    n = pacer.calls_to_place(DialerState(now=123.0, agents=[AgentView("idle", 4.0)], in_flight=[3.2]))

Modes:

* ``preview``     -- never dials by itself (the agent dials); always 0.
* ``progressive`` -- one attempt per idle agent not already covered by an attempt in flight.
* ``ratio``       -- ``ratio`` attempts per idle agent, minus the attempts in flight.
* ``predictive``  -- learns from ``record`` the answer (human) probability and the distributions of
  time-to-outcome per kind, talk time and (from the agents it is shown) wrap-up time.  For every
  candidate new attempt it estimates the probability that, if a human answers it, no agent will be
  free within the grace period (the *marginal abandon probability*), from a normal approximation
  of "agents free by then" minus "humans answered before it" (attempts in flight and the other new
  attempts; optionally, ``future_weight`` > 0, those it will probably place in the next seconds).
  It places attempts while that probability is under a threshold, a stricter one while some agent
  is idle now (``idle_factor``).  A feedback controller moves the threshold so that the realised
  abandon rate (answered humans and abandoned ones, counted from ``record``) settles below the
  target: it backs off after abandons and pushes harder while there are none, and it cuts as the
  count over the pacer's life, over the recent humans or over the current shift (a gap of an hour
  in ``now`` starts a new one) nears its budget.  Until it has seen enough outcomes it behaves like
  ``progressive``.  It is deterministic given its inputs.  Cost: one pass over the agents and the
  attempts in flight per decision, with per-bin probabilities cached between table rebuilds.

  Tried and dropped (no gain at equal abandonment at 20 agents, 4 seeds): the exact Poisson-binomial
  distribution instead of the normal approximation, an Edgeworth correction, 8 horizons instead of 4.

The abandon budget (``callcenter.domain.abandon``): ``DialerState.budget`` optionally carries the campaign's
figures from the database (today and 30 days, every dialler's; ``dialer.budget.load_budgets``).  Given one,
``ratio`` and ``predictive`` never place more than ``progressive`` would while the campaign is at or over
``abandon_cap`` (3 % by default, ``domain.abandon.over_cap``), and the predictive pacer's day budget term
counts the database's figures for today (so after a restart it starts from the day's real numbers, not from
zero) plus a 30-day term.  Without a budget (``budget=None``, the default) they behave as before.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, Sequence

from callcenter.domain.abandon import REGULATORY_CAP, AbandonBudget, check_cap as _check_cap, over_cap

__all__ = [
    "AGENT_STATES",
    "KINDS",
    "MODES",
    "AgentView",
    "AttemptOutcome",
    "DialerState",
    "Pacer",
    "PredictivePacer",
    "PreviewPacer",
    "ProgressivePacer",
    "RatioPacer",
    "make_pacer",
]

KINDS: tuple[str, ...] = ("human", "machine", "busy", "no_answer", "failed")
AGENT_STATES: tuple[str, ...] = ("idle", "talking", "wrap_up")
MODES: tuple[str, ...] = ("preview", "progressive", "ratio", "predictive")

_KIND_SET = frozenset(KINDS)
_STATE_SET = frozenset(AGENT_STATES)
_INF = math.inf


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """One finished attempt. ``ring_s``: seconds from dialling to the outcome (answer for humans)."""

    kind: str
    ring_s: float
    talk_s: float | None = None
    abandoned: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KIND_SET:
            raise ValueError(f"unknown attempt kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        _check_seconds("ring_s", self.ring_s)
        if self.talk_s is not None:
            _check_seconds("talk_s", self.talk_s)
            if self.kind != "human":
                raise ValueError(f"talk_s is only meaningful for a human answer, not {self.kind!r}")
        if not isinstance(self.abandoned, bool):
            raise ValueError(f"abandoned must be a bool, got {self.abandoned!r}")
        if self.abandoned and self.kind != "human":
            raise ValueError(f"only an answered human can be abandoned, not {self.kind!r}")
        if self.abandoned and self.talk_s is not None:
            raise ValueError("an abandoned call was never connected, so it has no talk_s")


class _AgentViewFields(NamedTuple):
    state: str
    seconds: float


class AgentView(_AgentViewFields):
    """A logged-in, unpaused agent: its state and the seconds spent in that state so far.

    An immutable named tuple (the dialler builds one per agent at every decision, so it is kept cheap).
    """

    __slots__ = ()

    def __new__(cls, state: str, seconds: float = 0.0) -> AgentView:
        if state not in _STATE_SET:
            raise ValueError(f"unknown agent state {state!r}; expected one of {', '.join(AGENT_STATES)}")
        if seconds.__class__ is not float or not 0.0 <= seconds < _INF:
            _check_seconds("AgentView.seconds", seconds)
        return tuple.__new__(cls, (state, seconds))


@dataclass(frozen=True, slots=True)
class DialerState:
    """What the dialler sees now. ``in_flight``: seconds since each attempt in flight was dialled; ``budget``:
    the campaign's abandon budget from the database (``None``: not known, the pacer counts only its own)."""

    now: float
    agents: Sequence[AgentView] = ()
    in_flight: Sequence[float] = ()
    budget: AbandonBudget | None = None

    def __post_init__(self) -> None:
        if isinstance(self.now, bool) or not isinstance(self.now, (int, float)) or not math.isfinite(self.now):
            raise ValueError(f"now must be a finite number of seconds, got {self.now!r}")
        agents = self.agents
        if agents and not set(map(type, agents)) <= {AgentView}:
            bad = next(a for a in agents if type(a) is not AgentView)
            raise ValueError(f"agents must be AgentView instances, got {bad!r}")
        ages = self.in_flight
        if ages:
            try:
                fine = 0.0 <= min(ages) and sum(ages) < _INF
            except TypeError:
                fine = False
            if not fine:
                for age in ages:
                    _check_seconds("in_flight age", age)
        if self.budget is not None and not isinstance(self.budget, AbandonBudget):
            raise ValueError(f"budget must be an AbandonBudget or None, got {self.budget!r}")


def _progressive(state: DialerState) -> int:
    return max(0, [a[0] for a in state.agents].count("idle") - len(state.in_flight))


class Pacer(Protocol):
    mode: str

    def record(self, outcome: AttemptOutcome) -> None: ...

    def calls_to_place(self, state: DialerState) -> int: ...


def _check_outcome(outcome: AttemptOutcome) -> None:
    if not isinstance(outcome, AttemptOutcome):
        raise ValueError(f"record() takes an AttemptOutcome, got {outcome!r}")


def _check_state(state: DialerState) -> None:
    if not isinstance(state, DialerState):
        raise ValueError(f"calls_to_place() takes a DialerState, got {state!r}")


@dataclass
class _Counts:
    attempts: int = 0
    humans: int = 0
    abandoned: int = 0

    def add(self, outcome: AttemptOutcome) -> None:
        self.attempts += 1
        if outcome.kind == "human":
            self.humans += 1
            if outcome.abandoned:
                self.abandoned += 1

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.humans if self.humans else 0.0


class PreviewPacer:
    """The agent dials from the preview screen; the pacer never places a call."""

    mode = "preview"

    def __init__(self) -> None:
        self.counts = _Counts()

    def record(self, outcome: AttemptOutcome) -> None:
        _check_outcome(outcome)
        self.counts.add(outcome)

    def calls_to_place(self, state: DialerState) -> int:
        _check_state(state)
        return 0


class RatioPacer:
    """``ratio`` attempts per idle agent, minus those already in flight (ratio 1 is progressive); while the
    state's budget is at or over ``abandon_cap``, one per idle agent (progressive) until it is under again."""

    mode = "ratio"

    def __init__(self, ratio: float = 2.0, *, abandon_cap: float = REGULATORY_CAP) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio):
            raise ValueError(f"ratio must be a number, got {ratio!r}")
        if ratio < 1.0:
            raise ValueError(f"ratio must be >= 1.0 (one call per idle agent at least), got {ratio!r}")
        self.ratio = float(ratio)
        self.abandon_cap = _check_cap(abandon_cap)
        self.counts = _Counts()

    def record(self, outcome: AttemptOutcome) -> None:
        _check_outcome(outcome)
        self.counts.add(outcome)

    def calls_to_place(self, state: DialerState) -> int:
        _check_state(state)
        if state.budget is not None and self.ratio > 1.0 and over_cap(state.budget, self.abandon_cap):
            return _progressive(state)
        idle = [a[0] for a in state.agents].count("idle")
        wanted = math.floor(self.ratio * idle + 1e-9)
        return max(0, wanted - len(state.in_flight))


class ProgressivePacer(RatioPacer):
    """One attempt per idle agent not already covered by an attempt in flight."""

    mode = "progressive"

    def __init__(self) -> None:
        super().__init__(1.0)


# ---------------------------------------------------------------------------------------------
# predictive


class _Window:
    """The last ``size`` values, kept sorted too, for empirical distribution functions."""

    __slots__ = ("size", "values", "ordered")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: deque[float] = deque()
        self.ordered: list[float] = []

    def add(self, value: float) -> None:
        self.values.append(value)
        insort(self.ordered, value)
        if len(self.values) > self.size:
            old = self.values.popleft()
            del self.ordered[bisect_right(self.ordered, old) - 1]

    def __len__(self) -> int:
        return len(self.ordered)

    def cdf(self, x: float) -> float:
        """P(X <= x)."""
        n = len(self.ordered)
        return bisect_right(self.ordered, x) / n if n else 0.0

    def quantile(self, q: float) -> float:
        n = len(self.ordered)
        return self.ordered[min(n - 1, max(0, int(q * n)))]

    def mean(self) -> float:
        return sum(self.ordered) / len(self.ordered) if self.ordered else 0.0


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass
class _Tables:
    """Quantities derived from what the pacer has learnt; rebuilt now and then, filled lazily."""

    p_human: float
    p_kind: dict[str, float]
    horizons: tuple[float, ...]  # answer times of a new call's human (quantiles of the learnt distribution)
    future_humans: tuple[float, ...]  # humans expected from calls placed after now, answering before each horizon
    wrap_mean: float
    wrap_survival: list[float]  # per _WRAP_BIN, P(wrap-up longer than that)
    inflight: dict[int, tuple[float, ...]] = field(default_factory=dict)
    talking: dict[int, tuple[float, ...]] = field(default_factory=dict)
    wrapping: dict[int, tuple[float, ...]] = field(default_factory=dict)


_QUANTILES = (0.125, 0.375, 0.625, 0.875)
_M = len(_QUANTILES)
_AGE_BIN = 0.5  # seconds, in-flight ages
_TALK_BIN = 1.0  # seconds, talking agents
_WRAP_BIN = 0.5  # seconds, wrap-up agents
_WRAP_MAX_BINS = 1200
_TALK_PER_S = 1.0 / _TALK_BIN
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_WRAP_PER_S = 1.0 / _WRAP_BIN
_AGE_PER_S = 1.0 / _AGE_BIN  # 600 s of wrap-up at most


class PredictivePacer:
    """Model-based predictive pacing with feedback on the realised abandon rate (see module doc).

    Tuning knobs (defaults are what the benchmark uses): ``setpoint`` -- the controller aims at
    setpoint * target_abandon; ``gain`` -- step of log(threshold) per answered human;
    ``warmup_attempts``/``warmup_humans`` -- progressive until that many outcomes were recorded;
    ``rebuild_every_s`` -- how often the learnt tables are refreshed; ``future_weight`` -- weight of
    the humans expected from calls placed in the next seconds; ``budget`` -- cut the threshold when
    the lifetime or recent abandon count is over target; ``displace`` -- also count the in-flight
    humans a new call would take an agent from; ``edgeworth`` -- skewness-corrected normal tails;
    ``initial_threshold`` -- the marginal abandon probability allowed at first (default: the target);
    ``idle_factor`` -- the threshold is multiplied by it while some agent is idle now (< 1: stricter
    then, which at 20 agents buys ~0.5 point of talk share at equal abandonment); ``recent_size`` --
    answered humans in the recent window of the budget term; ``slack`` -- how many abandons under
    budget the cut starts (a larger slack cuts earlier and more smoothly); ``abandon_cap`` -- with a
    budget in the state at or over it (``domain.abandon.over_cap``), never more calls than progressive.
    """

    mode = "predictive"

    def __init__(
        self,
        target_abandon: float = 0.03,
        *,
        grace_s: float = 2.0,
        setpoint: float = 0.95,
        gain: float = 0.08,
        warmup_attempts: int = 20,
        warmup_humans: int = 5,
        rebuild_every_s: float = 120.0,
        max_per_decision: int | None = None,
        future_weight: float = 0.0,
        budget: bool = True,
        displace: bool = False,
        initial_threshold: float | None = None,
        edgeworth: bool = False,
        idle_factor: float = 0.5,
        recent_size: int = 1500,
        slack: float = 3.0,
        day_gap_s: float = 3600.0,
        initial_factor: float = 1.0,
        abandon_cap: float = REGULATORY_CAP,
    ) -> None:
        if isinstance(target_abandon, bool) or not isinstance(target_abandon, (int, float)):
            raise ValueError(f"target_abandon must be a number, got {target_abandon!r}")
        if not 0.0 < target_abandon < 1.0:
            raise ValueError(f"target_abandon must be between 0 and 1 (e.g. 0.03), got {target_abandon!r}")
        _check_seconds("grace_s", grace_s)
        if not 0.0 < setpoint <= 1.0:
            raise ValueError(f"setpoint is a fraction of the target in (0, 1], got {setpoint!r}")
        if gain <= 0:
            raise ValueError(f"gain must be > 0, got {gain!r}")
        if warmup_attempts < 0 or warmup_humans < 0:
            raise ValueError("warm-up counts must be >= 0")
        _check_seconds("rebuild_every_s", rebuild_every_s)
        if not 0.0 < idle_factor <= 10.0:
            raise ValueError(f"idle_factor must be in (0, 10], got {idle_factor!r}")
        if isinstance(recent_size, bool) or not isinstance(recent_size, int) or recent_size < 1:
            raise ValueError(f"recent_size must be a whole number of humans >= 1, got {recent_size!r}")
        if not 0.0 <= slack < _INF:
            raise ValueError(f"slack must be a number of calls >= 0, got {slack!r}")
        self.target_abandon = float(target_abandon)
        self.grace_s = float(grace_s)
        self.setpoint = float(setpoint)
        self.gain = float(gain)
        self.warmup_attempts = warmup_attempts
        self.warmup_humans = warmup_humans
        self.rebuild_every_s = float(rebuild_every_s)
        self.max_per_decision = max_per_decision
        self.future_weight = float(future_weight)
        self.budget = budget
        self.displace = displace
        self.edgeworth = edgeworth
        self.idle_factor = float(idle_factor)
        self.recent_size = recent_size
        self.slack = float(slack)
        _check_seconds("day_gap_s", day_gap_s)
        self.day_gap_s = float(day_gap_s)
        self.initial_factor = float(initial_factor)
        self.abandon_cap = _check_cap(abandon_cap)
        self._budget: AbandonBudget | None = None  # the latest one a state carried
        self._most: int | None = None  # at most this many calls now (progressive, while at the cap)
        self.counts = _Counts()
        # learnt from record(): outcome mix over the last attempts, times to outcome per kind, talk times
        self._kinds: deque[str] = deque()
        self._kind_counts = {kind: 0 for kind in KINDS}
        self._kind_window = 4000
        self._ring = {kind: _Window(1500) for kind in KINDS}
        self._talk = _Window(2000)
        # learnt from the agents it is shown: ages of agents in wrap-up, sampled once a second
        # (time-weighted: between two decisions nothing changed, so each agent seen in wrap-up at the
        # previous decision spent the interval there, at ages around its age then + half the interval)
        self._wrap_hist = [0.0] * (_WRAP_MAX_BINS + 2)
        self._wrap_weight = 0.0  # agent-seconds in the histogram
        self._wrap_memory_s = 20000.0  # halve the histogram beyond this many agent-seconds
        self._prev_wrap: list[float] = []
        self._prev_now: float | None = None
        # feedback: log of the marginal-abandon threshold, and the recent humans for the budget term
        self._log_threshold = math.log(initial_threshold or self.initial_factor * self.target_abandon)
        self._recent: deque[bool] = deque()
        self._recent_abandoned = 0
        # the day (a run of decisions without a gap of day_gap_s): its own budget, so each shift keeps the target
        self._day_humans = 0
        self._day_abandoned = 0
        self._recent_size = int(self.recent_size)
        # placed-call rate (for the calls placed over the next seconds)
        self._placed: deque[tuple[float, int]] = deque()
        self._placed_sum = 0
        self._rate_window_s = 60.0
        self._first_now: float | None = None
        self._tables: _Tables | None = None
        self._built_at = -math.inf
        self._dirty = True
        self._talking_now = 0
        self._agent_key: tuple[object, list[int], list[int]] | None = None
        self._agent_sums: list[float] = []

    # -- learning ---------------------------------------------------------------------------

    def record(self, outcome: AttemptOutcome) -> None:
        _check_outcome(outcome)
        self.counts.add(outcome)
        kind = outcome.kind
        self._kinds.append(kind)
        self._kind_counts[kind] += 1
        if len(self._kinds) > self._kind_window:
            self._kind_counts[self._kinds.popleft()] -= 1
        self._ring[kind].add(float(outcome.ring_s))
        if outcome.talk_s is not None:
            self._talk.add(float(outcome.talk_s))
        if kind == "human":
            self._feedback(outcome.abandoned)
        self._dirty = True

    def _feedback(self, abandoned: bool) -> None:
        # Integral action (a Robbins-Monro step): each answered human moves log(threshold) by
        # gain * (setpoint*target - abandoned); it settles where the abandon rate is at the setpoint.
        goal = self.setpoint * self.target_abandon
        self._log_threshold += self.gain * (goal - (1.0 if abandoned else 0.0))
        self._log_threshold = min(math.log(0.9), max(math.log(1e-4), self._log_threshold))
        self._recent.append(abandoned)
        self._recent_abandoned += abandoned
        self._day_humans += 1
        self._day_abandoned += abandoned
        if len(self._recent) > self._recent_size:
            self._recent_abandoned -= self._recent.popleft()

    @property
    def threshold(self) -> float:
        """The marginal abandon probability a new attempt may carry, after the budget terms."""
        threshold = math.exp(self._log_threshold)
        if not self.budget:
            return threshold
        # Budget terms: over budget (lifetime, the recent window, the day) -> cut hard, proportionally.  With
        # the database's budget the day is the campaign's local day (every dialler's, across restarts), and
        # its 30 days are a term too; without it the day is the pacer's own shift.
        terms = [(self.counts.abandoned, self.counts.humans), (self._recent_abandoned, len(self._recent))]
        budget = self._budget
        if budget is None:
            terms.append((self._day_abandoned, self._day_humans))
        else:
            terms.append((budget.today_abandoned, budget.today_humans))
            terms.append((budget.d30_abandoned, budget.d30_humans))
        for abandoned, humans in terms:
            if humans:
                excess = abandoned - self.target_abandon * humans
                if excess > -self.slack:
                    threshold *= math.exp(-0.5 * (excess + self.slack))
        return threshold

    @property
    def warmed_up(self) -> bool:
        return (
            self.counts.attempts >= self.warmup_attempts
            and len(self._ring["human"]) >= max(1, self.warmup_humans)
            and len(self._talk) >= max(1, self.warmup_humans)
        )

    def _observe_wrap_ups(self, now: float, ages: list[float]) -> None:
        prev_now = self._prev_now
        if prev_now is not None and self._prev_wrap:
            dt = now - prev_now
            if 0.0 < dt <= 5.0:  # longer gaps (a pause, the night) say nothing about wrap-up
                hist = self._wrap_hist
                span = dt * _WRAP_PER_S
                share = dt
                for age in self._prev_wrap:
                    # spread dt over the bins the age went through, [age, age + dt)
                    lo = age * _WRAP_PER_S
                    hi = lo + span
                    b = int(lo)
                    if hi < b + 1.0 and b < _WRAP_MAX_BINS:  # the usual case: all within one bin
                        hist[b] += share
                        continue
                    while lo < hi and b < _WRAP_MAX_BINS:
                        edge = min(hi, b + 1.0)
                        hist[b] += (edge - lo) * _WRAP_BIN
                        lo = edge
                        b += 1
                    if lo < hi:
                        hist[_WRAP_MAX_BINS] += (hi - lo) * _WRAP_BIN
                self._wrap_weight += dt * len(self._prev_wrap)
                if self._wrap_weight > self._wrap_memory_s:
                    self._wrap_hist = [c / 2.0 for c in hist]
                    self._wrap_weight /= 2.0
                self._dirty = True
        self._prev_now = now
        self._prev_wrap = ages

    # -- tables -------------------------------------------------------------------------------

    def _build(self, now: float) -> _Tables:
        total = len(self._kinds)
        # Humans connected but not yet recorded (still talking) would otherwise bias the answer rate low.
        unrecorded = self._talking_now
        p_kind = {kind: (self._kind_counts[kind] + (unrecorded if kind == "human" else 0)) / (total + unrecorded)
                  for kind in KINDS}
        p_human = p_kind["human"]
        human_ring = self._ring["human"]
        horizons = tuple(human_ring.quantile(q) for q in _QUANTILES)
        rate = self._placed_rate(now)
        future = []
        for horizon in horizons:
            # Expected humans from calls placed uniformly over (0, horizon) that answer before horizon:
            # rate * p_human * integral_0^horizon F(u) du, on a coarse grid.
            steps = 8
            integral = sum(human_ring.cdf(horizon * (i + 0.5) / steps) for i in range(steps)) * horizon / steps
            future.append(self.future_weight * rate * p_human * integral)
        # Wrap-up: the age of an agent seen in wrap-up at a random moment has density S(a) / E[W],
        # so the age histogram, normalised at zero, is the survival function of the wrap-up time.
        hist = self._wrap_hist
        top = max(i for i, c in enumerate(hist) if c) if any(hist) else -1
        if top >= 0 and self._wrap_weight >= 200.0:
            # Three-bin smoothing, then made non-increasing.
            ref = max(1e-9, (hist[0] + hist[1]) / 2.0)
            survival = [1.0]
            running = 1.0
            for b in range(1, top + 1):
                level = (hist[b - 1] + hist[b] + (hist[b + 1] if b + 1 < len(hist) else 0.0)) / 3.0
                running = min(running, level / ref)
                survival.append(running)
            wrap_mean = sum(survival) * _WRAP_BIN
        else:
            survival = []
            wrap_mean = 30.0  # not learnt yet: assume long wrap-ups (dials less)
        return _Tables(
            p_human=p_human,
            p_kind=p_kind,
            horizons=horizons,
            future_humans=tuple(future),
            wrap_mean=wrap_mean,
            wrap_survival=survival,
        )

    def _inflight_row(self, tables: _Tables, b: int) -> tuple[float, ...]:
        """For an attempt in flight aged b bins: P(a human answers it by each horizon), and variances."""
        age = b * _AGE_BIN
        alive = 0.0
        for kind in KINDS:
            window = self._ring[kind]
            if len(window):
                alive += tables.p_kind[kind] * (1.0 - window.cdf(age))
        means = []
        if alive <= 1e-9:
            means = [0.0] * _M
        else:
            human = self._ring["human"]
            f_age = human.cdf(age)
            for horizon in tables.horizons:
                means.append(max(0.0, tables.p_human * (human.cdf(age + horizon) - f_age) / alive))
        return tuple(means) + tuple(m * (1.0 - m) for m in means) + tuple(m * (1.0 - m) * (1.0 - 2.0 * m) for m in means)

    def _talking_row(self, tables: _Tables, b: int) -> tuple[float, ...]:
        """For an agent talking for b bins: P(it is free by each horizon + grace), and variances."""
        elapsed = b * _TALK_BIN
        talk = self._talk
        survive = 1.0 - talk.cdf(elapsed)
        means = []
        for horizon in tables.horizons:
            reach = elapsed + horizon + self.grace_s - tables.wrap_mean
            if survive <= 1e-9 or reach <= elapsed:
                means.append(0.0)
            else:
                means.append(min(1.0, max(0.0, (talk.cdf(reach) - talk.cdf(elapsed)) / survive)))
        return tuple(means) + tuple(m * (1.0 - m) for m in means) + tuple(m * (1.0 - m) * (1.0 - 2.0 * m) for m in means)

    def _wrapping_row(self, tables: _Tables, b: int) -> tuple[float, ...]:
        survival = tables.wrap_survival
        means = []
        for horizon in tables.horizons:
            if not survival:
                means.append(0.0)
                continue
            here = survival[b] if b < len(survival) else 0.0
            if here <= 1e-9:
                means.append(0.5)  # older than any wrap-up seen: probably about to finish
                continue
            later = int(b + (horizon + self.grace_s) / _WRAP_BIN)
            there = survival[later] if later < len(survival) else 0.0
            means.append(min(1.0, max(0.0, 1.0 - there / here)))
        return tuple(means) + tuple(m * (1.0 - m) for m in means) + tuple(m * (1.0 - m) * (1.0 - 2.0 * m) for m in means)

    def _placed_rate(self, now: float) -> float:
        placed = self._placed
        while placed and placed[0][0] < now - self._rate_window_s:
            self._placed_sum -= placed.popleft()[1]
        span = min(self._rate_window_s, now - self._first_now) if self._first_now is not None else 0.0
        return self._placed_sum / span if span >= 5.0 else 0.0

    # -- deciding -----------------------------------------------------------------------------

    def calls_to_place(self, state: DialerState) -> int:
        _check_state(state)
        now = float(state.now)
        self._budget = budget = state.budget
        # at or over the cap: no over-dialling until under again (it still learns the agents' wrap-ups)
        self._most = _progressive(state) if budget is not None and over_cap(budget, self.abandon_cap) else None
        return self._calls_to_place(state, now)

    def _calls_to_place(self, state: DialerState, now: float) -> int:
        if self._first_now is None:
            self._first_now = now
        elif self._prev_now is not None and now - self._prev_now >= self.day_gap_s:
            self._day_humans = self._day_abandoned = 0  # a new shift
        agents = state.agents
        # (comprehensions and map() rather than one loop with branches: this runs at every event)
        talking = list(map(int, map(_TALK_PER_S.__mul__, [s for st, s in agents if st == "talking"])))
        wrap_ages = [s for st, s in agents if st == "wrap_up"]
        wrapping = list(map(int, map(_WRAP_PER_S.__mul__, wrap_ages)))
        idle = len(agents) - len(talking) - len(wrapping)
        self._talking_now = len(talking)
        self._observe_wrap_ups(now, wrap_ages)
        in_flight = state.in_flight
        if not self.warmed_up:
            n = max(0, idle - len(in_flight))
            return self._placed_now(now, n)
        every = self.rebuild_every_s if self.counts.attempts >= 10 * self.warmup_attempts else self.rebuild_every_s / 8
        if self._tables is None or (self._dirty and now - self._built_at >= every) or now < self._built_at:
            self._tables = self._build(now)
            self._built_at = now
            self._dirty = False
        tables = self._tables
        # Agents free by each horizon (+ grace): idle ones surely, the others with learnt probabilities.
        # Sums over the agents are kept while their binned states and the tables stay the same (between
        # two decisions within a second most events touch only the attempts in flight).
        key = self._agent_key
        if key is not None and key[0] is tables and key[1] == talking and key[2] == wrapping:
            agent_sums = self._agent_sums
        else:
            agent_sums = [0.0] * (3 * _M)
            for rows, cache, maker in (
                (talking, tables.talking, self._talking_row),
                (wrapping, tables.wrapping, self._wrapping_row),
            ):
                if not rows:
                    continue
                for b in set(rows).difference(cache):
                    cache[b] = maker(tables, b)
                agent_sums = list(map(sum, zip(agent_sums, *map(cache.__getitem__, rows))))
            self._agent_key, self._agent_sums = (tables, talking, wrapping), agent_sums
        mu_a = [idle + x for x in agent_sums[:_M]]
        var_a = agent_sums[_M : 2 * _M]
        skew_a = agent_sums[2 * _M :]  # third cumulants
        # Humans answering before each horizon: in flight, plus those from calls placed in the next seconds.
        mu_h = list(tables.future_humans)
        var_h = list(tables.future_humans)
        skew_h = list(tables.future_humans)  # Poisson: all cumulants equal the mean
        if in_flight:
            bins = list(map(int, map(_AGE_PER_S.__mul__, in_flight)))
            cache = tables.inflight
            for b in set(bins).difference(cache):
                cache[b] = self._inflight_row(tables, b)
            sums = list(map(sum, zip(*map(cache.__getitem__, bins))))
            for m in range(_M):
                mu_h[m] += sums[m]
                var_h[m] += sums[_M + m]
                skew_h[m] += sums[2 * _M + m]
        threshold = self.threshold
        p = tables.p_human
        # While agents sit idle now, the calls are held to a stricter threshold (idle_factor < 1): the
        # bursts placed for idle agents carry more risk than the model sees; calls placed ahead of agents
        # finishing (nobody idle) are cheaper.  The feedback scales both together.
        allowed = threshold * _M * (self.idle_factor if idle else 1.0)
        gaps = [mu_a[m] - mu_h[m] for m in range(_M)]
        spreads = [var_a[m] + var_h[m] for m in range(_M)]
        skews = [skew_a[m] - skew_h[m] for m in range(_M)]
        edgeworth = self.edgeworth
        steps = [p * q for q in _QUANTILES]
        erf = math.erf
        sqrt = math.sqrt

        def risky(k: int) -> bool:
            # The (k+1)-th new call: if a human answers it at horizon m, each of the other k new calls
            # has answered before with probability p * q_m.  It is abandoned if the agents free by then
            # (+ grace) are no more than the humans answered before it.  Is that likelier than allowed?
            risk = 0.0
            later = 0.0
            for m in range(_M - 1, -1, -1):
                q = steps[m]
                mean = gaps[m] - k * q
                var = spreads[m] + k * q * (1.0 - q)
                if var <= 1e-12:
                    short = 1.0 if mean < 0.5 else 0.0
                else:
                    sd = sqrt(var)
                    z = (0.5 - mean) / sd
                    short = 0.5 * (1.0 + erf(z * _SQRT_HALF))
                    if edgeworth:
                        # skewness correction of the normal approximation (first Edgeworth term)
                        gamma = (skews[m] - k * q * (1.0 - q) * (1.0 - 2.0 * q)) / (var * sd)
                        short -= gamma / 6.0 * (z * z - 1.0) * math.exp(-0.5 * z * z) * _INV_SQRT_2PI
                        short = min(1.0, max(0.0, short))
                if self.displace and short < later:
                    short = later
                later = short
                risk += short
            return risk > allowed

        limit = self.max_per_decision if self.max_per_decision is not None else max(1, 2 * len(agents))
        # The risk grows with k: find the first risky k by galloping then bisection.
        if risky(0):
            return self._placed_now(now, 0)
        safe, high = 0, 1
        while high < limit and not risky(high):
            safe, high = high, min(limit, high * 2)
        if high >= limit and not risky(limit - 1):
            n = limit
        else:
            while high - safe > 1:
                mid = (safe + high) // 2
                if risky(mid):
                    high = mid
                else:
                    safe = mid
            n = safe + 1
        return self._placed_now(now, n)

    def _placed_now(self, now: float, n: int) -> int:
        if self._most is not None:
            n = min(n, self._most)
        if n:
            self._placed.append((now, n))
            self._placed_sum += n
        return n


def make_pacer(
    mode: str, *, target_abandon: float = 0.03, ratio: float = 2.0, abandon_cap: float = REGULATORY_CAP,
    **options: float,
) -> Pacer:
    """Build a pacer: ``preview``, ``progressive``, ``ratio`` (``ratio=``) or ``predictive`` (``target_abandon=``).

    ``abandon_cap``: the cap of the abandon budget (``DialerState.budget``) at or over which ratio and
    predictive fall back to progressive (the others never over-dial).
    """
    _check_cap(abandon_cap)
    if mode == "preview":
        pacer: Pacer = PreviewPacer()
    elif mode == "progressive":
        pacer = ProgressivePacer()
    elif mode == "ratio":
        pacer = RatioPacer(ratio, abandon_cap=abandon_cap)
    elif mode == "predictive":
        # options are PredictivePacer's keyword arguments; its int ones (warmup_*) arrive typed as float
        pacer = PredictivePacer(target_abandon, abandon_cap=abandon_cap, **options)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown dial mode {mode!r}; expected one of {', '.join(MODES)}")
    if options and mode != "predictive":
        raise ValueError(f"options {sorted(options)} only apply to the predictive mode")
    return pacer
