"""``callcenter complaints``: complaints and call-backs (see callcenter.care.cli)."""

from callcenter.care.cli import complaints as app

__all__ = ["app"]
