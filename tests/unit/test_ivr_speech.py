import pytest

from callcenter.domain.ivr.speech import amount_text, digits_text, en_amount, tokens, zh_amount, zh_number
from callcenter.domain.ivr.interpreter import parse_amount_fen


@pytest.mark.parametrize(("fen", "words"), [
    (1_234_560, "一万二千三百四十五元六角"),
    (1_000_500, "一万零五元"),
    (5, "五分"),
    (10_000_000_000, "一亿元"),
    (0, "零元"),
    (1000, "十元"),
    (1005, "十元零五分"),
    (1_001_000, "一万零一十元"),
    (10_020_030_045, "一亿零二十万零三百元四角五分"),
    (100_000_100, "一百万零一元"),
    (60, "六角"),
])
def test_chinese_amounts(fen, words):
    assert zh_amount(fen) == words


@pytest.mark.parametrize(("n", "words"), [(10, "十"), (15, "十五"), (110, "一百一十"), (1010, "一千零一十"),
                                          (100000, "十万"), (1_000_000_001, "十亿零一"), (20_0000_0000, "二十亿")])
def test_chinese_numbers(n, words):
    assert zh_number(n) == words


@pytest.mark.parametrize(("fen", "words"), [
    (1_234_560, "twelve thousand three hundred forty-five yuan and sixty fen"),
    (5, "five fen"),
    (10_000_000_000, "one hundred million yuan"),
    (100, "one yuan"),
    (0, "zero yuan"),
])
def test_english_amounts(fen, words):
    assert en_amount(fen) == words


def test_tokens_cover_every_piece_of_an_amount():
    assert tokens(zh_amount(1_234_560), "zh-CN") == ["d1", "wan", "d2", "qian", "d3", "bai", "d4", "shi", "d5",
                                                     "yuan", "d6", "jiao"]
    assert tokens(en_amount(4_500), "en") == ["forty", "five", "yuan"]


def test_digits_and_language_dispatch():
    assert digits_text("600519", "zh-CN") == "六零零五一九"
    assert digits_text("07", "en") == "zero seven"
    assert amount_text(100, "en") == "one yuan" and amount_text(100, "zh-CN") == "一元"


def test_negative_or_huge_amounts_are_refused():
    with pytest.raises(ValueError):
        zh_amount(-1)
    with pytest.raises(ValueError):
        en_amount(10**16)


@pytest.mark.parametrize(("keys", "fen"), [("12345*6", 1_234_560), ("100", 10_000), ("0*05", 5), ("7*", 700),
                                           ("0", None), ("1*2*3", None), ("1*234", None), ("", None), ("*5", None)])
def test_amount_keys_use_star_as_decimal_point(keys, fen):
    assert parse_amount_fen(keys) == fen
