"""``callcenter bench orders`` on a fresh SQLite file: the figures come with their baseline and the invariants hold
(journal balanced, every accepted key one order, replays answering the first)."""

from callcenter.bench.orders import run


def test_bench_orders_small_run_keeps_invariants() -> None:
    figures = run(orders=40, clients=3, seed=3)
    assert figures["invariants_ok"] is True
    assert figures["accepted"] + figures["rejected"] + figures["replays"] >= figures["orders"] > 40
    assert figures["service_ops"] > 0 and figures["baseline_ops"] > 0 and figures["ratio"] > 0
