"""Pure rules of issue 14: 质检 scoring (a failed critical item fails the evaluation), weekly sampling per agent
(a count or a rate, every complaint call besides, a second run tops up), retention expiry, byte ranges."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest

from callcenter.domain import quality as q
from callcenter.domain.access import Actor, may_download, may_listen
from callcenter.domain.recordings import (ByteRange, RangeNotSatisfiable, add_years, close_spans, expires_at,
                                          parse_range, purgeable, stronger_class)

FORM = q.parse_form_lines("开场白规范 | yes_no | 10\n身份核实 | yes_no | 20 | critical\n风险揭示 | scale | 20 | | 4\n"
                          "不承诺收益 | yes_no | 30 | critical\n通话后记录完整 | yes_no | 20\n备注 | comment")


def test_form_lines_parse_into_items() -> None:
    assert [(i.key, i.kind, i.weight, i.critical) for i in FORM] == [
        ("i1", "yes_no", 10, False), ("i2", "yes_no", 20, True), ("i3", "scale", 20, False),
        ("i4", "yes_no", 30, True), ("i5", "yes_no", 20, False), ("i6", "comment", 0, False)]
    with pytest.raises(q.FormError, match="only a yes/no item can be critical"):
        q.parse_form_lines("风险揭示 | scale | 20 | critical")
    with pytest.raises(q.FormError, match="kind"):
        q.parse_form_lines("x | multiple")
    with pytest.raises(q.FormError):
        q.parse_form_lines("")


def answers(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"i1": True, "i2": True, "i3": 4, "i4": True, "i5": True, "i6": "好"}
    base.update(over)
    return base


def test_scores_are_the_weighted_share() -> None:
    assert q.score(FORM, answers()) == q.Score(100.0, True, ())
    s = q.score(FORM, answers(i1=False, i3=2))  # lose 10 and half of 20: 80 of 100
    assert s.pct == 80.0 and s.passed
    assert not q.score(FORM, answers(i1=False, i3=1)).passed  # 75 < 80


def test_a_failed_critical_item_fails_the_whole_evaluation() -> None:
    s = q.score(FORM, answers(i4=False))  # promised returns: everything else perfect
    assert s == q.Score(0.0, False, ("i4",))
    assert q.score(FORM, answers(i2=False, i4=False)).critical_failed == ("i2", "i4")


def test_bad_answers_are_refused() -> None:
    with pytest.raises(q.FormError, match="yes or no"):
        q.score(FORM, answers(i1=None))
    with pytest.raises(q.FormError, match="0..4"):
        q.score(FORM, answers(i3=5))


def calls(agent_counts: dict[int, int], complaints: set[int] = frozenset()) -> list[tuple[int, int, bool]]:  # type: ignore[assignment]
    out, rid = [], 1
    for agent, n in agent_counts.items():
        for _ in range(n):
            out.append((rid, agent, rid in complaints))
            rid += 1
    return out


def test_sampling_takes_the_count_per_agent_plus_every_complaint() -> None:
    week = calls({7: 10, 8: 2, 9: 5}, complaints={3, 12})  # recording 3 is agent 7's, 12 agent 8's
    picks = q.pick_week(week, count=3, seed=1)
    random = Counter(p.agent_id for p in picks if p.reason == "random")
    assert random == {7: 3, 8: 1, 9: 3}  # agent 8 had one ordinary call left besides the complaint
    assert sorted(p.recording_id for p in picks if p.reason == "complaint") == [3, 12]
    assert len({p.recording_id for p in picks}) == len(picks)
    assert picks == q.pick_week(week, count=3, seed=1)  # repeatable with the seed


def test_sampling_by_rate_rounds_up_and_a_second_run_only_tops_up() -> None:
    assert q.sample_size(10, rate=0.05) == 1 and q.sample_size(40, rate=0.05) == 2 and q.sample_size(0, rate=0.5) == 0
    first = q.pick_week(calls({1: 4}), count=2, seed=3)
    taken = {p.recording_id for p in first}
    rest = [c for c in calls({1: 6}) if c[0] not in taken]  # two more calls came in since
    second = q.pick_week(rest, count=2, already={1: 2}, seed=3)
    assert second == []
    third = q.pick_week(rest, count=3, already={1: 2}, seed=3)
    assert len(third) == 1
    with pytest.raises(ValueError):
        q.sample_size(3)


def test_iso_weeks() -> None:
    assert q.iso_week(datetime(2026, 11, 25).date()) == "2026-W48"
    monday, nxt = q.week_bounds("2026-W48")
    assert (monday.isoformat(), nxt.isoformat()) == ("2026-11-23", "2026-11-30")
    with pytest.raises(ValueError, match="ISO week"):
        q.week_bounds("2026-48")


UTC = timezone.utc


def test_retention_and_purge_rule() -> None:
    years = {"callback": 3, "complaint": 5, "order": 3, "ordinary": 3}
    start = datetime(2024, 2, 29, 8, tzinfo=UTC)
    assert add_years(start, 3) == datetime(2027, 2, 28, 8, tzinfo=UTC)
    assert expires_at(start, "complaint", years) == datetime(2029, 2, 28, 8, tzinfo=UTC)
    with pytest.raises(ValueError):
        expires_at(start, "gossip", years)
    late = datetime(2030, 1, 1, tzinfo=UTC)
    assert purgeable(late, add_years(start, 3), False, "stopped")
    assert not purgeable(late, add_years(start, 3), True, "stopped")  # legal hold
    assert not purgeable(late, None, False, "recording")
    assert stronger_class("callback", "complaint") == "complaint" and stronger_class("complaint", "order") == "complaint"


def test_paused_spans_are_closed_clipped_and_merged() -> None:
    assert close_spans([[5.0, 8.0], [7.0, 9.0], [20.0]], 25.0) == [(5.0, 9.0), (20.0, 25.0)]
    assert close_spans([[-1.0, 2.0], [30.0, 40.0]], 25.0) == [(0.0, 2.0)]


def test_byte_ranges() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-", 100) == ByteRange(0, 99)
    assert parse_range("bytes=10-19", 100) == ByteRange(10, 19)
    assert parse_range("bytes=90-200", 100) == ByteRange(90, 99)
    assert parse_range("bytes=-10", 100) == ByteRange(90, 99)
    assert parse_range("items=0-1", 100) is None and parse_range("bytes=5-2", 100) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=100-", 100)


def test_who_may_listen_and_download() -> None:
    sup = Actor.staff("supervisor", 5, {1})
    qa = Actor.staff("qa", 6)
    adm = Actor.staff("admin", 7)
    agent = Actor.staff("agent", 8, {1})
    assert may_listen(sup, 8, 1, False) and not may_listen(sup, 9, 2, False)
    assert may_listen(qa, 9, 2, False) and may_listen(adm, None, None, False)
    assert not may_listen(agent, 8, 1, False) and may_listen(agent, 8, 1, True) and not may_listen(agent, 9, 1, True)
    assert [may_download(a) for a in (sup, qa, adm, agent)] == [False, False, True, False]
    assert not may_listen(Actor.client(3), 8, 1, True)
