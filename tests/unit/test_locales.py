"""Every locale file parses, and Chinese and English name the same sentences (a key only one language has would
show a code to the other's readers)."""

from __future__ import annotations

from pathlib import Path

import yaml

from callcenter.i18n import catalogue

LOCALES = Path(__file__).resolve().parents[2] / "callcenter" / "locales"


def test_every_locale_file_parses() -> None:
    files = sorted(LOCALES.glob("*/*.yaml"))
    assert files
    for f in files:
        assert isinstance(yaml.safe_load(f.read_text(encoding="utf-8")), dict), f


def test_chinese_and_english_have_the_same_keys() -> None:
    zh, en = set(catalogue("zh-CN")), set(catalogue("en"))
    assert sorted(zh - en) == [] and sorted(en - zh) == []
    blank = [k for k in en if not catalogue("en")[k].strip() and catalogue("zh-CN")[k].strip()]
    assert blank == []  # a sentence one language says and the other leaves blank
