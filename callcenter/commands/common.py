"""Helpers shared by the command modules: settings and the wired App, built once per command."""

from __future__ import annotations

import typer

from callcenter.bootstrap import App, bootstrap
from callcenter.i18n import t
from callcenter.logging_setup import configure_logging
from callcenter.settings import load_settings


def make_core(**overrides: object) -> App:
    configure_logging()
    return bootstrap(load_settings(**overrides))


LANG = typer.Option("zh-CN", "--lang", help="message language: zh-CN or en")


def refused(exc: Exception, lang: str) -> typer.Exit:
    """A use case refused the command: its sentence (in ``lang``) on stderr, exit status 1."""
    sentence = getattr(exc, "sentence", None)
    typer.echo(t("dialer.cli.refused", lang, detail=sentence(lang) if callable(sentence) else str(exc)), err=True)
    return typer.Exit(1)
