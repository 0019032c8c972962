"""callcenter.adapters.ivr.agi_replay: answers by command, WAIT FOR DIGIT slices matched whatever their length or number."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.adapters.ivr.agi_replay import AgiReplay, load_agi_capture

CAPTURE = b"""### note
=== connection
<<< agi_network: yes
<<< agi_network_script: hotline
<<< 
>>> ANSWER
<<< [+0.01s] 200 result=0
>>> WAIT FOR DIGIT 250
<<< [+0.30s] 200 result=0
>>> WAIT FOR DIGIT 300
<<< [+0.60s] 200 result=49
>>> STREAM FILE cc/zh-CN/x "0123456789*#"
<<< [+1.00s] HANGUP
<<< [+1.01s] 511 Command Not Permitted on a dead channel or intercept routine
### closed by engine at +1.02s
"""


@pytest.fixture
def capture(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.agi"
    path.write_bytes(CAPTURE)
    return load_agi_capture(path)


def test_load(capture) -> None:  # type: ignore[no-untyped-def]
    assert capture.header == [b"agi_network: yes", b"agi_network_script: hotline"]
    assert [e.command for e in capture.exchanges] == ["ANSWER", "WAIT FOR DIGIT 250", "WAIT FOR DIGIT 300",
                                                     'STREAM FILE cc/zh-CN/x "0123456789*#"']
    assert capture.exchanges[3].answer == [b"HANGUP", b"511 Command Not Permitted on a dead channel or intercept routine"]
    assert capture.exchanges[2].got_key and not capture.exchanges[1].got_key
    assert capture.closed_by == "engine"


def test_fewer_slices_skip_keyless_ones_more_slices_get_no_key(capture) -> None:  # type: ignore[no-untyped-def]
    replay = AgiReplay(capture)
    recorded = list(capture.exchanges)
    assert replay._answer("ANSWER", recorded) == [b"200 result=0"]
    assert replay._answer("WAIT FOR DIGIT 999", recorded) == [b"200 result=0"]  # any length matches
    assert replay._answer("WAIT FOR DIGIT 999", recorded) == [b"200 result=49"]
    assert replay.keys_delivered.is_set()  # the run of recorded slices is over
    assert replay._answer("WAIT FOR DIGIT 100", recorded) == [b"200 result=0"] and replay.extra_waits == 1
    assert replay._answer('STREAM FILE cc/zh-CN/x "0123456789*#"', recorded)[0] == b"HANGUP"
    assert replay.mismatches == []


def test_a_skipped_slice_that_got_a_key_is_a_mismatch(capture) -> None:  # type: ignore[no-untyped-def]
    replay = AgiReplay(capture)
    recorded = list(capture.exchanges)
    replay._answer("ANSWER", recorded)
    assert replay._answer('STREAM FILE cc/zh-CN/x "0123456789*#"', recorded) is None  # the engine lost the key
    assert replay.skipped_waits == 1
    assert replay.mismatches == [('STREAM FILE cc/zh-CN/x "0123456789*#"', "WAIT FOR DIGIT 300")]


def test_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.agi"
    path.write_bytes(b"=== connection\n<<< agi_network: yes\n<<< \nnonsense\n")
    with pytest.raises(ValueError, match="bad.agi: unexpected line"):
        load_agi_capture(path)
