"""The command line as users meet it (issue 13 item 6): every command has a help line, an option with a fixed
set of values lists them in ``--help`` and refuses anything else in one sentence, flags show no ``<bool>``
placeholder, and a bad input or a failed operation is one line on stderr, never a traceback."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
import typer.main

from callcenter.cli import app
from callcenter.commands import cli_lang, run_command


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subs = getattr(group, "commands", None)
    if subs is None:
        return [(path, group)]
    return [c for name, sub in subs.items() for c in _commands(sub, (*path, name))]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        run_command(app, args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_every_command_has_a_help_line() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 50
    missing = [" ".join(path) for path, cmd in commands if not (cmd.help or cmd.short_help or "").strip()]
    assert missing == []


def test_help_lists_the_choices_and_shows_no_bool_placeholder(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line a choice list: no wrapping inside the help's table
    code, out, _ = _run(["campaign", "create", "--help"], capsys)
    flat = re.sub(r"[\s│]+", "", out)
    assert code == 0
    assert "<former_clients|cold_leads|dormant|reminder|callback>" in flat
    assert "<preview|progressive|ratio|predictive>" in flat and "<trading|working|every>" in flat
    assert "<zh-CN|en>" in flat
    for args in (["dialer", "simulate", "--help"], ["orders", "list", "--help"], ["bench", "all", "--help"],
                 ["complaints", "callbacks", "build", "--help"]):
        _, out, _ = _run(args, capsys)
        assert "<bool>" not in out, args
    _, out, _ = _run(["complaints", "open", "--help"], capsys)
    assert "misleading_sales" in re.sub(r"[\s│]+", "", out)


def test_a_value_not_among_the_choices_is_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["complaints", "open", "1", "rude", "太慢了"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("callcenter：命令用法有误：") and "'rude' is not one of" in err and "--help" in err
    code, _, err = _run(["campaign", "create", "x", "--kind", "zz", "--lang", "en"], capsys)
    assert code == 2 and err.startswith("callcenter: the command is not right:") and err.count("\n") == 1


def test_unknown_commands_and_options_are_one_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["nonesuch"], capsys)
    assert code == 2 and "No such command 'nonesuch'" in err and err.count("\n") == 1
    code, _, err = _run(["dialer", "simulate", "--agents", "many"], capsys)
    assert code == 2 and "'--agents'" in err and "integer" in err and err.count("\n") == 1
    code, _, err = _run(["campaign", "schedule", "1", "next tuesday"], capsys)
    assert code == 2 and "须为带时区的 ISO 时间" in err and err.count("\n") == 1


def test_a_failure_inside_a_command_is_one_sentence_not_a_traceback(capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    boom = typer.Typer()

    class Refused(ValueError):
        def sentence(self, lang: str) -> str:
            return "余额不足" if lang == "zh-CN" else "Not enough money"

    @boom.command()
    def go(lang: str = "zh-CN", kind: str = "refused") -> None:
        """A command that fails."""
        raise Refused() if kind == "refused" else KeyError("internal detail")

    for args, expected in ((["--lang", "en"], "callcenter: failed: Not enough money"),
                           ([], "callcenter：操作失败：余额不足"),
                           (["--kind", "bug"], "callcenter：操作失败：'internal detail'")):
        with pytest.raises(SystemExit) as exc:
            run_command(boom, args)
        err = capsys.readouterr().err
        assert exc.value.code == 1 and err.startswith(expected) and err.count("\n") == 1, err
        assert "Traceback" not in err
    monkeypatch.setenv("CALLCENTER_DEBUG", "1")  # a developer asks for the traceback
    with pytest.raises(KeyError):
        run_command(boom, ["--kind", "bug"])


def test_the_message_language_comes_from_lang_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLCENTER_LANG", raising=False)
    assert cli_lang(["x", "--lang", "en"]) == "en" and cli_lang(["--lang=en"]) == "en" and cli_lang([]) == "zh-CN"
    monkeypatch.setenv("CALLCENTER_LANG", "en")
    assert cli_lang([]) == "en" and cli_lang(["--lang", "zh-CN"]) == "zh-CN"
