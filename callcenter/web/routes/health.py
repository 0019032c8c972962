from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from callcenter.web.deps import CoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(core: CoreDep) -> dict[str, str]:
    with core.engine.connect() as conn:
        conn.execute(text("select 1"))
    return {"status": "ok", "database": core.engine.dialect.name, "telephony": core.settings.telephony_backend}
