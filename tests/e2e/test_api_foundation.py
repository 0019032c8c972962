"""The foundation's JSON API: login, client reads by service group, transfers; 401/403/4xx, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from callcenter.bootstrap import App
from callcenter.web.app import create_app
from tests.factories import make_client, make_group, make_staff


@pytest.fixture
def api(core: App) -> TestClient:
    return TestClient(create_app(core), raise_server_exceptions=False)


@pytest.fixture
def people(core: App) -> dict[str, object]:
    g1, g2 = make_group(core, "一组"), make_group(core, "二组")
    make_staff(core, "ag1", "pw-agent-1", "agent", group_id=g1)
    make_staff(core, "sup1", "pw-super-1", "supervisor", supervises=[g1])
    make_staff(core, "adm", "pw-admin-1", "admin")
    mine, (main, aux) = make_client(core, accounts=[(10_000_00, 10_000_00), (0, 0)], group_id=g1)
    theirs, _ = make_client(core, accounts=[(1_00, 0)], group_id=g2)
    return {"mine": mine, "theirs": theirs, "main": main, "aux": aux}


def token(api: TestClient, user: str, password: str) -> dict[str, str]:
    r = api.post("/api/login", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_healthz(api: TestClient) -> None:
    r = api.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_login_errors_and_throttling(api: TestClient, people: dict[str, object]) -> None:
    assert api.post("/api/login", json={"username": "ag1", "password": "nope"}).json()["error"]["code"] == "bad_credentials"
    assert api.post("/api/login", json={"username": "ghost", "password": "nope"}).status_code == 401
    assert api.post("/api/login", json={"username": ""}).status_code == 422
    for _ in range(4):
        api.post("/api/login", json={"username": "ag1", "password": "nope"})
    r = api.post("/api/login", json={"username": "ag1", "password": "pw-agent-1"})  # right password, still throttled
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_each_login_gets_a_new_session_and_logout_ends_it(api: TestClient, people: dict[str, object]) -> None:
    a, b = token(api, "ag1", "pw-agent-1"), token(api, "ag1", "pw-agent-1")
    assert a != b
    assert api.get("/api/me", headers=a).json()["role"] == "agent"
    assert api.post("/api/logout", headers=a).status_code == 204
    assert api.get("/api/me", headers=a).status_code == 401
    assert api.get("/api/me", headers=b).status_code == 200


def test_sessions_expire_when_idle(api: TestClient, people: dict[str, object], clock) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    h = token(api, "ag1", "pw-agent-1")
    clock.now += timedelta(minutes=31)
    assert api.get("/api/me", headers=h).status_code == 401


def test_client_reads_follow_service_groups(api: TestClient, people: dict[str, object]) -> None:
    agent, sup, adm = token(api, "ag1", "pw-agent-1"), token(api, "sup1", "pw-super-1"), token(api, "adm", "pw-admin-1")
    mine, theirs = people["mine"], people["theirs"]
    r = api.get(f"/api/clients/{mine}", headers=agent)
    assert r.status_code == 200
    body = r.json()
    assert body["accounts"][0]["available"] == "10000.00" and "****" in body["accounts"][0]["account"]
    assert str(people["main"]) not in r.text  # account numbers only masked
    assert api.get(f"/api/clients/{theirs}", headers=agent).status_code == 404  # another group: as if absent
    assert api.get(f"/api/clients/{theirs}", headers=sup).status_code == 404
    assert api.get(f"/api/clients/{theirs}", headers=adm).status_code == 200
    assert api.get(f"/api/clients/{mine}/holdings", headers=sup).status_code == 200
    assert api.get(f"/api/clients/{mine}").status_code == 401
    assert api.get("/api/clients/0", headers=adm).status_code == 422
    assert api.get("/api/clients/abc", headers=adm).status_code == 422


def test_transfers_need_a_supervisor_and_an_idempotency_key(api: TestClient, people: dict[str, object]) -> None:
    body = {"kind": "fund_to_bank", "fund_account": people["main"], "amount": "100.00"}
    assert api.post("/api/transfers", json=body).status_code == 401
    assert api.post("/api/transfers", json=body, headers=token(api, "ag1", "pw-agent-1")).status_code == 403
    # admins administer staff; they do not move client money (callcenter.domain.access)
    assert api.post("/api/transfers", json=body, headers={**token(api, "adm", "pw-admin-1"),
                                                          "Idempotency-Key": "adm-1"}).status_code == 403
    sup = token(api, "sup1", "pw-super-1")
    assert api.post("/api/transfers", json=body, headers=sup).status_code == 428
    first = api.post("/api/transfers", json=body, headers={**sup, "Idempotency-Key": "api-1"})
    assert first.status_code == 201 and first.json()["status"] == "done"
    again = api.post("/api/transfers", json=body, headers={**sup, "Idempotency-Key": "api-1"})
    assert again.status_code == 201 and again.json()["reference"] == first.json()["reference"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post("/api/transfers", json={**body, "amount": "1.00"}, headers={**sup, "Idempotency-Key": "api-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(("payload", "code", "status"), [
    ({"kind": "fund_to_bank", "fund_account": "MAIN", "amount": "999999.00"}, "over_per_transfer_limit", 422),
    ({"kind": "fund_to_bank", "fund_account": "MAIN", "amount": "100.001"}, "amount_precision", 422),
    ({"kind": "fund_to_bank", "fund_account": "MAIN", "amount": "0"}, "amount_not_positive", 422),
    ({"kind": "fund_to_fund", "fund_account": "AUX", "to_fund_account": "AUX", "amount": "1"}, "same_account", 422),
    ({"kind": "fund_to_bank", "fund_account": "MAIN", "amount": "-5"}, "invalid_request", 422),
    ({"kind": "sideways", "fund_account": "MAIN", "amount": "5"}, "invalid_request", 422),
    ({"kind": "fund_to_bank", "fund_account": "12ab", "amount": "5"}, "invalid_request", 422),
    ({"fund_account": "MAIN"}, "invalid_request", 422),
])
def test_rule_violations_are_4xx_with_code_and_sentence(api: TestClient, people: dict[str, object],
                                                        payload: dict[str, str], code: str, status: int) -> None:
    sup = token(api, "sup1", "pw-super-1")
    body = {k: (people["main"] if v == "MAIN" else people["aux"] if v == "AUX" else v) for k, v in payload.items()}
    r = api.post("/api/transfers", json=body, headers={**sup, "Idempotency-Key": f"bad-{code}-{len(str(body))}"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1,2,3]", b'{"kind": null}', b"\xff\xfe", b'{"amount": 1e309}'])
def test_malformed_bodies_never_500(api: TestClient, people: dict[str, object], raw: bytes) -> None:
    sup = token(api, "sup1", "pw-super-1")
    r = api.post("/api/transfers", content=raw,
                 headers={**sup, "Idempotency-Key": "m", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert api.post("/api/login", content=raw, headers={"Content-Type": "application/json"}).status_code == 422


def test_oversized_requests_are_refused(api: TestClient, core: App) -> None:
    big = b"x" * (core.settings.max_request_bytes + 1)
    r = api.post("/api/login", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_oversized_streamed_body_without_length_is_refused(api: TestClient, core: App) -> None:
    chunk = b"x" * 65536

    def body():  # type: ignore[no-untyped-def]
        for _ in range(core.settings.max_request_bytes // len(chunk) + 2):
            yield chunk

    r = api.post("/api/login", content=body(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    small = api.post("/api/login", content=iter([b'{"username": "x",', b' "password": "y"}']),
                     headers={"Content-Type": "application/json"})
    assert small.status_code == 401 and small.headers["x-content-type-options"] == "nosniff"
