"""``callcenter events``: corporate events (see callcenter.care.cli)."""

from callcenter.care.cli import events as app

__all__ = ["app"]
