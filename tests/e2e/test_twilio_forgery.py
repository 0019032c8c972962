"""Hardening finding 1: a Twilio webhook signed with the empty key must never reach the hotline.

The attack as found: on the default settings (no auth token) the routes were mounted and ``RequestValidator("")``
accepted an HMAC anyone can compute; a forged call authenticated as a client and posted a ``done`` transfer."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from callcenter.bootstrap import bootstrap
from callcenter.services.ivr.backend import demo_backend
from callcenter.services.ivr.flow import load_flow
from callcenter.adapters.ivr.twilio_voice import InMemoryCallStateStore, make_router
from callcenter.settings import SettingsError, load_settings
from callcenter.store.models.ledger import Transfer
from callcenter.web.app import create_app
from tests.factories import make_client

SID = "CAforgedforgedforgedforgedforged00"


def forged(api: TestClient, public: str, path: str, params: dict[str, str], key: str = "") -> int:
    signature = RequestValidator(key).compute_signature(public + path, params)
    r = api.post(path, content=urlencode(params),
                 headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    return r.status_code


def attack(api: TestClient, public: str, account: str, pin: str, key: str = "") -> list[int]:
    """The forged call of the finding: language, account, PIN, transfer menu, amount, confirm."""
    caller = {"CallSid": SID, "From": "+8613912345678"}
    codes = [forged(api, public, "/twilio/voice", caller, key)]
    for n, digits in enumerate(["1", account, pin, "3", "1", "2", "100#", "1"]):
        codes.append(forged(api, public, f"/twilio/voice/input?step={n}", {**caller, "Digits": digits}, key))
    return codes


def transfers(core) -> int:  # type: ignore[no-untyped-def]
    with core.sessions() as s:
        return s.scalar(select(func.count()).select_from(Transfer)) or 0


@pytest.mark.db
def test_default_settings_mount_no_twilio_routes_and_a_forged_call_moves_nothing(core) -> None:  # type: ignore[no-untyped-def]
    assert not core.settings.twilio_auth_token.get_secret_value()  # the default
    _, accounts = make_client(core, accounts=[(10_000_00, 10_000_00), (0, 0)], pin="135790")
    api = TestClient(create_app(core), raise_server_exceptions=False)
    codes = attack(api, core.settings.twilio_public_url, accounts[0], "135790")
    assert set(codes) == {404}, codes
    assert transfers(core) == 0


@pytest.mark.db
def test_with_a_token_the_empty_key_signature_is_refused(db_url: str, clock, bank_sim) -> None:  # type: ignore[no-untyped-def]
    core = bootstrap(load_settings(database_url=db_url, twilio_auth_token="configured-token-0123456789"), clock=clock,
                     bank=bank_sim.client())
    try:
        _, accounts = make_client(core, accounts=[(10_000_00, 10_000_00), (0, 0)], pin="135790")
        api = TestClient(create_app(core), raise_server_exceptions=False)
        public = core.settings.twilio_public_url
        assert set(attack(api, public, accounts[0], "135790")) == {403}
        assert transfers(core) == 0
        # the routes are there: a request signed with the real token is served
        assert forged(api, public, "/twilio/voice", {"CallSid": SID, "From": "+8613912345678"},
                      key="configured-token-0123456789") == 200
    finally:
        core.close()


def test_router_refuses_to_be_built_without_a_token() -> None:
    with pytest.raises(ValueError, match="auth token"):
        make_router(demo_backend(), load_flow("hotline"), "", "https://ivr.example.com", InMemoryCallStateStore())


@pytest.mark.parametrize("choice", [{"telephony_backend": "twilio", "twilio_account_sid": "AC1"},
                                    {"sms_backend": "twilio", "twilio_account_sid": "AC1"}])
def test_choosing_twilio_without_a_token_stops_start_up(choice: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="twilio_auth_token is empty"):
        load_settings(**choice)
