"""A deterministic discrete-event simulation of an outbound shift, to measure pacers.

N agents, a pacer, a customer model.  ``calls_to_place`` is asked at every event and at least once
a second of simulated time; every finished attempt is ``record``-ed.  An answered human waits at
most ``abandon_after_s`` (2 s) for an agent (the longest-idle one, first come first served); if none
is free by then the call is abandoned and occupies no agent.  Talk time counts while connected;
after it the agent spends the wrap-up time, then is idle again.  Seeded ``random.Random``: the same
inputs give the same figures.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field
from functools import partial

from callcenter.domain.pacing import AgentView, AttemptOutcome, DialerState, Pacer

_make_view = partial(tuple.__new__, AgentView)  # (state, seconds) -> AgentView, without the checks

__all__ = ["CustomerModel", "SimulationResult", "simulate", "simulate_days"]


@dataclass(frozen=True)
class CustomerModel:
    """How attempts end and how long things take (defaults: the figures of issue 4's benchmark)."""

    p_human: float = 0.30
    p_machine: float = 0.10
    p_busy: float = 0.10
    p_no_answer: float = 0.45
    p_failed: float = 0.05
    human_answer_min_s: float = 4.0
    human_answer_max_s: float = 20.0
    machine_s: float = 3.5  # answering machine detected after
    busy_s: float = 3.0
    no_answer_s: float = 25.0
    failed_s: float = 1.0
    talk_mean_s: float = 90.0  # lognormal
    talk_sd_s: float = 60.0
    wrap_up_s: float = 10.0
    abandon_after_s: float = 2.0

    def __post_init__(self) -> None:
        probs = (self.p_human, self.p_machine, self.p_busy, self.p_no_answer, self.p_failed)
        if any(p < 0 for p in probs) or not math.isclose(sum(probs), 1.0, abs_tol=1e-9):
            raise ValueError(f"outcome probabilities must be >= 0 and sum to 1, got {probs}")
        if not 0 <= self.human_answer_min_s <= self.human_answer_max_s:
            raise ValueError("need 0 <= human_answer_min_s <= human_answer_max_s")
        for name in ("machine_s", "busy_s", "no_answer_s", "failed_s", "wrap_up_s", "abandon_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.talk_mean_s <= 0 or self.talk_sd_s < 0:
            raise ValueError("talk_mean_s must be > 0 and talk_sd_s >= 0")

    def with_human_rate(self, p_human: float) -> CustomerModel:
        """The same model with another answer rate, the other outcomes scaled to keep their proportions."""
        if not 0.0 <= p_human <= 1.0:
            raise ValueError(f"p_human must be in [0, 1], got {p_human!r}")
        rest = 1.0 - self.p_human
        scale = (1.0 - p_human) / rest if rest else 0.0
        from dataclasses import replace

        return replace(
            self,
            p_human=p_human,
            p_machine=self.p_machine * scale,
            p_busy=self.p_busy * scale,
            p_no_answer=self.p_no_answer * scale,
            p_failed=1.0 - p_human - (self.p_machine + self.p_busy + self.p_no_answer) * scale,
        )

    @property
    def bound(self) -> float:
        """The best possible talk share: talk / (talk + wrap-up)."""
        return self.talk_mean_s / (self.talk_mean_s + self.wrap_up_s)

    def _lognormal(self) -> tuple[float, float]:
        sigma2 = math.log(1.0 + (self.talk_sd_s / self.talk_mean_s) ** 2)
        return math.log(self.talk_mean_s) - sigma2 / 2.0, math.sqrt(sigma2)

    def sample_attempt(self, rng: random.Random) -> tuple[str, float]:
        """(kind, seconds from dialling to the outcome) for one attempt."""
        u = rng.random()
        if u < self.p_human:
            return "human", rng.uniform(self.human_answer_min_s, self.human_answer_max_s)
        u -= self.p_human
        if u < self.p_machine:
            return "machine", self.machine_s
        u -= self.p_machine
        if u < self.p_busy:
            return "busy", self.busy_s
        u -= self.p_busy
        if u < self.p_no_answer:
            return "no_answer", self.no_answer_s
        return "failed", self.failed_s

    def sample_talk(self, rng: random.Random) -> float:
        mu, sigma = self._lognormal()
        return rng.lognormvariate(mu, sigma)


@dataclass(frozen=True)
class SimulationResult:
    agents: int
    hours: float
    attempts: int
    humans: int  # answered by a human (connected + abandoned)
    connected: int
    abandoned: int
    abandon_rate: float
    talk_share: float  # talk seconds / (agents * logged-in seconds)
    bound: float  # mean talk / (mean talk + wrap-up)
    decisions: int  # how many times calls_to_place was asked
    days: tuple[SimulationResult, ...] = field(default=())


# event kinds, ordered so that at equal times agents free up before humans are matched
_WRAP_END, _TALK_END, _ATTEMPT_END, _ANSWER, _DEADLINE = range(5)


def simulate(
    pacer: Pacer,
    agents: int = 20,
    hours: float = 4.0,
    seed: int = 1,
    customer: CustomerModel | None = None,
    *,
    start: float = 0.0,
    rng: random.Random | None = None,
) -> SimulationResult:
    """Run one shift of ``hours`` with ``agents`` agents, all idle at ``start``; return the figures."""
    if agents < 1:
        raise ValueError(f"agents must be >= 1, got {agents}")
    if hours <= 0:
        raise ValueError(f"hours must be > 0, got {hours}")
    model = customer or CustomerModel()
    rng = rng or random.Random(seed)
    start = float(start)  # times stay floats: decide() uses float.__sub__
    end = start + hours * 3600.0
    state = ["idle"] * agents
    since = [start] * agents
    idle: deque[int] = deque(range(agents))  # longest idle first
    waiting: deque[int] = deque()  # answered humans waiting for an agent, first come first served
    in_flight: dict[int, float] = {}  # attempt id -> dialled at
    ring: dict[int, float] = {}
    talk_started: dict[int, tuple[int, float]] = {}  # agent -> (attempt, connected at)
    events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, payload)
    seq = 0
    attempts = humans = connected = abandoned = decisions = 0
    talk_total = 0.0
    record = pacer.record
    ask = pacer.calls_to_place
    wrap = model.wrap_up_s
    patience = model.abandon_after_s

    def connect(attempt: int, agent: int, now: float) -> None:
        nonlocal seq, connected
        del in_flight[attempt]
        state[agent] = "talking"
        since[agent] = now
        talk_started[agent] = (attempt, now)
        seq += 1
        heapq.heappush(events, (now + model.sample_talk(rng), _TALK_END, seq, agent))
        connected += 1

    def decide(now: float) -> None:
        nonlocal seq, attempts, decisions
        decisions += 1
        # The states and ages are valid by construction, so skip AgentView's checks (this is the hot loop).
        ago = now.__sub__
        views = list(map(_make_view, zip(state, map(ago, since))))
        n = ask(DialerState(now, views, list(map(ago, in_flight.values()))))
        for _ in range(n):
            attempts += 1
            attempt = attempts
            kind, after = model.sample_attempt(rng)
            in_flight[attempt] = now
            ring[attempt] = after
            seq += 1
            heapq.heappush(events, (now + after, _ANSWER if kind == "human" else _ATTEMPT_END, seq, attempt))
            if kind != "human":
                kinds[attempt] = kind

    kinds: dict[int, str] = {}
    now = start
    decide(now)
    last_decision = now
    while True:
        next_time = events[0][0] if events else math.inf
        if next_time > last_decision + 1.0:
            tick = last_decision + 1.0
            if tick >= end:
                break
            decide(tick)
            last_decision = tick
            continue
        if next_time >= end:
            break
        now, kind, _, payload = heapq.heappop(events)
        if kind == _ATTEMPT_END:
            del in_flight[payload]
            record(AttemptOutcome(kinds.pop(payload), ring.pop(payload)))
        elif kind == _ANSWER:
            humans += 1
            if idle:
                connect(payload, idle.popleft(), now)
            else:
                waiting.append(payload)
                seq += 1
                heapq.heappush(events, (now + patience, _DEADLINE, seq, payload))
        elif kind == _DEADLINE:
            if payload in in_flight:  # nobody took it: abandoned (a short safe-harbour message, then hang up)
                waiting.remove(payload)
                del in_flight[payload]
                abandoned += 1
                record(AttemptOutcome("human", ring.pop(payload), None, True))
        elif kind == _TALK_END:
            attempt, began = talk_started.pop(payload)
            talk_total += now - began
            record(AttemptOutcome("human", ring.pop(attempt), now - began, False))
            state[payload] = "wrap_up"
            since[payload] = now
            seq += 1
            heapq.heappush(events, (now + wrap, _WRAP_END, seq, payload))
        else:  # _WRAP_END
            if waiting:
                connect(waiting.popleft(), payload, now)
            else:
                state[payload] = "idle"
                since[payload] = now
                idle.append(payload)
        decide(now)
        last_decision = now
    for attempt, began in talk_started.values():
        talk_total += end - max(began, start)
    return SimulationResult(
        agents=agents,
        hours=hours,
        attempts=attempts,
        humans=humans,
        connected=connected,
        abandoned=abandoned,
        abandon_rate=abandoned / humans if humans else 0.0,
        talk_share=talk_total / (agents * (end - start)),
        bound=model.bound,
        decisions=decisions,
    )


def simulate_days(
    pacer: Pacer,
    agents: int = 20,
    days: int = 30,
    hours: float = 4.0,
    seed: int = 1,
    customer: CustomerModel | None = None,
) -> SimulationResult:
    """``days`` shifts of ``hours`` with the same pacer (it keeps what it learnt), 24 h apart."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    rng = random.Random(seed)
    results = tuple(
        simulate(pacer, agents, hours, customer=customer, start=day * 86400.0, rng=rng) for day in range(days)
    )
    humans = sum(r.humans for r in results)
    abandoned = sum(r.abandoned for r in results)
    return SimulationResult(
        agents=agents,
        hours=hours * days,
        attempts=sum(r.attempts for r in results),
        humans=humans,
        connected=sum(r.connected for r in results),
        abandoned=abandoned,
        abandon_rate=abandoned / humans if humans else 0.0,
        talk_share=sum(r.talk_share for r in results) / days,
        bound=results[0].bound,
        decisions=sum(r.decisions for r in results),
        days=results,
    )
