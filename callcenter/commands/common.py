"""Helpers shared by the command modules: settings and the wired App, built once per command."""

from __future__ import annotations

from callcenter.bootstrap import App, bootstrap
from callcenter.logging_setup import configure_logging
from callcenter.settings import load_settings


def make_core(**overrides: object) -> App:
    configure_logging()
    return bootstrap(load_settings(**overrides))
