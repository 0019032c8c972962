"""``callcenter campaign ...`` (commands live in callcenter.dialer.cli)."""

from callcenter.dialer.cli import campaign_app as app

__all__ = ["app"]
