"""Surnames and their pinyin for English talk scripts (issue 13: "Am I speaking to Ms ?")."""

import pytest

from callcenter.services.names import split_name, surname_latin


@pytest.mark.parametrize("name, surname, latin", [
    ("王建国", "王", "Wang"),
    ("张伟", "张", "Zhang"),
    ("单雄信", "单", "Shan"),       # a surname read as a surname, not as 单 dan
    ("曾国藩", "曾", "Zeng"),
    ("区志强", "区", "Ou"),
    ("欧阳修", "欧阳", "Ouyang"),   # compound surname
    ("诸葛亮", "诸葛", "Zhuge"),
    ("John Smith", "Smith", "Smith"),
])
def test_surname_and_its_pinyin(name, surname, latin):
    assert split_name(name)[0] == surname
    assert surname_latin(name) == latin


def test_an_empty_name_gives_nothing_rather_than_failing():
    assert split_name("  ") == ("", "") and surname_latin("") == ""
