"""The abandon budget of an outbound campaign: how many answered people it left waiting, and whether it may
keep over-dialling.  Pure standard library.

Definitions (the same ones the dialler records, ``callcenter.services.dialer.budget``):

* a **human** is a live answer that reached the connect decision: the call was answered by a person (not
  a machine) and the dialler had to find them an agent -- whether it did (connected), did not within the
  grace period (abandoned), or the person hung up first;
* an **abandoned** call is an answered human not connected to an agent within the grace period (2 s);
* the **rate** is abandoned / humans (``None`` while there are no humans).

The regulatory cap is 3 % of live answers (``REGULATORY_CAP``), per campaign, both over the current local
day and over the last 30 local days (today included).

The rule (``over_cap``): a campaign is *at or over its cap* when, today OR over the 30 days,

    abandoned >= cap * max(humans, MIN_HUMANS)

i.e. the rate is judged on at least ``MIN_HUMANS`` (50) live answers: below that the denominator counts as
50, so at 3 % the first abandoned call of the day (1 < 1.5) does not stop a campaign, the second one
(2 >= 1.5) does until 67 humans have answered.  "At" counts: a campaign exactly at 3 % must not make the
next abandon.  A campaign at or over its cap does not over-dial (ratio and predictive fall back to
progressive: one call per idle agent) until it is under again.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIN_HUMANS", "REGULATORY_CAP", "AbandonBudget", "check_cap", "over_cap"]

REGULATORY_CAP = 0.03
MIN_HUMANS = 50


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class AbandonBudget:
    """A campaign's live answers and abandoned calls today (local day) and over the last 30 local days (today included)."""

    today_humans: int = 0
    today_abandoned: int = 0
    d30_humans: int = 0
    d30_abandoned: int = 0

    def __post_init__(self) -> None:
        for name in ("today_humans", "today_abandoned", "d30_humans", "d30_abandoned"):
            _count(name, getattr(self, name))
        if self.today_abandoned > self.today_humans or self.d30_abandoned > self.d30_humans:
            raise ValueError(f"more abandoned calls than humans in {self!r}")
        if self.today_humans > self.d30_humans or self.today_abandoned > self.d30_abandoned:
            raise ValueError(f"the 30 days include today, so they cannot count fewer: {self!r}")

    @property
    def today_rate(self) -> float | None:
        return self.today_abandoned / self.today_humans if self.today_humans else None

    @property
    def d30_rate(self) -> float | None:
        return self.d30_abandoned / self.d30_humans if self.d30_humans else None


def check_cap(cap: float) -> float:
    """The cap as a float; a clear error unless it is a fraction in (0, 1)."""
    if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0.0 < cap < 1.0:
        raise ValueError(f"abandon_cap is a fraction of live answers in (0, 1), e.g. 0.03; got {cap!r}")
    return float(cap)


def over_cap(budget: AbandonBudget, cap: float = REGULATORY_CAP, *, min_humans: int = MIN_HUMANS) -> bool:
    """True when the campaign is at or over ``cap`` today or over the 30 days (see the module doc for the rule)."""
    if not isinstance(budget, AbandonBudget):
        raise ValueError(f"over_cap() takes an AbandonBudget, got {budget!r}")
    cap = check_cap(cap)
    _count("min_humans", min_humans)
    return any(
        abandoned > 0 and abandoned >= cap * max(humans, min_humans) - 1e-9  # 3 of 100 is at 3 %, whatever the float
        for abandoned, humans in (
            (budget.today_abandoned, budget.today_humans),
            (budget.d30_abandoned, budget.d30_humans),
        )
    )
