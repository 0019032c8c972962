"""The rendered prompts as files, by the names the dialler and the IVR play, and their signed URLs for carriers.

A prompt name is what a call plays (``Telephony.play``): ``cc/safe-harbour``, ``cc/leave-message`` (the
dialler's, at the top of the tree), ``cc/<lang>/<stem>`` (an IVR prompt or a piece of a spoken number, as
``prompts build`` lays them out), ``cc/care/notify-<id>`` (a notification call's message, rendered before the
call by ``render_message``). ``cc/`` is the tree ``prompts build`` writes (settings ``prompts_dir``), the same
files Asterisk finds under ``<sounds>/cc/``: ``PromptFiles.ensure`` renders a catalogue prompt on demand (with
the build's manifest as its cache: an unchanged prompt is never rendered twice) and returns its path.

Carriers that fetch audio over HTTP (Twilio's ``<Play>``) get ``PromptSigner.url(name)``:
``{public_url}/prompts/<signature>/<name>.wav``, the signature an HMAC of the name under the engine's key
(setting ``prompt_url_key``, else derived from the Twilio auth token), so the URLs cannot be guessed and
nothing else under ``var/`` can be reached; ``web/routes/prompts.py`` serves them with ``Cache-Control``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
from pathlib import Path

from callcenter import i18n
from callcenter.adapters.ivr import prompts

_NAME = re.compile(r"cc/(?:(?P<top>safe-harbour|leave-message)|(?P<lang>zh-CN|en)/(?P<stem>[a-z0-9_]{1,96})"
                   r"|care/(?P<care>notify-[0-9]{1,18}))")
CARE_DIR = "care"


class PromptFiles:
    """Prompt names -> files under ``root`` (``prompts build``'s tree), rendered when missing."""

    def __init__(self, root: Path, company: prompts.Company | None = None) -> None:
        self.root = root
        self.company = company
        self._lock = threading.Lock()  # one render (and one manifest write) at a time in this process

    def path_of(self, name: str) -> Path | None:
        """Where prompt ``name`` lives (None for a name that is not a prompt)."""
        m = _NAME.fullmatch(name)
        if m is None:
            return None
        if m["top"]:
            return self.root / f"{m['top']}.wav"
        if m["care"]:
            return self.root / CARE_DIR / f"{m['care']}.wav"
        return self.root / m["lang"] / f"{m['stem']}.wav"

    def ensure(self, name: str) -> Path | None:
        """The file of prompt ``name``, rendered now if it is a catalogue prompt not built yet; None when it is
        not a prompt, or a message never rendered."""
        path = self.path_of(name)
        if path is None:
            return None
        if path.exists():
            return path
        m = _NAME.fullmatch(name)
        assert m is not None
        if m["care"]:
            return None  # a message is rendered before its call, never from a URL
        if m["top"]:
            lang, stem = i18n.DEFAULT_LANG, prompts.prompt_stem(prompts.OUTBOUND_PROMPTS[m["top"]])
        else:
            lang, stem = m["lang"], m["stem"]
        if stem not in prompts.prompt_texts(lang, self.company):
            return None
        with self._lock:
            if not path.exists():
                prompts.build(self.root, (lang,), only={stem}, company=self.company)
        return path if path.exists() else None

    def render_message(self, prompt: str, text: str, lang: str) -> None:
        """Render a notification's message to the file of ``prompt`` (``cc/care/notify-<id>``); a message already
        rendered from the same text is kept (its digest is in ``care/manifest.json``)."""
        path = self.path_of(prompt)
        if path is None or not prompt.startswith(f"cc/{CARE_DIR}/"):
            raise ValueError(f"not a message prompt: {prompt!r}")
        digest = hashlib.sha256(f"{prompts.ESPEAK_VOICES.get(lang)}|{text}".encode()).hexdigest()
        manifest_path = path.parent / "manifest.json"
        with self._lock:
            manifest: dict[str, str] = {}
            if manifest_path.exists():
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get(path.stem) == digest and path.exists():
                return
            tmp = path.with_suffix(".tmp.wav")
            prompts.render(text, lang, tmp)
            tmp.replace(path)
            manifest[path.stem] = digest
            manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")


def derive_key(prompt_url_key: str, twilio_auth_token: str) -> bytes:
    """The signing key: the operator's own, else one derived from the Twilio auth token (never the token itself)."""
    if prompt_url_key:
        return prompt_url_key.encode()
    if not twilio_auth_token:
        raise ValueError("signed prompt URLs need prompt_url_key or twilio_auth_token")
    return hmac.new(twilio_auth_token.encode(), b"callcenter prompt urls", hashlib.sha256).digest()


class PromptSigner:
    def __init__(self, public_url: str, key: bytes) -> None:
        if not key:
            raise ValueError("an empty key signs nothing")
        self.public_url = public_url.rstrip("/")
        self._key = key

    def signature(self, name: str) -> str:
        mac = hmac.new(self._key, name.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def verify(self, signature: str, name: str) -> bool:
        return hmac.compare_digest(signature, self.signature(name))

    def url(self, name: str) -> str:
        return f"{self.public_url}/prompts/{self.signature(name)}/{name}.wav"
