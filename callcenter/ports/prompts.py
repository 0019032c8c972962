"""Rendered prompts as the carriers fetch them: what a use case asks of the prompt store (adapter:
``callcenter.adapters.ivr.prompt_files.PromptFiles``)."""

from __future__ import annotations

from typing import Protocol


class PromptRenderer(Protocol):
    def render_message(self, prompt: str, text: str, lang: str) -> None:
        """Render free ``text`` (a notification's message) to speech as the sound file named ``prompt``
        (``cc/care/notify-<id>``), before a call plays it; raises ``OSError``/``RuntimeError`` when it cannot."""
        ...
