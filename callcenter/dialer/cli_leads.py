"""``callcenter leads ...`` (commands live in callcenter.dialer.cli)."""

from callcenter.dialer.cli import leads_app as app

__all__ = ["app"]
