"""The command line: one module a command group (``callcenter <group> ...``), registered in ``callcenter.cli``.

``run_command`` runs it the way users meet it: a mistake in the command (an unknown option, a value not among
the choices) or a refused or failed operation is one sentence on stderr in the user's language (``--lang en``
or ``CALLCENTER_LANG=en``; Chinese by default), never a traceback; ``CALLCENTER_DEBUG=1`` shows the traceback
of an unexpected failure to a developer."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from callcenter.settings import SettingsError


def cli_lang(argv: Sequence[str]) -> str:
    """The language of the command's messages: its ``--lang``, else ``CALLCENTER_LANG``, else Chinese."""
    args = list(argv)
    for i, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--lang=") else args[i + 1] if arg == "--lang" and i + 1 < len(args) else None
        if value is not None:
            return "en" if value.lower().startswith("en") else "zh-CN"
    return "en" if os.environ.get("CALLCENTER_LANG", "").lower().startswith("en") else "zh-CN"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_command(command: typer.Typer, args: Sequence[str] | None = None) -> None:
    """Run a Typer app as the ``callcenter`` command and exit with its status (see the module docstring)."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer.exceptions import Abort

    from callcenter.i18n import t

    argv = list(sys.argv[1:] if args is None else args)
    lang = cli_lang(argv)
    try:
        code = command(args=argv, prog_name="callcenter", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a group named alone: its help (rich prints it while building the message)
        if exc.format_message().strip():
            print(exc.format_message(), file=sys.stderr)
        sys.exit(exc.exit_code)
    except ClickException as exc:  # a usage mistake: what click says, framed in a sentence
        print(t("common.cli.usage", lang, detail=_one_line(exc.format_message())), file=sys.stderr)
        sys.exit(exc.exit_code)
    except Abort:
        print(t("common.cli.aborted", lang), file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print(t("common.cli.aborted", lang), file=sys.stderr)
        sys.exit(130)
    except SettingsError as exc:
        print(t("common.cli.settings", lang, detail=_one_line(str(exc))), file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one sentence, not a traceback
        if os.environ.get("CALLCENTER_DEBUG") == "1":
            raise
        sentence = getattr(exc, "sentence", None)
        detail = sentence(lang) if callable(sentence) else _one_line(str(exc)) or type(exc).__name__
        print(t("common.cli.failed", lang, detail=detail), file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
