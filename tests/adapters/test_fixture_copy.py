"""The in-repository captures are byte-for-byte those of ../shared (when that folder is present)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-22"
ORIGINAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "asterisk-22"


def test_captures_are_kept_with_crlf() -> None:
    data = (HERE / "originate_outcomes.ami").read_bytes()
    assert b"\r\n" in data and data.startswith(b"Asterisk Call Manager/")


@pytest.mark.skipif(not ORIGINAL.is_dir(), reason="../shared is not beside this clone")
def test_copy_matches_the_original() -> None:
    names = sorted(p.name for p in ORIGINAL.iterdir())
    assert names == sorted(p.name for p in HERE.iterdir())
    for name in names:
        assert (HERE / name).read_bytes() == (ORIGINAL / name).read_bytes(), name
