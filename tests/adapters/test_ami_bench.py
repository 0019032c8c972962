"""`callcenter bench ami` runs on the real captures and ends with one JSON object."""

from __future__ import annotations

import json

from callcenter.bench.ami import run


def test_bench_ami_reports_engine_and_baseline(capsys):
    result = run(repeat=1, as_json=True)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    assert result["engine"]["ami_events"] > 250  # every capture was replayed through the client
    assert result["engine"]["domain_events"] == 30  # same domain events as the adapter tests
    assert result["panoramisk_bare_parse"]["ami_events"] >= result["engine"]["ami_events"]
    assert result["ratio_engine_to_bare"] > 0
