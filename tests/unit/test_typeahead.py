"""The one type-ahead rule (``domain/ivr/typeahead.py``) that FastAGI and Twilio apply to keys typed ahead."""

from callcenter.domain.ivr.interpreter import Collect
from callcenter.domain.ivr.typeahead import TypedAhead, apply_typed, kept_after

MENU = Collect(max_digits=1, timeout_s=8, terminator=None)
PIN = Collect(max_digits=6, timeout_s=10, terminator="#")
ACCOUNT = Collect(max_digits=21, timeout_s=10, terminator="#")


def test_a_menu_key_answers_a_menu_and_leaves_the_rest() -> None:
    assert apply_typed("312", MENU) == TypedAhead("3", rest="12")


def test_a_terminated_answer_stops_at_its_terminator() -> None:
    assert apply_typed("12345#9", ACCOUNT) == TypedAhead("12345", rest="9")
    assert apply_typed("#1", ACCOUNT) == TypedAhead("", rest="1")  # "#" alone: an empty answer, as on the keypad


def test_a_full_answer_needs_no_terminator() -> None:
    assert apply_typed("1357902", PIN) == TypedAhead("135790", rest="2")


def test_fewer_keys_are_the_beginning_of_the_answer() -> None:
    assert apply_typed("13", PIN) == TypedAhead(None, prefix="13")


def test_an_answer_longer_than_the_question_before_its_terminator_is_cut_at_the_limit() -> None:
    assert apply_typed("12345678#", PIN) == TypedAhead("123456", rest="78#")


def test_keys_survive_only_the_outcomes_the_action_names() -> None:
    assert kept_after("ok", ("ok",), "12") == "12"
    assert kept_after("wrong_pin", ("ok",), "12") == ""
