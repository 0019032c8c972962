"""Contract tests of the pacing API (DESIGN.md "Pacing API")."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.domain.pacing import AgentView, AttemptOutcome, DialerState, make_pacer


def state(idle: int = 0, talking: int = 0, wrap_up: int = 0, in_flight: tuple[float, ...] = (), now: float = 100.0):
    agents = (
        [AgentView("idle", 3.0)] * idle + [AgentView("talking", 40.0)] * talking + [AgentView("wrap_up", 2.0)] * wrap_up
    )
    return DialerState(now=now, agents=agents, in_flight=list(in_flight))


def test_preview_never_places_calls():
    pacer = make_pacer("preview")
    pacer.record(AttemptOutcome(kind="busy", ring_s=3.0))
    assert pacer.calls_to_place(state(idle=10)) == 0
    assert pacer.calls_to_place(state()) == 0


def test_progressive_one_call_per_idle_agent_not_covered():
    pacer = make_pacer("progressive")
    assert pacer.calls_to_place(state(idle=3, talking=5)) == 3
    assert pacer.calls_to_place(state(idle=3, talking=5, in_flight=(1.0, 2.0))) == 1
    assert pacer.calls_to_place(state(idle=3, in_flight=(1.0, 2.0, 3.0, 4.0))) == 0
    assert pacer.calls_to_place(state(talking=4, wrap_up=2)) == 0


def test_ratio_places_ratio_times_idle_minus_in_flight():
    pacer = make_pacer("ratio", ratio=2.0)
    assert pacer.calls_to_place(state(idle=3)) == 6
    assert pacer.calls_to_place(state(idle=3, in_flight=(1.0, 5.0))) == 4
    assert pacer.calls_to_place(state(idle=1, in_flight=(1.0, 2.0, 3.0))) == 0
    assert make_pacer("ratio", ratio=2.5).calls_to_place(state(idle=3)) == 7  # floor(7.5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_pacer("turbo"), "unknown dial mode"),
        (lambda: make_pacer("predictive", target_abandon=0.0), "target_abandon"),
        (lambda: make_pacer("predictive", target_abandon=1.5), "target_abandon"),
        (lambda: make_pacer("ratio", ratio=0.5), "ratio"),
        (lambda: make_pacer("progressive", gain=0.1), "only apply to the predictive"),
        (lambda: AttemptOutcome(kind="voicemail", ring_s=1.0), "unknown attempt kind"),
        (lambda: AttemptOutcome(kind="busy", ring_s=-1.0), "ring_s"),
        (lambda: AttemptOutcome(kind="human", ring_s=5.0, talk_s=-3.0), "talk_s"),
        (lambda: AttemptOutcome(kind="human", ring_s=math.nan), "ring_s"),
        (lambda: AttemptOutcome(kind="busy", ring_s=3.0, abandoned=True), "abandoned"),
        (lambda: AttemptOutcome(kind="machine", ring_s=3.0, talk_s=10.0), "talk_s"),
        (lambda: AgentView(state="on_break", seconds=1.0), "unknown agent state"),
        (lambda: AgentView(state="idle", seconds=-0.5), "AgentView.seconds"),
        (lambda: DialerState(now=1.0, agents=[], in_flight=[2.0, -1.0]), "in_flight"),
        (lambda: DialerState(now=math.inf), "now"),
        (lambda: DialerState(now=1.0, agents=[("idle", 1.0)]), "AgentView"),
    ],
)
def test_invalid_inputs_are_clear_value_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("mode", ["preview", "progressive", "ratio", "predictive"])
def test_record_rejects_other_objects(mode):
    with pytest.raises(ValueError, match="AttemptOutcome"):
        make_pacer(mode).record({"kind": "human"})  # type: ignore[arg-type]


def test_predictive_starts_like_progressive():
    pacer = make_pacer("predictive", target_abandon=0.03)
    assert pacer.calls_to_place(state(idle=4, talking=6)) == 4
    assert pacer.calls_to_place(state(idle=4, talking=6, in_flight=(1.0, 1.0, 1.0))) == 1


def feed(pacer, rounds: int = 40) -> None:
    """A customer mix like the benchmark's, repeated: 3 humans, 1 machine, 1 busy, 4 no answer, 1 failed."""
    for i in range(rounds):
        for j, ring in enumerate((5.0, 11.0, 17.0)):
            pacer.record(AttemptOutcome(kind="human", ring_s=ring + (i % 3), talk_s=40.0 + 25.0 * ((i + j) % 7)))
        pacer.record(AttemptOutcome(kind="machine", ring_s=3.5))
        pacer.record(AttemptOutcome(kind="busy", ring_s=3.0))
        for _ in range(4):
            pacer.record(AttemptOutcome(kind="no_answer", ring_s=25.0))
        pacer.record(AttemptOutcome(kind="failed", ring_s=1.0))


def test_predictive_overdials_for_idle_agents_once_it_has_learnt():
    pacer = make_pacer("predictive", target_abandon=0.03)
    feed(pacer)
    n = pacer.calls_to_place(state(idle=10, talking=10))
    # about 30 % of attempts reach a human: it must place more than one call per idle agent
    assert n > 10
    # ... but not without limit: with many fresh attempts already in flight it holds back
    assert pacer.calls_to_place(state(idle=10, talking=10, in_flight=(0.5,) * 60)) < n


def test_predictive_holds_back_when_nobody_will_be_free():
    pacer = make_pacer("predictive", target_abandon=0.03)
    feed(pacer)
    # every agent just started talking: nobody will be free within the next 20 seconds or so
    busy = DialerState(now=500.0, agents=[AgentView("talking", 1.0)] * 20, in_flight=[])
    assert pacer.calls_to_place(busy) == 0


