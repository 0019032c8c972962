from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from callcenter.web.deps import CoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(core: CoreDep) -> dict[str, Any]:
    """200 while the web part answers. ``status`` is "degraded" when another part of the engine is down or
    restarting; ``parts`` gives each part's state (running / down / restarting, since, last error)."""
    with core.database.connect() as conn:
        conn.execute(text("select 1"))
    parts = core.parts.snapshot()
    return {"status": core.parts.overall(parts), "database": core.database.dialect.name,
            "telephony": core.settings.telephony_backend, "parts": parts}
