"""``callcenter bench pacing``: pacers over a simulated shift, against the talk-share bound.

For each agent count: the bound talk / (talk + wrap-up), progressive (ratio 1), the best fixed ratio
that keeps abandonment at or under the target, and predictive.  The figures are printed as a table,
with predictive's talk share as a ratio to the bound and to progressive measured in the same run;
with ``as_json`` the same figures are the last line, one JSON object keyed by agent count.
"""

from __future__ import annotations

import json
import os
from typing import Any

from callcenter.domain.pacing import make_pacer
from callcenter.domain.shift_simulation import CustomerModel, SimulationResult, simulate

__all__ = ["best_ratio", "run"]


def _sim(mode: str, agents: int, hours: float, seed: int, customer: CustomerModel, **kw: float) -> SimulationResult:
    return simulate(make_pacer(mode, **kw), agents=agents, hours=hours, seed=seed, customer=customer)


def best_ratio(
    agents: int,
    hours: float,
    seed: int,
    customer: CustomerModel,
    target: float = 0.03,
    low: float = 1.0,
    high: float = 6.0,
    step: float = 0.05,
    *,
    at_low: SimulationResult | None = None,
) -> tuple[float, SimulationResult]:
    """The highest ratio on a ``step`` grid in [low, high] whose shift stays at or under ``target``.

    Abandonment grows with the ratio (up to simulation noise), so bisect on the grid.  ``at_low``:
    the shift at ``low`` if already run (ratio 1 is progressive: the same shift).
    """
    lo_i, hi_i = 0, round((high - low) / step)
    best = at_low if at_low is not None else _sim("ratio", agents, hours, seed, customer, ratio=low)
    best_r = low
    # hi_i is presumed over target (the top of the grid is only run if everything below it passes)
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        ratio = round(low + mid * step, 10)
        result = _sim("ratio", agents, hours, seed, customer, ratio=ratio)
        if result.abandon_rate <= target:
            lo_i, best, best_r = mid, result, ratio
        else:
            hi_i = mid
    if hi_i == round((high - low) / step) and lo_i == hi_i - 1:
        top = _sim("ratio", agents, hours, seed, customer, ratio=high)
        if top.abandon_rate <= target:
            return high, top
    return best_r, best


def _job(job: tuple[str, int, float, int, float]) -> Any:
    """One independent piece of the benchmark (a module-level function, so worker processes can run it)."""
    kind, count, hours, seed, target = job
    customer = CustomerModel()
    if kind == "predictive":
        return _sim("predictive", count, hours, seed, customer, target_abandon=target)
    progressive = _sim("progressive", count, hours, seed, customer)
    ratio, fixed = best_ratio(count, hours, seed, customer, target=target, at_low=progressive)
    return progressive, ratio, fixed


def run(
    agents: tuple[int, ...] = (20, 100),
    hours: float = 4.0,
    seed: int = 7,
    as_json: bool = False,
    target_abandon: float = 0.03,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run the benchmark; print a table (and the JSON object on the last line with ``as_json``).

    The shifts are independent and seeded, so they run in ``workers`` processes (default: the CPUs,
    at most 4; 1 runs everything in this process); the figures do not depend on it.
    """
    from rich.console import Console
    from rich.table import Table

    customer = CustomerModel()
    # the longest jobs first: the ratio searches, biggest agent count first
    jobs = [(kind, count, hours, seed, target_abandon) for kind in ("ratio", "predictive") for count in sorted(agents, reverse=True)]
    workers = workers if workers is not None else min(4, os.cpu_count() or 1, len(jobs))
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = dict(zip(jobs, pool.map(_job, jobs)))
    else:
        done = {job: _job(job) for job in jobs}
    figures: dict[str, Any] = {}
    for count in agents:
        progressive, ratio, fixed = done[("ratio", count, hours, seed, target_abandon)]
        predictive = done[("predictive", count, hours, seed, target_abandon)]
        figures[str(count)] = {
            "bound": round(customer.bound, 4),
            "progressive": {"talk_share": round(progressive.talk_share, 4), "abandon": round(progressive.abandon_rate, 4)},
            "ratio": {"ratio": ratio, "talk_share": round(fixed.talk_share, 4), "abandon": round(fixed.abandon_rate, 4)},
            "predictive": {
                "talk_share": round(predictive.talk_share, 4),
                "abandon": round(predictive.abandon_rate, 4),
                "vs_bound": round(predictive.talk_share / customer.bound, 4),
                "vs_progressive": round(predictive.talk_share / progressive.talk_share, 4)
                if progressive.talk_share
                else None,
            },
        }
    console = Console(stderr=False)
    table = Table(title=f"pacing: {hours:g} h shift, seed {seed}, target abandon {target_abandon:.1%}")
    for column in ("agents", "pacer", "talk share", "abandon", "share / bound", "share / progressive"):
        table.add_column(column, justify="right" if column != "pacer" else "left")
    for shown, row in figures.items():
        base = row["progressive"]["talk_share"]
        table.add_row(shown, "bound talk/(talk+wrap)", f"{row['bound']:.4f}", "", "1.000", "")
        for name, label in (("progressive", "progressive"), ("ratio", f"ratio {row['ratio']['ratio']:.2f}"), ("predictive", "predictive")):
            share = row[name]["talk_share"]
            table.add_row(
                shown,
                label,
                f"{share:.4f}",
                f"{row[name]['abandon']:.2%}",
                f"{share / row['bound']:.3f}",
                f"{share / base:.3f}" if base else "-",
            )
    console.print(table)
    if as_json:
        print(json.dumps(figures, separators=(",", ":")))
    return figures
