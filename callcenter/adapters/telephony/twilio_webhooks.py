"""Signed webhook routes of the Twilio telephony backend (``twilio_calls.TwilioCalls``), fed to the dialler's
backend of this process through ``TwilioLine``:

* ``POST /twilio/calls/{call_id}/status``   a call's status callbacks (-> Ringing, Failed, Ended)
* ``POST /twilio/calls/{call_id}/answered`` the call's TwiML fetch at pick-up, after AMD (-> Answered; hold)
* ``POST /twilio/calls/{call_id}/parked``   an IVR hand-off's caller waiting for an agent (-> Answered; hold)
* ``POST /twilio/calls/{call_id}/digits``   a key typed during a notification's message (-> DigitPressed)
* ``POST /twilio/calls/{call_id}/hold``     the hold URL of a held customer's participant (TwiML of the hold prompt)
* ``POST /twilio/recordings/{name}/status`` a recording's status callback (completed: ``record_audio`` fetches it)
* ``POST /twilio/agents/{agent_id}/conference``  the agent's conference: their leg joins/leaves (-> AgentJoined/Left)
* ``POST /twilio/agents/{agent_id}/status``  the agent leg's final status (-> AgentLeft)

Every request's ``X-Twilio-Signature`` is checked against the public URL (403 otherwise). The events they give
are idempotent in ``TwilioCalls`` (a replayed callback finds its call's state already moved on and publishes
nothing; a conference callback already seen, by its conference and sequence number, is dropped; a recording's
completed callback ends one wait only), so a replay has no effect.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator

from callcenter.adapters.telephony.twilio_calls import TwilioCalls, TwilioLine
from callcenter.ports.telephony import check_id

XML = "application/xml"
HANGUP = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'


def make_router(line: TwilioLine, auth_token: str, public_url: str) -> APIRouter:
    if not auth_token:
        raise ValueError("Twilio webhooks need an auth token: an empty key verifies forged signatures")
    validator = RequestValidator(auth_token)
    base = public_url.rstrip("/")
    router = APIRouter()

    async def verified(request: Request) -> dict[str, str] | None:
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not validator.validate(url, params, signature):
            return None
        return params

    async def backend(request: Request, ident: str) -> tuple[TwilioCalls, dict[str, str]] | Response:
        params = await verified(request)
        if params is None:
            return Response("invalid signature", status_code=403, media_type="text/plain")
        try:
            check_id(ident)
        except ValueError:
            return Response("not found", status_code=404, media_type="text/plain")
        calls = line.calls
        if calls is None:
            return Response("no dialler here", status_code=503, media_type="text/plain")
        return calls, params

    def signed(path: str, handle: Callable[[TwilioCalls, str, dict[str, str]], Response]) -> None:
        """One signed route: the signature, the id and this process's backend checked, then ``handle``."""
        async def route(ident: str, request: Request) -> Response:
            got = await backend(request, ident)
            return got if isinstance(got, Response) else handle(got[0], ident, got[1])
        router.add_api_route(path, route, methods=["POST"], include_in_schema=False)

    def parked(calls: TwilioCalls, call_id: str, params: dict[str, str]) -> Response:
        if not call_id.startswith("cc-h") or not params.get("CallSid"):
            return Response(HANGUP, media_type=XML)
        return Response(calls.parked(call_id, params["CallSid"]), media_type=XML)

    def done(effect: Callable[[TwilioCalls, str, dict[str, str]], object]) -> Callable[[TwilioCalls, str, dict[str, str]], Response]:
        def handle(calls: TwilioCalls, ident: str, params: dict[str, str]) -> Response:
            effect(calls, ident, params)
            return Response(status_code=204)
        return handle

    signed("/twilio/calls/{ident}/status", done(lambda c, i, p: c.status_callback(i, p)))
    signed("/twilio/calls/{ident}/answered", lambda c, i, p: Response(c.answered_webhook(i, p), media_type=XML))
    signed("/twilio/calls/{ident}/parked", parked)
    signed("/twilio/calls/{ident}/digits", lambda c, i, p: Response(c.digits(i, p.get("Digits", "")), media_type=XML))
    signed("/twilio/calls/{ident}/hold", lambda c, i, p: Response(c.hold_twiml(i), media_type=XML))
    signed("/twilio/recordings/{ident}/status", done(lambda c, i, p: c.recording_status(i, p)))
    signed("/twilio/agents/{ident}/conference", done(lambda c, i, p: c.conference_event(i, p)))
    signed("/twilio/agents/{ident}/status", done(lambda c, i, p: c.agent_status(i, p)))
    return router
