"""Render the IVR prompt catalogue to 8 kHz mono 16-bit WAV files for Asterisk (espeak-ng + sox).

Layout: ``<out>/<lang>/<stem>.wav`` where the stem of catalogue key ``ivr.bank.icbc`` is ``bank_icbc``
and the pieces of spoken numbers/amounts are ``num_<token>`` (see :mod:`callcenter.domain.ivr.speech`).
The prompts the dialler plays by name on answered outbound calls (:data:`OUTBOUND_PROMPTS`: ``cc/safe-harbour``
to a call no agent took, ``cc/leave-message`` to a machine) are also written at the top of the tree in the
default language (``<out>/safe-harbour.wav``), so ``<sounds>/cc/safe-harbour`` exists once the tree is copied to
``<sounds>/cc/``; their texts name the firm and its hotline (settings ``company_name``, ``company_name_en``,
``company_hotline``).
A manifest keeps the text each file was made from, so an unchanged prompt is not rendered again.
Free text (bulletins) is rendered on demand by :func:`render_text_cached`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter import i18n
from callcenter.ports.progress import Progress, no_progress
from callcenter.domain.ivr import speech
from callcenter.domain.ivr.model import PROMPT_AREA

ESPEAK_VOICES = {"zh-CN": "cmn", "en": "en-us"}
LANGS = ("zh-CN", "en")
DEFAULT_DIR = Path("var") / "prompts"  # relative to the current directory; the engine passes settings.prompts_path
# file at the top of the tree (what the dialler plays, relative to the sound prefix) -> catalogue key
OUTBOUND_PROMPTS = {"safe-harbour": f"{PROMPT_AREA}.outbound.safe_harbour",
                    "leave-message": f"{PROMPT_AREA}.outbound.leave_message"}


class PromptToolsMissing(RuntimeError):
    pass


def prompt_stem(key: str) -> str:
    """``ivr.bank.icbc`` -> ``bank_icbc`` (a file name Asterisk's STREAM FILE accepts)."""
    return key.removeprefix(f"{PROMPT_AREA}.").replace(".", "_")


def token_stem(token: str) -> str:
    return f"num_{token}"


@dataclass(frozen=True)
class Company:
    """Who is calling, as the outbound prompts say it (``{company}``, ``{hotline}`` in their texts)."""

    name: str
    name_en: str
    hotline: str

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> "Company":
        """From :class:`callcenter.settings.Settings` (its defaults when ``settings`` is None)."""
        from callcenter.settings import Settings

        def value(field: str) -> str:
            return str(getattr(settings, field) if settings is not None else Settings.model_fields[field].default)

        return cls(value("company_name"), value("company_name_en"), value("company_hotline"))

    def params(self, lang: str) -> dict[str, str]:
        name = self.name if lang == i18n.DEFAULT_LANG else self.name_en
        return {"company": name, "hotline": speech.digits_text(self.hotline, lang)}


def prompt_texts(lang: str, company: Company | None = None) -> dict[str, str]:
    """Every file ``prompts build`` makes for ``lang``: stem -> text (placeholders filled from ``company``)."""
    params = (company or Company.from_settings()).params(lang)
    texts = {prompt_stem(key): text.format(**params) if "{" in text else text
             for key, text in i18n.catalogue(lang).items() if key.startswith(f"{PROMPT_AREA}.")}
    texts.update({token_stem(token): text for token, text in speech.token_texts(lang).items()})
    return texts


def check_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise PromptToolsMissing(
            f"{' and '.join(missing)} not found: install the Debian packages "
            f"(apt-get install espeak-ng sox) to build prompts")


def render(text: str, lang: str, out: Path) -> None:
    """Synthesise ``text`` and convert it to 8 kHz mono 16-bit PCM WAV at ``out``."""
    check_tools()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", ESPEAK_VOICES.get(lang, "en-us"), "-s", "150", "-w", str(raw), "--", text],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out),
                        "gain", "-n", "-3"], check=True, capture_output=True, timeout=60)


@dataclass
class BuildReport:
    built: list[Path]
    unchanged: int


def build(out_dir: Path = DEFAULT_DIR, langs: tuple[str, ...] = LANGS, only: set[str] | None = None,
          company: Company | None = None, progress: Progress = no_progress) -> BuildReport:
    """``progress(done, total)`` after each prompt (built or unchanged)."""
    check_tools()
    if not langs:
        raise ValueError("no language to build prompts for")
    built: list[Path] = []
    unchanged = 0
    texts = {lang: sorted((stem, text) for stem, text in prompt_texts(lang, company).items()
                          if only is None or stem in only) for lang in langs}
    total, done = sum(len(v) for v in texts.values()), 0
    for lang in langs:
        folder = out_dir / lang
        folder.mkdir(parents=True, exist_ok=True)
        manifest_path = folder / "manifest.json"
        manifest: dict[str, str] = {}
        if manifest_path.exists():
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for stem, text in texts[lang]:
            done += 1
            progress(done, total)
            digest = hashlib.sha256(f"{ESPEAK_VOICES.get(lang)}|{text}".encode()).hexdigest()
            target = folder / f"{stem}.wav"
            if manifest.get(stem) == digest and target.exists():
                unchanged += 1
                continue
            render(text, lang, target)
            manifest[stem] = digest
            built.append(target)
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    # the dialler's prompts at the top of the tree, in the default language (Asterisk finds <sounds>/cc/<name>
    # whatever the channel's language)
    top = i18n.DEFAULT_LANG if i18n.DEFAULT_LANG in langs else langs[0]
    for name, key in sorted(OUTBOUND_PROMPTS.items()):
        source, target = out_dir / top / f"{prompt_stem(key)}.wav", out_dir / f"{name}.wav"
        if not source.exists():
            continue  # not built (``only``)
        if target.exists() and target.read_bytes() == source.read_bytes():
            continue
        shutil.copyfile(source, target)
        built.append(target)
    return BuildReport(built, unchanged)


def render_text_cached(text: str, lang: str, out_dir: Path = DEFAULT_DIR) -> str:
    """Render free text once (e.g. a bulletin); returns the stem under ``<out_dir>/<lang>/``."""
    stem = "dyn_" + hashlib.sha256(f"{lang}|{text}".encode()).hexdigest()[:16]
    target = out_dir / lang / f"{stem}.wav"
    if not target.exists():
        render(text, lang, target)
    return stem
