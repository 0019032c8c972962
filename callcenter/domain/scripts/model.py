"""The talk-script data model: a script is a named graph of steps, branching only through answers.

Standard library only. Scripts are built by :mod:`callcenter.services.scripts.loader` from YAML files in
``scripts_templates/``; every object remembers the file line it came from so the checker can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Languages a script carries. ``zh`` is the first language; ``en`` the second.
SCRIPT_LANGS = ("zh", "en")

#: Kinds of script, i.e. the kind of campaign they serve.
KINDS = (
    "win_back",  # former clients who closed their account (主动式客户服务 · 销户客户)
    "branch_prospect",  # prospect met at a bank branch (电话营销 · 银行网点)
    "cold_call",  # 陌生电话拜访 (盲打)
    "dormant",  # dormant-client re-activation (休眠客户)
    "satisfaction_callback",  # 回访 survey
    "reminder",  # warrant expiry, rights issue, placing … (温馨提示)
    "birthday",  # birthday greeting (生日关怀)
    "other",
)

#: Outcomes a terminal step may end a call with. The agent screen maps them to dispositions.
OUTCOMES = (
    "appointment_booked",  # visit / analyst review / course / lecture fixed on a date
    "second_call",  # interest turned into a booked second call (电话营销 第二次电话)
    "callback",  # client asked to be called back later
    "contact_left",  # no date fixed, agent's contact details left with the client
    "not_interested",
    "do_not_call",  # client asked never to be called again
    "complaint",  # complaint recorded, to be handled by the complaints process
    "wrong_number",  # not the client / number no longer theirs
    "completed",  # survey or information call completed
    "reminded",  # reminder delivered to the client in person
)

#: Types of the values an agent records at a step.
FIELD_TYPES = ("text", "choice", "date", "datetime", "number", "bool")


def lang_key(lang: str) -> str:
    """Map an application language ("zh-CN", "zh", "en", "en-GB") to a script language ("zh"/"en")."""
    low = (lang or "").lower()
    if low.startswith("en"):
        return "en"
    if low.startswith("zh"):
        return "zh"
    raise ValueError(f"unsupported language {lang!r}")


@dataclass(frozen=True)
class Text:
    """A piece of wording in both languages. ``lines`` holds, per language, the file line of its first line."""

    zh: str
    en: str
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def get(self, lang: str) -> str:
        key = lang_key(lang)
        value = self.zh if key == "zh" else self.en
        return value or self.zh

    def items(self) -> tuple[tuple[str, str], ...]:
        return (("zh", self.zh), ("en", self.en))


@dataclass(frozen=True)
class Choice:
    key: str
    label: Text


@dataclass(frozen=True)
class CaptureField:
    """A value the agent records at a step (通话记录)."""

    key: str
    type: str
    label: Text
    required: bool = False
    choices: tuple[Choice, ...] = ()
    min: int | None = None  # for numbers: inclusive bounds; for text: length bounds
    max: int | None = None
    line: int = 0

    def choice_keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.choices)


@dataclass(frozen=True)
class Answer:
    """A reply the client may give; the agent clicks it to move to ``next``.

    ``requires`` lists capture fields of the same step that must be filled when this answer is chosen.
    ``loop`` must be true when ``next`` leads back to a step from which this one can be reached again.
    """

    key: str
    label: Text
    next: str
    requires: tuple[str, ...] = ()
    loop: bool = False
    line: int = 0


@dataclass(frozen=True)
class Step:
    id: str
    say: Text
    title: Text | None = None
    hint: Text | None = None  # guidance for the agent, not read to the client
    answers: tuple[Answer, ...] = ()
    capture: tuple[CaptureField, ...] = ()
    outcome: str | None = None  # set on terminal steps only
    line: int = 0

    @property
    def terminal(self) -> bool:
        return self.outcome is not None

    def answer(self, key: str) -> Answer | None:
        for ans in self.answers:
            if ans.key == key:
                return ans
        return None

    def field(self, key: str) -> CaptureField | None:
        for f in self.capture:
            if f.key == key:
                return f
        return None


@dataclass(frozen=True)
class Script:
    id: str
    title: Text
    kind: str
    initial: str
    steps: dict[str, Step]
    description: Text | None = None
    notes: Text | None = None  # preparation before the call (通话前准备)
    version: int = 1
    source: str = "<string>"  # file the script was loaded from
    line: int = 0

    def step(self, step_id: str) -> Step:
        try:
            return self.steps[step_id]
        except KeyError:
            raise KeyError(f"script {self.id!r} has no step {step_id!r}") from None

    def capture_fields(self) -> dict[str, CaptureField]:
        """Every capture field of the script by key (the first declaration wins)."""
        out: dict[str, CaptureField] = {}
        for step in self.steps.values():
            for f in step.capture:
                out.setdefault(f.key, f)
        return out

    def outcomes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.outcome for s in self.steps.values() if s.outcome))
