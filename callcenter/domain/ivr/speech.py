"""Numbers and amounts as spoken words, in Chinese and English (standard library only).

Amounts are integer fen.  Chinese uses the spoken (not the cheque) style: 1234560 fen ->
"一万二千三百四十五元六角"; English: "twelve thousand three hundred forty-five yuan and sixty fen".
(cn2an only writes the cheque style 壹万贰仟…元整 and num2words has no yuan, so this is ours.)

``*_tokens`` split the words into the pieces ``callcenter prompts build`` records once
(var/prompts/<lang>/num_<token>.wav), so any amount can be played by concatenating files.
"""

from __future__ import annotations

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_GROUP_UNITS = ("", "万", "亿", "万亿")
_ZH_TOKENS = {**{c: f"d{i}" for i, c in enumerate(_ZH_DIGITS)},
              "十": "shi", "百": "bai", "千": "qian", "万": "wan", "亿": "yi", "元": "yuan", "角": "jiao",
              "分": "fen"}
ZH_TOKEN_TEXT = {token: char for char, token in _ZH_TOKENS.items()}

_EN_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
            "sixteen seventeen eighteen nineteen").split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
EN_WORDS = sorted(set(_EN_ONES + _EN_TENS[2:] + ["hundred", "thousand", "million", "billion", "trillion", "yuan",
                                                 "and", "fen"]))


def _check(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n >= 10**16:
        raise ValueError(f"cannot speak {n!r}: expected an integer from 0 to 10**16 - 1")


# --- Chinese ----------------------------------------------------------------------------------
def _zh_group(n: int) -> str:
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit == 0:
            zero = zero or bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += _ZH_DIGITS[digit] + unit
    return out


def zh_number(n: int) -> str:
    """10005 -> 一万零五; 100000000 -> 一亿; 15 -> 十五."""
    _check(n)
    if n == 0:
        return "零"
    groups = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    out, gap = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            gap = gap or bool(out)
            continue
        if out and (gap or group < 1000):
            out += "零"
        out += _zh_group(group) + _ZH_GROUP_UNITS[index]
        gap = False
    return out[1:] if out.startswith("一十") else out


def zh_amount(fen: int) -> str:
    _check(fen)
    yuan, jiao, cents = fen // 100, fen // 10 % 10, fen % 10
    out = zh_number(yuan) + "元" if yuan or not (jiao or cents) else ""
    if jiao:
        out += _ZH_DIGITS[jiao] + "角"
    if cents:
        if yuan and not jiao:
            out += "零"
        out += _ZH_DIGITS[cents] + "分"
    return out


# --- English ----------------------------------------------------------------------------------
def _en_below_1000(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_EN_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_EN_TENS[n // 10] + (f"-{_EN_ONES[n % 10]}" if n % 10 else ""))
    elif n:
        words.append(_EN_ONES[n])
    return words


def en_number(n: int) -> str:
    """12345 -> twelve thousand three hundred forty-five."""
    _check(n)
    if n == 0:
        return "zero"
    words: list[str] = []
    for value, name in _EN_SCALES:
        if n >= value:
            words += _en_below_1000(n // value) + [name]
            n %= value
    words += _en_below_1000(n)
    return " ".join(words)


def en_amount(fen: int) -> str:
    _check(fen)
    yuan, cents = divmod(fen, 100)
    if not cents:
        return f"{en_number(yuan)} yuan"
    if not yuan:
        return f"{en_number(cents)} fen"
    return f"{en_number(yuan)} yuan and {en_number(cents)} fen"


# --- per language -------------------------------------------------------------------------------
def number_text(n: int, lang: str) -> str:
    return zh_number(n) if lang == "zh-CN" else en_number(n)


def amount_text(fen: int, lang: str) -> str:
    return zh_amount(fen) if lang == "zh-CN" else en_amount(fen)


def digits_text(digits: str, lang: str) -> str:
    if lang == "zh-CN":
        return "".join(_ZH_DIGITS[int(c)] for c in digits if c.isdigit())
    return " ".join(_EN_ONES[int(c)] for c in digits if c.isdigit())


def tokens(text: str, lang: str) -> list[str]:
    """Words of a spoken number/amount -> prompt-file tokens (``d1``, ``wan``, ``twelve``, ...)."""
    if lang == "zh-CN":
        return [_ZH_TOKENS[c] for c in text]
    return text.replace("-", " ").split()


def token_texts(lang: str) -> dict[str, str]:
    """Every token ``prompts build`` must record for ``lang`` -> the text to synthesise."""
    if lang == "zh-CN":
        return dict(ZH_TOKEN_TEXT)
    return {word: word for word in EN_WORDS}
