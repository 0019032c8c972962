"""Who may move a client's money, and whose idempotency key is whose (hardening findings 3 and 13).

One access rule (callcenter.domain.access) for the API, the desk, the care panel and the IVR: a supervisor moves
the money of the groups they supervise only; agents and admins move none; the IVR's client moves only their own.
Every refusal looks exactly like an account that does not exist. An idempotency key belongs to the principal
that sent it: the same key from someone else is another, independent request.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from callcenter.bootstrap import App
from callcenter.store.db import run_in_transaction, transaction
from callcenter.store.ledger import balances
from callcenter.store.models import FundAccount, Transfer
from callcenter.store.models.desk import DeskContact
from callcenter.web.app import create_app
from tests.factories import make_client, make_group, make_staff


@pytest.fixture
def api(core: App) -> TestClient:
    return TestClient(create_app(core), raise_server_exceptions=False)


@pytest.fixture
def world(core: App) -> dict[str, object]:
    g1, g2 = make_group(core, "一组"), make_group(core, "二组")
    ids = {
        "ag1": make_staff(core, "ag1", "pw-agent-1", "agent", group_id=g1),
        "sup1": make_staff(core, "sup1", "pw-super-1", "supervisor", supervises=[g1]),
        "sup2": make_staff(core, "sup2", "pw-super-2", "supervisor", supervises=[g2]),
        "adm": make_staff(core, "adm", "pw-admin-1", "admin"),
    }
    mine, (main, aux) = make_client(core, accounts=[(10_000_00, 10_000_00), (0, 0)], group_id=g1)
    theirs, (their_main, their_aux) = make_client(core, accounts=[(5_000_00, 5_000_00), (0, 0)], group_id=g2)
    return {"g1": g1, "g2": g2, "ids": ids, "mine": mine, "theirs": theirs, "main": main, "aux": aux,
            "their_main": their_main, "their_aux": their_aux}


PASSWORDS = {"ag1": "pw-agent-1", "sup1": "pw-super-1", "sup2": "pw-super-2", "adm": "pw-admin-1"}


def login(api: TestClient, user: str) -> dict[str, str]:
    r = api.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def money(core: App) -> dict[str, int]:
    """Every fund and bank book by fund account number, and the number of transfers recorded."""
    with transaction(core.sessions) as s:
        funds = s.execute(select(FundAccount)).scalars().all()
        cash = balances(s, "fund", [f.id for f in funds])
        bank = balances(s, "bank", [f.bank_account_id for f in funds])
        out = {f.account_no: cash[f.id] for f in funds}
        out.update({f"bank:{f.account_no}": bank[f.bank_account_id] for f in funds})
        out["transfers"] = s.execute(select(func.count(Transfer.id))).scalar_one()
    return out


def test_supervisor_cannot_move_another_groups_money_and_it_looks_like_no_account(
        api: TestClient, core: App, world: dict[str, object]) -> None:
    sup1 = login(api, "sup1")
    assert api.get(f"/api/clients/{world['theirs']}", headers=sup1).status_code == 404
    before = money(core)
    theirs = api.post("/api/transfers", headers={**sup1, "Idempotency-Key": "steal-1"},
                      json={"kind": "fund_to_bank", "fund_account": world["their_main"], "amount": "100.00"})
    assert theirs.status_code == 404, theirs.text
    assert money(core) == before  # no money moved, nothing recorded
    # exactly what an account that does not exist answers: the sequential numbers cannot be probed
    absent = api.post("/api/transfers", headers={**sup1, "Idempotency-Key": "steal-1"},
                      json={"kind": "fund_to_bank", "fund_account": "399999999999", "amount": "100.00"})
    assert absent.status_code == 404
    assert absent.json() == theirs.json()
    assert theirs.json()["error"]["transfer"]["reference"] == ""
    # nor into another group's client from one's own: not "different clients", just not found
    into = api.post("/api/transfers", headers={**sup1, "Idempotency-Key": "steal-2"},
                    json={"kind": "fund_to_fund", "fund_account": world["main"], "to_fund_account": world["their_main"],
                          "amount": "1.00"})
    assert into.status_code == 404 and into.json()["error"]["code"] == absent.json()["error"]["code"]
    assert money(core) == before
    # their own group's client still works
    ok = api.post("/api/transfers", headers={**sup1, "Idempotency-Key": "mine-1"},
                  json={"kind": "fund_to_bank", "fund_account": world["main"], "amount": "100.00"})
    assert ok.status_code == 201, ok.text
    assert money(core)[str(world["main"])] == before[str(world["main"])] - 100_00


def test_agents_and_admins_move_no_money_through_the_api(api: TestClient, core: App, world: dict[str, object]) -> None:
    before = money(core)
    for user in ("ag1", "adm"):
        for account in (world["main"], world["their_main"]):
            r = api.post("/api/transfers", headers={**login(api, user), "Idempotency-Key": f"{user}-{account}"},
                         json={"kind": "fund_to_bank", "fund_account": account, "amount": "1.00"})
            assert r.status_code == 403, (user, r.text)
    assert money(core) == before


def test_the_service_itself_refuses_who_may_not_move_the_money(core: App, world: dict[str, object]) -> None:
    """The check lives in TransferService, not only in the route: every caller goes through it."""
    from callcenter.domain.access import Actor
    from callcenter.services.transfers import TransferCommand

    ids = world["ids"]
    refused = {
        "supervisor of group 1, group-2 account": (Actor.staff("supervisor", ids["sup1"], {world["g1"]}), world["their_main"]),
        "agent, own group": (Actor.staff("agent", ids["ag1"], {world["g1"]}), world["main"]),
        "agent with the client on a call": (Actor.staff("agent", ids["ag1"], {world["g1"]}, {world["theirs"]}),
                                            world["their_main"]),
        "admin": (Actor.staff("admin", ids["adm"]), world["main"]),
        "IVR client, another client's account": (Actor.client(world["mine"]), world["their_main"]),
    }
    before = money(core)
    for case, (actor, account) in refused.items():
        out = core.transfers.transfer(TransferCommand(idempotency_key=f"svc-{case}", kind="fund_to_bank",
                                                      fund_account_no=account, amount_yuan="1.00", actor=actor))
        assert (out.status, out.error_code, out.reference) == ("rejected", "unknown_account", ""), case
    assert money(core) == before
    own = core.transfers.transfer(TransferCommand(idempotency_key="svc-own", kind="fund_to_fund",
                                                  fund_account_no=world["their_main"], amount_yuan="1.00",
                                                  to_fund_account_no=world["their_aux"], actor=Actor.client(world["theirs"])))
    assert own.status == "done"


def test_an_agent_reads_the_client_of_their_call_even_of_another_group(api: TestClient, core: App,
                                                                      world: dict[str, object]) -> None:
    ag1 = login(api, "ag1")
    assert api.get(f"/api/clients/{world['theirs']}", headers=ag1).status_code == 404

    def call(s) -> int:  # type: ignore[no-untyped-def]
        contact = DeskContact(agent_id=world["ids"]["ag1"], client_id=world["theirs"], direction="inbound",
                              started_at=core.clock())
        s.add(contact)
        s.flush()
        return contact.id

    contact_id = run_in_transaction(core.sessions, call)
    assert api.get(f"/api/clients/{world['theirs']}", headers=ag1).status_code == 200
    assert api.get(f"/api/care/clients/{world['theirs']}/subscriptions", headers=ag1).status_code == 200

    def hang_up(s) -> None:  # type: ignore[no-untyped-def]
        s.get(DeskContact, contact_id).ended_at = core.clock()

    run_in_transaction(core.sessions, hang_up)
    assert api.get(f"/api/clients/{world['theirs']}", headers=ag1).status_code == 404


def test_the_ivr_moves_only_the_authenticated_clients_money(core: App, world: dict[str, object]) -> None:
    with transaction(core.sessions) as s:
        their_id = s.execute(select(FundAccount.id).where(FundAccount.account_no == world["their_main"])).scalar_one()
    before = money(core)
    res = core.ivr.transfer(str(world["mine"]), str(their_id), "broker_to_bank", 100, "call-1:5", "ivr", "")
    assert not res.ok and res.error_code == "unknown_account"
    assert money(core) == before


# --- finding 13: keys are the principal's own ------------------------------------------------------------

def test_another_supervisors_same_key_is_a_new_request_not_a_replay(api: TestClient, core: App,
                                                                     world: dict[str, object]) -> None:
    sup1, sup2 = login(api, "sup1"), login(api, "sup2")
    body1 = {"kind": "fund_to_bank", "fund_account": world["main"], "amount": "100.00"}
    first = api.post("/api/transfers", json=body1, headers={**sup1, "Idempotency-Key": "shared-key"})
    assert first.status_code == 201
    # supervisor2 sends supervisor1's key and body: not supervisor1's transfer back (that account is not theirs)
    echo = api.post("/api/transfers", json=body1, headers={**sup2, "Idempotency-Key": "shared-key"})
    assert echo.status_code == 404 and first.json()["reference"] not in echo.text
    assert "Idempotent-Replayed" not in echo.headers
    # supervisor2's own request under the same key is independent: it runs, on their client's account
    body2 = {"kind": "fund_to_bank", "fund_account": world["their_main"], "amount": "7.00"}
    second = api.post("/api/transfers", json=body2, headers={**sup2, "Idempotency-Key": "shared-key"})
    assert second.status_code == 201, second.text
    assert second.json()["reference"] != first.json()["reference"] and "Idempotent-Replayed" not in second.headers
    # and each principal's replay is still their own
    again = api.post("/api/transfers", json=body1, headers={**sup1, "Idempotency-Key": "shared-key"})
    assert again.json()["reference"] == first.json()["reference"] and again.headers["Idempotent-Replayed"] == "true"
    with transaction(core.sessions) as s:
        rows = s.execute(select(Transfer.idempotency_scope, Transfer.staff_id)
                         .where(Transfer.idempotency_key == "shared-key").order_by(Transfer.id)).all()
    assert [r.staff_id for r in rows] == [world["ids"]["sup1"], world["ids"]["sup2"]]
    assert len({r.idempotency_scope for r in rows}) == 2


def test_the_same_ivr_key_from_two_clients_is_two_transfers(core: App, world: dict[str, object]) -> None:
    with transaction(core.sessions) as s:
        ids = dict(s.execute(select(FundAccount.account_no, FundAccount.id)).all())
    a = core.ivr.transfer(str(world["mine"]), str(ids[world["main"]]), "broker_to_bank", 100, "dup-call:4", "ivr", "")
    b = core.ivr.transfer(str(world["theirs"]), str(ids[world["their_main"]]), "broker_to_bank", 100, "dup-call:4",
                          "ivr", "")
    assert a.ok and b.ok and a.reference != b.reference
