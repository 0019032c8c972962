"""What a use case is handed by the composition root (see ``Deps``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from callcenter.ports.calendar import Calendar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from callcenter.services.bus import EventBus
    from callcenter.settings import Settings


class Deps(Protocol):
    """What the composition root (``callcenter.bootstrap.App``) hands a use case that records, reads the time
    and tells the screens: the database's transactions, the clock, the live event bus, the trading calendar and
    the settings. A use case declares this (or less: a ``sessionmaker`` alone) rather than the composition root,
    so it never depends on how the engine is wired; tests hand it any object with these attributes."""

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def calendar(self) -> Calendar: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...
