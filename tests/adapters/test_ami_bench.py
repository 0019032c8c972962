"""`callcenter bench ami` runs on the real captures, checks what it timed, and ends with one JSON object."""

from __future__ import annotations

import json

import pytest

from callcenter.bench.ami import KNOWN, check_known, run
from callcenter.ports.telephony import Ended, Failed, ServerUp


def test_bench_ami_reports_engine_and_both_baselines(capsys):
    result = run(repeat=1, as_json=True)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result
    assert result["engine"]["ami_events"] > 250  # every capture was replayed through the client
    assert result["engine"]["domain_events"] == 30  # same domain events as the adapter tests
    # panoramisk's Manager read the same replays over a socket (the engine reads a few more: its own reconnect)
    assert 0.9 * result["engine"]["ami_events"] <= result["panoramisk_manager"]["ami_events"] \
        <= result["engine"]["ami_events"]
    assert result["panoramisk_bare_parse"]["ami_events"] >= result["engine"]["ami_events"]
    # the mapping replayed every message the engine's client fed its tracker
    assert result["parse_and_mapping"]["messages_mapped"] == result["engine"]["ami_events"]
    assert result["ratio_engine_to_manager"] > 0 and result["ratio_mapping_to_bare"] > 0
    assert result["met"] == (result["ratio_mapping_to_bare"] >= 0.6)


def test_a_wrong_outcome_fails_the_bench():
    right = [ServerUp("s", 0.0), Ended("cc-13800000001", 1.0, 16, "Normal Clearing")]
    with pytest.raises(RuntimeError, match="missing"):
        check_known("originate_outcomes", right)  # busy, no answer, congestion are missing
    twice = [ServerUp("s", 0.0), Failed("call-77", 1.0, "busy"), Ended("call-77", 2.0, 16, "")]
    with pytest.raises(RuntimeError):
        check_known("restart_midcall", twice)
    assert set(KNOWN) == {"originate_outcomes", "answered_to_agent", "amd_outcomes", "restart_midcall"}