def test_predictive_backs_off_after_abandons_and_pushes_when_under():
    calm = make_pacer("predictive", target_abandon=0.03)
    feed(calm)
    hurt = make_pacer("predictive", target_abandon=0.03)
    feed(hurt)
    for _ in range(15):
        hurt.record(AttemptOutcome(kind="human", ring_s=8.0, abandoned=True))
    for _ in range(15):
        calm.record(AttemptOutcome(kind="human", ring_s=8.0, talk_s=60.0))
    assert hurt.threshold < calm.threshold
    sample = state(idle=5, talking=15, in_flight=(2.0, 6.0, 9.0))
    assert hurt.calls_to_place(sample) <= calm.calls_to_place(sample)


def test_predictive_is_deterministic():
    results = []
    for _ in range(2):
        pacer = make_pacer("predictive")
        feed(pacer)
        results.append([pacer.calls_to_place(state(idle=i % 4, talking=8, wrap_up=2, now=100.0 + i)) for i in range(30)])
    assert results[0] == results[1]


agent_views = st.builds(
    AgentView,
    state=st.sampled_from(["idle", "talking", "wrap_up"]),
    seconds=st.floats(min_value=0.0, max_value=5000.0, allow_nan=False),
)
outcomes = st.one_of(
    st.builds(
        AttemptOutcome,
        kind=st.just("human"),
        ring_s=st.floats(min_value=0.0, max_value=120.0),
        talk_s=st.none() | st.floats(min_value=0.0, max_value=3600.0),
    ),
    st.builds(
        AttemptOutcome,
        kind=st.sampled_from(["machine", "busy", "no_answer", "failed"]),
        ring_s=st.floats(min_value=0.0, max_value=120.0),
    ),
    st.builds(AttemptOutcome, kind=st.just("human"), ring_s=st.floats(min_value=0.0, max_value=60.0), abandoned=st.just(True)),
)


@settings(max_examples=150, deadline=None)
@given(
    mode=st.sampled_from(["preview", "progressive", "ratio", "predictive"]),
    history=st.lists(outcomes, max_size=80),
    decisions=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=5.0),
            st.lists(agent_views, max_size=30),
            st.lists(st.floats(min_value=0.0, max_value=300.0), max_size=40),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_calls_to_place_is_always_a_non_negative_int(mode, history, decisions):
    pacer = make_pacer(mode)
    now = 10.0
    for outcome in history:
        pacer.record(outcome)
    for step, agents, in_flight in decisions:
        now += step
        n = pacer.calls_to_place(DialerState(now=now, agents=agents, in_flight=in_flight))
        assert isinstance(n, int) and n >= 0
        idle = sum(1 for a in agents if a.state == "idle")
        if mode == "preview":
            assert n == 0
        if mode == "progressive":
            assert n <= idle


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"idle_factor": 0.0}, "idle_factor"),
        ({"recent_size": 0}, "recent_size"),
        ({"slack": -1.0}, "slack"),
        ({"day_gap_s": -5.0}, "day_gap_s"),
    ],
)
def test_predictive_rejects_bad_knobs(options, message):
    with pytest.raises(ValueError, match=message):
        make_pacer("predictive", **options)


def teach_wrap_ups(pacer, until: float = 100.0) -> None:
    """Show the pacer agents going through 10-second wrap-ups, half a second apart, up to ``until``."""
    now = until - 300.0
    while now < until - 1e-9:
        ages = [(now + 2.5 * i) % 10.0 for i in range(4)]
        pacer.calls_to_place(
            DialerState(now=now, agents=[AgentView("wrap_up", a) for a in ages] + [AgentView("talking", 30.0)] * 16)
        )
        now += 0.5


def test_predictive_is_stricter_while_agents_sit_idle():
    strict = make_pacer("predictive", idle_factor=0.25)
    plain = make_pacer("predictive", idle_factor=1.0)
    for pacer in (strict, plain):
        feed(pacer)
        teach_wrap_ups(pacer)
    with_idle = state(idle=5, talking=15, in_flight=(1.0, 4.0, 7.0, 9.0))
    assert strict.calls_to_place(with_idle) < plain.calls_to_place(with_idle)
    # nobody idle: the factor does not apply, both place the same calls ahead of agents finishing
    agents = [AgentView("talking", 60.0 + 20.0 * i) for i in range(16)] + [AgentView("wrap_up", 8.0)] * 4
    ahead = DialerState(now=101.0, agents=agents, in_flight=[2.0])
    n = strict.calls_to_place(ahead)
    assert n == plain.calls_to_place(ahead)
    assert n > 0  # four agents finish wrap-up within 2 s: calls go out for them before they are idle


def _humans(pacer, count: int, abandoned: int) -> None:
    for i in range(count):
        pacer.record(AttemptOutcome(kind="human", ring_s=8.0, abandoned=i < abandoned, talk_s=None if i < abandoned else 80.0))


def test_predictive_keeps_a_budget_per_shift():
    """A gap of an hour or more starts a new shift with its own abandon budget."""
    gap, no_gap = make_pacer("predictive"), make_pacer("predictive")
    for pacer, second in ((gap, 100.0 + 4000.0), (no_gap, 101.0)):
        feed(pacer)
        _humans(pacer, 1000, 10)  # day one: 1 % abandoned, well within budget
        pacer.calls_to_place(state(idle=2, talking=8, now=100.0))
        pacer.calls_to_place(state(idle=2, talking=8, now=second))
        _humans(pacer, 20, 3)  # 15 % so far today
    # same history, same lifetime and recent figures: only the shift's own count differs
    assert gap.threshold < no_gap.threshold
    sample = state(idle=5, talking=15, in_flight=(2.0, 6.0, 9.0), now=4200.0)
    assert gap.calls_to_place(sample) <= no_gap.calls_to_place(sample)
