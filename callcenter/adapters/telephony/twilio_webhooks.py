"""Signed webhook routes of the Twilio telephony backend (``twilio_calls.TwilioCalls``), fed to the dialler's
backend of this process through ``TwilioLine``:

* ``POST /twilio/calls/{call_id}/status``   a call's status callbacks (-> Ringing, Failed, Ended)
* ``POST /twilio/calls/{call_id}/answered`` the call's TwiML fetch at pick-up, after AMD (-> Answered; hold)
* ``POST /twilio/calls/{call_id}/parked``   an IVR hand-off's caller waiting for an agent (-> Answered; hold)
* ``POST /twilio/calls/{call_id}/digits``   a key typed during a notification's message (-> DigitPressed)
* ``POST /twilio/agents/{agent_id}/conference``  the agent's conference: their leg joins/leaves (-> AgentJoined/Left)
* ``POST /twilio/agents/{agent_id}/status``  the agent leg's final status (-> AgentLeft)

Every request's ``X-Twilio-Signature`` is checked against the public URL (403 otherwise). The events they give
are idempotent in ``TwilioCalls`` (a replayed callback finds its call's state already moved on and publishes
nothing), so a replay has no effect.
"""

from __future__ import annotations

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

    @router.post("/twilio/calls/{call_id}/status", include_in_schema=False)
    async def status(call_id: str, request: Request) -> Response:
        got = await backend(request, call_id)
        if isinstance(got, Response):
            return got
        got[0].status_callback(call_id, got[1])
        return Response(status_code=204)

    @router.post("/twilio/calls/{call_id}/answered", include_in_schema=False)
    async def answered(call_id: str, request: Request) -> Response:
        got = await backend(request, call_id)
        if isinstance(got, Response):
            return got
        return Response(got[0].answered_webhook(call_id, got[1]), media_type=XML)

    @router.post("/twilio/calls/{call_id}/parked", include_in_schema=False)
    async def parked(call_id: str, request: Request) -> Response:
        got = await backend(request, call_id)
        if isinstance(got, Response):
            return got
        calls, params = got
        if not call_id.startswith("cc-h") or not params.get("CallSid"):
            return Response(HANGUP, media_type=XML)
        return Response(calls.parked(call_id, params["CallSid"]), media_type=XML)

    @router.post("/twilio/calls/{call_id}/digits", include_in_schema=False)
    async def digits(call_id: str, request: Request) -> Response:
        got = await backend(request, call_id)
        if isinstance(got, Response):
            return got
        return Response(got[0].digits(call_id, got[1].get("Digits", "")), media_type=XML)

    @router.post("/twilio/agents/{agent_id}/conference", include_in_schema=False)
    async def conference(agent_id: str, request: Request) -> Response:
        got = await backend(request, agent_id)
        if isinstance(got, Response):
            return got
        got[0].conference_event(agent_id, got[1])
        return Response(status_code=204)

    @router.post("/twilio/agents/{agent_id}/status", include_in_schema=False)
    async def agent_status(agent_id: str, request: Request) -> Response:
        got = await backend(request, agent_id)
        if isinstance(got, Response):
            return got
        got[0].agent_status(agent_id, got[1])
        return Response(status_code=204)

    return router
