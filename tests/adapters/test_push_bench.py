"""`callcenter bench push` (small run): its SSE clients run in another process, every client gets every event of
both servers in order exactly once (the bench fails otherwise), and the figures come as one JSON line."""

from __future__ import annotations

import json

from callcenter.bench.push import run


def test_a_small_push_run_reaches_every_client_from_another_process(capsys) -> None:
    figures = run(clients=4, events=5, as_json=True)
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == figures
    assert figures["clients_process"] == "separate" and "in another process" in out[0]
    for side in ("engine", "baseline"):
        assert 0 < figures[side]["p50_ms"] <= figures[side]["p99_ms"]
        assert figures[side]["every_p50_ms"] >= figures[side]["p50_ms"]
    assert figures["ratio_p50"] is not None and figures["ratio_p50"] > 0
