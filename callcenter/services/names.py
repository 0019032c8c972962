"""Chinese personal names for talk scripts: the surname (compound surnames included) and its pinyin.

A surname is read as a surname, not as the character's everyday reading: 单 is Shan, 曾 Zeng, 区 Ou, 解 Xie.
``pypinyin`` gives the ordinary readings; the surname readings that differ, and the compound surnames, are the
short tables below (the common ones of the 百家姓; add to them, never special-case elsewhere)."""

from __future__ import annotations

from pypinyin import Style, lazy_pinyin

#: compound surnames (复姓): a name starting with one of these has a two-character surname
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 令狐 长孙 宇文 司徒 夏侯 万俟 轩辕 端木 独孤 南宫 西门 闻人 呼延".split())

#: surnames whose reading differs from the character's ordinary one
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "区": "ou", "解": "xie", "查": "zha", "朴": "piao", "盖": "ge", "缪": "miao",
    "秘": "bi", "仇": "qiu", "乐": "yue", "覃": "qin", "翟": "zhai", "种": "chong", "繁": "po", "员": "yun",
    "尉迟": "yuchi", "万俟": "moqi", "长孙": "zhangsun", "黑": "he", "召": "shao", "纪": "ji", "句": "gou",
    "过": "guo", "那": "na", "宁": "ning", "折": "she", "禚": "zhuo", "莘": "shen", "冼": "xian", "华": "hua",
}


def split_name(name: str) -> tuple[str, str]:
    """(surname, given name) of a Chinese name; a name in Latin letters is split at its last word."""
    name = name.strip()
    if not name:
        return "", ""
    if name.isascii():
        parts = name.split()
        return (parts[-1], " ".join(parts[:-1])) if len(parts) > 1 else (name, "")
    if name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[:1], name[1:]


def surname_latin(name: str) -> str:
    """The surname in pinyin, capitalised as in English wording: 王建国 -> Wang, 单雄信 -> Shan, 欧阳修 -> Ouyang."""
    surname, _ = split_name(name)
    if not surname:
        return ""
    if surname.isascii():
        return surname[:1].upper() + surname[1:]
    reading = SURNAME_READINGS.get(surname) or "".join(lazy_pinyin(surname, style=Style.NORMAL, errors="ignore"))
    return reading[:1].upper() + reading[1:]
