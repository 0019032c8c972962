"""Schemathesis over the app's OpenAPI schema, once per role (anonymous, agent, supervisor, admin): generated
requests to every operation, none may answer with a server error."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from callcenter.bootstrap import App
from callcenter.web.app import create_app
from tests.e2e.desk_world import PASSWORDS, build

pytestmark = [pytest.mark.db, pytest.mark.slow]


@pytest.mark.parametrize("role", [None, "ag1", "sup1", "adm"])
def test_no_server_error_for_any_role(core: App, role: str | None) -> None:
    build(core)
    app = create_app(core)
    def bearer(user: str) -> dict[str, str]:
        with TestClient(app) as c:
            r = c.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
            return {"Authorization": f"Bearer {r.json()['token']}"}

    headers = bearer(role) if role else {}
    # the schema itself needs a staff login (api_docs = "staff"); the generated calls are made as `role`
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=headers or bearer("adm"))
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @settings(max_examples=15, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        check()
    assert operations >= 10
    assert failures == []
