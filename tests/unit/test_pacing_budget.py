"""Pacers fed the abandon budget from the database (DialerState.budget): at the cap ratio and predictive fall
back to progressive; under it they behave as without a budget; the DESIGN call shape still works."""

from __future__ import annotations

import pytest

from callcenter.domain.pacing import AgentView, AttemptOutcome, DialerState, make_pacer
from callcenter.domain.abandon import AbandonBudget
from tests.unit.test_pacing import feed, state

AT_CAP = AbandonBudget(today_humans=400, today_abandoned=12, d30_humans=4000, d30_abandoned=60)  # 3 % today
UNDER = AbandonBudget(today_humans=400, today_abandoned=2, d30_humans=4000, d30_abandoned=40)  # 0.5 %, 1 %


def with_budget(s: DialerState, budget: AbandonBudget | None) -> DialerState:
    return DialerState(s.now, s.agents, s.in_flight, budget=budget)


def test_design_call_shape_still_works_and_budget_defaults_to_none() -> None:
    pacer = make_pacer("predictive", target_abandon=0.03)
    pacer.record(AttemptOutcome(kind="human", ring_s=7.2, talk_s=95.0, abandoned=False))
    st = DialerState(now=123.0, agents=[AgentView(state="idle", seconds=4.0)], in_flight=[3.2])
    assert st.budget is None
    assert pacer.calls_to_place(st) == 0


def test_ratio_campaign_at_its_cap_places_only_progressive_numbers() -> None:
    pacer = make_pacer("ratio", ratio=3.0)
    sample = state(idle=4, talking=6, in_flight=(1.0,))
    assert pacer.calls_to_place(sample) == 11  # 3 * 4 - 1
    assert pacer.calls_to_place(with_budget(sample, UNDER)) == 11
    assert pacer.calls_to_place(with_budget(sample, AT_CAP)) == 3  # one per idle agent not covered
    assert pacer.calls_to_place(with_budget(state(idle=2, in_flight=(1.0,) * 5), AT_CAP)) == 0
    # under again (more humans answered without abandons): back to the ratio
    recovered = AbandonBudget(today_humans=500, today_abandoned=12, d30_humans=4100, d30_abandoned=60)
    assert pacer.calls_to_place(with_budget(sample, recovered)) == 11


def test_ratio_cap_is_configurable() -> None:
    strict = make_pacer("ratio", ratio=2.0, abandon_cap=0.005)
    sample = with_budget(state(idle=4), UNDER)  # 0.5 % today: at a 0.5 % cap
    assert strict.calls_to_place(sample) == 4
    assert make_pacer("ratio", ratio=2.0).calls_to_place(sample) == 8
    with pytest.raises(ValueError, match="abandon_cap"):
        make_pacer("ratio", abandon_cap=0.0)


def test_predictive_restarted_with_a_budget_at_the_cap_holds_back() -> None:
    fresh = make_pacer("predictive", target_abandon=0.03)  # a restarted process: it re-learns, counts zero
    feed(fresh)
    sample = state(idle=10, talking=10)
    free = fresh.calls_to_place(sample)
    assert free > 10  # over-dials for the idle agents
    restarted = make_pacer("predictive", target_abandon=0.03)
    feed(restarted)
    held = restarted.calls_to_place(with_budget(sample, AT_CAP))
    assert held <= 10  # never more than progressive while the day is at the cap
    busy = DialerState(now=500.0, agents=[AgentView("talking", 30.0)] * 20, budget=AT_CAP)
    assert restarted.calls_to_place(busy) == 0  # nobody idle: progressive places nothing


def test_predictive_under_the_cap_behaves_as_before() -> None:
    plain, budgeted = make_pacer("predictive"), make_pacer("predictive")
    feed(plain)
    feed(budgeted)
    for now, s in ((200.0, state(idle=10, talking=10)), (201.0, state(idle=3, talking=15, in_flight=(2.0, 6.0))),
                   (202.0, state(idle=0, talking=20, in_flight=(1.0,)))):
        s = DialerState(now, s.agents, s.in_flight)
        assert plain.calls_to_place(s) == budgeted.calls_to_place(with_budget(s, UNDER))


def test_predictive_day_term_counts_the_database_figures_after_a_restart() -> None:
    """Near (not at) the cap today the soft day term cuts, although the restarted pacer itself counted none."""
    near = AbandonBudget(today_humans=1000, today_abandoned=29, d30_humans=1000, d30_abandoned=29)  # 2.9 %
    plain, restarted = make_pacer("predictive"), make_pacer("predictive")
    feed(plain)
    feed(restarted)
    sample = state(idle=5, talking=15, in_flight=(2.0, 6.0, 9.0))
    n_plain = plain.calls_to_place(sample)
    n_restarted = restarted.calls_to_place(with_budget(sample, near))
    assert restarted.threshold < plain.threshold
    assert n_restarted <= n_plain


def test_progressive_and_preview_ignore_the_budget_and_bad_budget_is_refused() -> None:
    assert make_pacer("progressive").calls_to_place(with_budget(state(idle=3), AT_CAP)) == 3
    assert make_pacer("preview").calls_to_place(with_budget(state(idle=3), AT_CAP)) == 0
    with pytest.raises(ValueError, match="AbandonBudget"):
        DialerState(now=1.0, budget=(400, 12, 4000, 60))  # type: ignore[arg-type]
