"""A problem found in a talk script: where (file, line), what (a code) and details (params for the message).

Messages live in callcenter/locales/<lang>/scripts.yaml under ``scripts.check.<code>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CODES = (
    "yaml_syntax",  # the file is not valid YAML
    "schema",  # a required key is missing or has the wrong type
    "unknown_key",  # a key the format does not know (typo guard)
    "missing_translation",  # zh or en wording missing
    "bad_kind",
    "bad_outcome",
    "bad_field_type",
    "duplicate_step",
    "duplicate_answer",
    "duplicate_capture",  # same capture key twice in one step
    "capture_type_conflict",  # same capture key with different types in different steps
    "missing_initial",
    "dangling_next",
    "unreachable",
    "no_terminal_path",  # from this step no path reaches a terminal step
    "unmarked_loop",  # an answer leads back into a cycle without `loop: true`
    "loop_not_a_loop",  # `loop: true` on an answer that does not close a cycle
    "terminal_with_answers",
    "no_answers",  # a non-terminal step with no answers (a dead end)
    "bad_requires",  # `requires` names a field the step does not capture
    "forbidden_wording",
    "template_syntax",
    "undefined_variable",
    "unsafe_attribute",
    "event_outside_reminder",
    "render_error",
)


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def message(self, lang: str = "zh-CN") -> str:
        from callcenter.i18n import t

        params = dict(self.params)
        if "shape" in params:  # a live-call shape (callcenter.domain.scripts.context.live_shapes), named per language
            params["shape"] = t(f"scripts.check.shapes.{params['shape']}", lang)
        return t(f"scripts.check.{self.code}", lang, **params)

    def format(self, lang: str = "zh-CN") -> str:
        return f"{self.path}:{self.line}: [{self.code}] {self.message(lang)}"


class ScriptInvalid(Exception):
    """Raised by the loader when a script has problems; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        first = problems[0] if problems else None
        detail = f"{first.path}:{first.line}: {first.code} {first.params}" if first else ""
        super().__init__(f"{len(problems)} problem(s) in talk script; first: {detail}")
