"""A fake of Twilio's REST API behind the twilio library's HTTP-client hook (``Client(..., http_client=...)``):
every request recorded, each answered as Twilio answers it (calls, call recordings, conferences and their
participants, a recording's media as WAV bytes). No network."""

from __future__ import annotations

import io
import itertools
import json
import re
import wave
from typing import Any

from twilio.http import HttpClient
from twilio.http.response import Response

ACCOUNT = "AC" + "0" * 32


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    """A PCM WAV of ``seconds`` of a quiet tone (what Twilio's ``.wav`` media is: 16-bit mono)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x10\x00\xf0\xff" * int(seconds * rate / 2))
    return out.getvalue()


class TwilioApi(HttpClient):
    """Answers ``/Calls``, ``/Calls/<sid>``, ``/Calls/<sid>/Recordings[/<sid>]``, ``/Conferences`` (list by
    friendly name), ``/Conferences/<sid>/Participants[/<call sid>]`` and ``/Recordings/<sid>.wav``."""

    def __init__(self, account: str = ACCOUNT) -> None:
        super().__init__(logger=None, is_async=False)  # type: ignore[arg-type]
        self.account = account
        self.requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.conferences: dict[str, str] = {}  # friendly name -> CF sid (in progress)
        self.media: dict[str, bytes] = {}  # RE sid -> the WAV Twilio would serve
        self.fail: set[str] = set()  # URI suffixes answered 404 (a call that is gone)

    def _sid(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):032d}"

    def request(self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None,  # type: ignore[no-untyped-def]
                allow_redirects=False):
        self.requests.append({"method": method, "uri": uri, "data": dict(data or {}), "params": dict(params or {}),
                              "auth": auth})
        path = uri.split("/2010-04-01/Accounts/", 1)[-1].split("/", 1)[-1]
        if any(path.endswith(f) for f in self.fail):
            return Response(404, json.dumps({"code": 20404, "message": "The requested resource was not found",
                                             "status": 404}))
        if method == "GET" and (m := re.fullmatch(r"Recordings/(RE\w+)\.wav", path)):
            body = self.media.get(m.group(1))
            if body is None:
                return Response(404, "")
            response = Response(200, "")
            response.content = body  # type: ignore[assignment]  # bytes, as MediaHttpClient gives them
            return response
        if path == "Calls.json":
            return self._json({"sid": self._sid("CA"), "status": "queued"})
        if m := re.fullmatch(r"Calls/(CA\w+)\.json", path):
            return self._json({"sid": m.group(1), "status": "in-progress"})
        if m := re.fullmatch(r"Calls/(CA\w+)/Recordings\.json", path):
            return self._json({"sid": self._sid("RE"), "call_sid": m.group(1), "status": "in-progress"})
        if m := re.fullmatch(r"Calls/(CA\w+)/Recordings/(RE\w+)\.json", path):
            return self._json({"sid": m.group(2), "call_sid": m.group(1), "status": (data or {}).get("Status", "")})
        if path == "Conferences.json":
            name = (params or {}).get("FriendlyName", "")
            found = [{"sid": sid, "friendly_name": n, "status": "in-progress"} for n, sid in self.conferences.items()
                     if n == name]
            return self._json({"conferences": found, "meta": {"key": "conferences", "page": 0, "page_size": 1,
                                                              "next_page_url": None}}, 200)
        if m := re.fullmatch(r"Conferences/(CF\w+)/Participants\.json", path):
            return self._json({"call_sid": self._sid("CA"), "conference_sid": m.group(1), "status": "queued"})
        if m := re.fullmatch(r"Conferences/(CF\w+)/Participants/(CA\w+)\.json", path):
            d = data or {}
            return self._json({"call_sid": m.group(2), "conference_sid": m.group(1), "hold": d.get("Hold") == "true",
                               "muted": d.get("Muted") == "true", "status": "connected"})
        return Response(404, json.dumps({"code": 20404, "message": f"no fake for {method} {path}", "status": 404}))

    def _json(self, body: dict[str, Any], status: int = 201) -> Response:
        return Response(status, json.dumps({"account_sid": self.account, **body}))

    # --- what the engine asked for ---------------------------------------------------------------------------
    def to(self, suffix: str, method: str = "POST") -> list[dict[str, Any]]:
        return [r["data"] for r in self.requests if r["method"] == method and r["uri"].endswith(suffix)]

    def creates(self) -> list[dict[str, Any]]:
        return self.to("/Calls.json")

    def updates(self, call_sid: str) -> list[dict[str, Any]]:
        return self.to(f"/Calls/{call_sid}.json")

    def participant_updates(self, call_sid: str) -> list[dict[str, Any]]:
        return [r["data"] for r in self.requests if re.search(rf"/Participants/{call_sid}\.json$", r["uri"])]

    def recording_creates(self, call_sid: str) -> list[dict[str, Any]]:
        return self.to(f"/Calls/{call_sid}/Recordings.json")

    def recording_updates(self, call_sid: str) -> list[tuple[str, dict[str, Any]]]:
        return [(r["uri"].rsplit("/", 1)[1].removesuffix(".json"), r["data"]) for r in self.requests
                if re.search(rf"/Calls/{call_sid}/Recordings/RE\w+\.json$", r["uri"])]
