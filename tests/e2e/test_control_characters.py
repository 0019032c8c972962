"""Control characters never reach the database (hardening finding 7).

A NUL byte in a text field made PostgreSQL's driver raise DataError: a 500 (or a reset connection) and a
traceback with the SQL parameters in the log. Every text field of every request model and form is one of the
types of ``callcenter.web.text``: 422 with the sentence ``api.control_characters``, nothing stored, nothing of
the value logged. A DataError that still happens is a JSON 422 and the engine never logs parameters.
"""

from __future__ import annotations

import logging
import re
import types
import typing
from typing import Any, get_args, get_origin

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select, text

from callcenter.bootstrap import App
from callcenter.i18n import t
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.models.web import AuthThrottle
from callcenter.store.models.care import Complaint
from callcenter.store.models.dialer import Campaign
from callcenter.web.app import create_app
from tests.e2e.desk_world import World, build, page_login

MARK = "zz-secret-7f3a"  # what a log line must never show
NUL = "\x00"


@pytest.fixture
def world(core: App) -> World:
    return build(core)


def bearer(client: TestClient, user: str, password: str) -> dict[str, str]:
    r = client.post("/api/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def assert_refused(r: Any) -> None:
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "control_characters"
    assert err["message"] == t("api.control_characters", "zh-CN")


def counts(core: App) -> tuple[int, int, int]:
    with transaction(core.sessions) as s:
        return (s.execute(select(func.count()).select_from(Complaint)).scalar_one(),
                s.execute(select(func.count()).select_from(Campaign)).scalar_one(),
                s.execute(select(func.count()).select_from(AuthThrottle)).scalar_one())


def test_nul_in_login_complaint_and_campaign_is_a_422_and_nothing_is_stored_or_logged(
        core: App, world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = TestClient(create_app(core), raise_server_exceptions=False)
    before = counts(core)
    # login: the JSON API and the HTML form
    assert_refused(client.post("/api/login", json={"username": f"ag1{NUL}{MARK}", "password": "x"}))
    assert_refused(client.post("/api/login", json={"username": "ag1", "password": f"{MARK}{NUL}"}))
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert_refused(client.post("/login", data={"username": f"ag1{NUL}{MARK}", "password": "x", "csrf": csrf}))
    # a complaint opened by the agent for the client on screen
    agent = bearer(client, "ag1", "pw-agent-1")
    assert_refused(client.post(f"/api/care/clients/{world.mine}/complaints", headers=agent,
                               json={"category": "service_attitude", "text": f"投诉{NUL}{MARK}"}))
    # a campaign created on the supervisor's page (cookie session, CSRF form field)
    sup = TestClient(create_app(core), raise_server_exceptions=False)
    token = page_login(sup, "sup1")
    form = {"csrf": token, "name": f"春季{NUL}{MARK}", "kind": "former_clients", "script_id": "win_back",
            "dial_mode": "progressive", "window_start": "09:00", "window_end": "20:00", "days": "working",
            "max_attempts": "3"}
    assert_refused(sup.post("/supervisor/campaigns", data=form, follow_redirects=False))
    # other control characters too; a note may keep its line breaks and tabs
    assert_refused(client.post(f"/api/care/clients/{world.mine}/complaints", headers=agent,
                               json={"category": "service_attitude", "text": "bell\x07"}))
    ok = client.post(f"/api/care/clients/{world.mine}/complaints", headers=agent,
                     json={"category": "service_attitude", "text": "第一行\n\t第二行\r\n"})
    assert ok.status_code == 201, ok.text
    assert counts(core) == (before[0] + 1, before[1], before[2])  # only the clean complaint; no login failure
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert MARK not in logged and "Traceback" not in logged


def test_english_sentence_for_english_clients(core: App, world: World) -> None:
    client = TestClient(create_app(core), raise_server_exceptions=False)
    r = client.post("/api/login", json={"username": f"a{NUL}", "password": "x"}, headers={"Accept-Language": "en"})
    assert r.status_code == 422 and r.json()["error"]["message"] == t("api.control_characters", "en")


def test_a_database_data_error_is_json_and_logs_no_parameters(core: App, caplog: pytest.LogCaptureFixture) -> None:
    """Defence in depth, for a value the request types did not catch (on SQLite: a text too long for nothing,
    so the statement is made to fail by a cast PostgreSQL refuses; SQLite raises DataError for neither)."""
    caplog.set_level(logging.DEBUG)
    app = create_app(core)
    pg = core.database.dialect.name == "postgresql"

    @app.get("/test-data-error")
    def data_error() -> dict[str, str]:
        def work(s: Any) -> None:
            if pg:
                s.execute(text("SELECT CAST(:v AS text)"), {"v": f"{MARK}{NUL}"})
            else:
                from sqlalchemy.exc import DataError

                raise DataError("SELECT :v", {"v": MARK}, Exception("simulated"), hide_parameters=True)

        run_in_transaction(core.sessions, work)
        return {}

    r = TestClient(app, raise_server_exceptions=False).get("/test-data-error")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert MARK not in r.text
    logged = "\n".join(f"{rec.getMessage()} {rec.exc_text or ''}" for rec in caplog.records)
    assert "SQLSTATE" in logged and MARK not in logged


def test_the_engine_hides_sql_parameters(core: App) -> None:
    from sqlalchemy.exc import StatementError

    with pytest.raises(StatementError) as caught:
        with core.database.connect() as conn:
            conn.execute(text("SELECT no_such_column FROM clients WHERE name = :v"), {"v": MARK})
    assert MARK not in str(caught.value)


# --- every request field uses the shared types -------------------------------------------------------------

def _uses_text_type(annotation: Any, metadata: list[Any], seen: set[type]) -> list[str]:
    """Problems: every str reachable from this annotation must carry one of the shared validators."""
    from callcenter.web.text import TEXT_VALIDATORS

    def validated(meta: list[Any]) -> bool:
        return any(getattr(m, "func", None) in TEXT_VALIDATORS for m in meta)

    if annotation is str:
        return [] if validated(metadata) else ["str"]
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = get_args(annotation)
        return _uses_text_type(base, list(meta) + metadata, seen)
    if origin in (typing.Union, types.UnionType, list, set, frozenset, tuple, dict):
        return [p for arg in get_args(annotation) if arg is not type(None) and arg is not Ellipsis
                for p in _uses_text_type(arg, [], seen)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        return [f"{annotation.__name__}.{name}: {p}" for name, f in annotation.model_fields.items()
                for p in _uses_text_type(f.annotation, list(f.metadata), seen)]
    return []


def test_every_text_field_of_every_request_uses_the_shared_type(core: App) -> None:
    app: FastAPI = create_app(core)
    problems = []
    routes = 0
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x wraps them)
            pending.extend(route.original_router.routes)
            continue
        if not isinstance(route, APIRoute):
            continue
        routes += 1
        d = route.dependant
        stack = [d]
        while stack:
            dep = stack.pop()
            stack.extend(dep.dependencies)
            for field in (*dep.path_params, *dep.query_params, *dep.header_params, *dep.body_params):
                info = field.field_info
                for p in _uses_text_type(info.annotation, list(info.metadata), set()):
                    problems.append(f"{sorted(route.methods)} {route.path} {field.name}: {p}")
    assert routes > 20
    assert problems == []
