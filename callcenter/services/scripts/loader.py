"""Read a talk-script YAML file into the model, remembering file lines and collecting structural problems.

Only the shape is checked here (keys, types, languages, kinds, outcomes, field types, duplicates);
graph, template and wording checks live in :mod:`callcenter.services.scripts.check`.
"""

from __future__ import annotations

from typing import Any

from callcenter import yamlines
from callcenter.domain.scripts.model import (
    FIELD_TYPES,
    KINDS,
    OUTCOMES,
    SCRIPT_LANGS,
    Answer,
    CaptureField,
    Choice,
    Script,
    Step,
    Text,
)
from callcenter.services.scripts.problems import Problem
from callcenter.yamlines import LineDict


SCRIPT_KEYS = {"id", "version", "kind", "title", "description", "notes", "initial", "steps"}
STEP_KEYS = {"id", "title", "say", "hint", "answers", "capture", "outcome"}
ANSWER_KEYS = {"key", "label", "next", "requires", "loop"}
FIELD_KEYS = {"key", "type", "label", "required", "choices", "min", "max"}
CHOICE_KEYS = {"key", "label"}


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, line: int, code: str, **params: Any) -> None:
        self.problems.append(Problem(self.path, line, code, params))

    # --- helpers -------------------------------------------------------------------------------------
    def _line(self, mapping: Any, key: str | None = None) -> int:
        if isinstance(mapping, LineDict):
            if key is not None and key in mapping.key_lines:
                return mapping.key_lines[key]
            return mapping.line
        return getattr(mapping, "line", 0)

    def _check_keys(self, mapping: LineDict, allowed: set[str], where: str) -> None:
        for key, line in mapping.duplicates:
            self.problem(line, "schema", where=where, detail=f"duplicate key {key!r}")
        for key in mapping:
            if not isinstance(key, str) or key not in allowed:
                self.problem(mapping.key_lines.get(key, mapping.line), "unknown_key", where=where, key=str(key))

    def _str(self, mapping: LineDict, key: str, where: str, *, required: bool = True) -> str | None:
        value = mapping.get(key)
        if value is None:
            if required:
                self.problem(mapping.line, "schema", where=where, detail=f"missing {key!r}")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            # YAML 1.1 reads bare yes/no/on/off as booleans: insist on a quoted string
            self.problem(self._line(mapping, key), "schema", where=where, detail=f"{key!r} must be a string (quote it)")
            return None
        return str(value)

    def _text(self, mapping: LineDict, key: str, where: str, *, required: bool = True) -> Text | None:
        value = mapping.get(key)
        line = self._line(mapping, key)
        if value is None:
            if required:
                self.problem(mapping.line, "schema", where=where, detail=f"missing {key!r}")
            return None
        if not isinstance(value, LineDict):
            self.problem(line, "schema", where=where, detail=f"{key!r} must map zh/en to text")
            return None
        self._check_keys(value, set(SCRIPT_LANGS), f"{where}.{key}")
        texts: dict[str, str] = {}
        lines: dict[str, int] = {}
        for lang in SCRIPT_LANGS:
            raw = value.get(lang)
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                self.problem(line, "missing_translation", where=f"{where}.{key}", lang=lang)
                texts[lang] = ""
            elif not isinstance(raw, str):
                self.problem(value.key_lines.get(lang, line), "schema", where=f"{where}.{key}", detail=f"{lang!r} must be text")
                texts[lang] = ""
            else:
                texts[lang] = raw.rstrip("\n")
            lines[lang] = value.value_lines.get(lang, line)
        return Text(zh=texts["zh"], en=texts["en"], lines=lines)

    def _list(self, mapping: LineDict, key: str, where: str) -> list[Any]:
        value = mapping.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(self._line(mapping, key), "schema", where=where, detail=f"{key!r} must be a list")
            return []
        return value

    # --- script --------------------------------------------------------------------------------------
    def script(self, data: Any) -> Script | None:
        if not isinstance(data, LineDict):
            self.problem(1, "schema", where="script", detail="the file must be a mapping")
            return None
        self._check_keys(data, SCRIPT_KEYS, "script")
        script_id = self._str(data, "id", "script") or ""
        kind = self._str(data, "kind", "script") or "other"
        if kind not in KINDS:
            self.problem(self._line(data, "kind"), "bad_kind", kind=kind, allowed=", ".join(KINDS))
        title = self._text(data, "title", "script") or Text("", "")
        description = self._text(data, "description", "script", required=False)
        notes = self._text(data, "notes", "script", required=False)
        initial = self._str(data, "initial", "script") or ""
        version = data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int):
            self.problem(self._line(data, "version"), "schema", where="script", detail="'version' must be an integer")
            version = 1
        steps: dict[str, Step] = {}
        raw_steps = self._list(data, "steps", "script")
        if not raw_steps:
            self.problem(self._line(data, "steps"), "schema", where="script", detail="no steps")
        for raw in raw_steps:
            step = self.step(raw)
            if step is None:
                continue
            if step.id in steps:
                self.problem(step.line, "duplicate_step", step=step.id, first=steps[step.id].line)
                continue
            steps[step.id] = step
        if initial and initial not in steps:
            self.problem(self._line(data, "initial"), "missing_initial", step=initial)
        return Script(
            id=script_id,
            title=title,
            kind=kind,
            initial=initial,
            steps=steps,
            description=description,
            notes=notes,
            version=version,
            source=self.path,
            line=data.line,
        )

    def step(self, raw: Any) -> Step | None:
        if not isinstance(raw, LineDict):
            self.problem(getattr(raw, "line", 0), "schema", where="step", detail="each step must be a mapping")
            return None
        step_id = self._str(raw, "id", "step")
        if not step_id:
            return None
        where = f"steps.{step_id}"
        self._check_keys(raw, STEP_KEYS, where)
        say = self._text(raw, "say", where) or Text("", "")
        title = self._text(raw, "title", where, required=False)
        hint = self._text(raw, "hint", where, required=False)
        outcome = self._str(raw, "outcome", where, required=False)
        if outcome is not None and outcome not in OUTCOMES:
            self.problem(self._line(raw, "outcome"), "bad_outcome", step=step_id, outcome=outcome, allowed=", ".join(OUTCOMES))
        capture: list[CaptureField] = []
        seen_fields: set[str] = set()
        for raw_field in self._list(raw, "capture", where):
            fld = self.capture_field(raw_field, where)
            if fld is None:
                continue
            if fld.key in seen_fields:
                self.problem(fld.line, "duplicate_capture", step=step_id, key=fld.key)
                continue
            seen_fields.add(fld.key)
            capture.append(fld)
        answers: list[Answer] = []
        seen_answers: set[str] = set()
        for raw_answer in self._list(raw, "answers", where):
            ans = self.answer(raw_answer, where)
            if ans is None:
                continue
            if ans.key in seen_answers:
                self.problem(ans.line, "duplicate_answer", step=step_id, key=ans.key)
                continue
            seen_answers.add(ans.key)
            for req in ans.requires:
                if req not in seen_fields:
                    self.problem(ans.line, "bad_requires", step=step_id, answer=ans.key, key=req)
            answers.append(ans)
        if outcome is not None and answers:
            self.problem(raw.line, "terminal_with_answers", step=step_id)
        if outcome is None and not answers:
            self.problem(raw.line, "no_answers", step=step_id)
        return Step(
            id=step_id,
            say=say,
            title=title,
            hint=hint,
            answers=tuple(answers),
            capture=tuple(capture),
            outcome=outcome,
            line=raw.line,
        )

    def answer(self, raw: Any, where: str) -> Answer | None:
        if not isinstance(raw, LineDict):
            self.problem(getattr(raw, "line", 0), "schema", where=where, detail="each answer must be a mapping")
            return None
        key = self._str(raw, "key", f"{where}.answers")
        if key is None:
            return None
        here = f"{where}.answers.{key}"
        self._check_keys(raw, ANSWER_KEYS, here)
        label = self._text(raw, "label", here) or Text("", "")
        nxt = self._str(raw, "next", here) or ""
        requires = tuple(str(r) for r in self._list(raw, "requires", here))
        loop = raw.get("loop", False)
        if not isinstance(loop, bool):
            self.problem(self._line(raw, "loop"), "schema", where=here, detail="'loop' must be true or false")
            loop = False
        return Answer(key=key, label=label, next=nxt, requires=requires, loop=loop, line=raw.line)

    def capture_field(self, raw: Any, where: str) -> CaptureField | None:
        if not isinstance(raw, LineDict):
            self.problem(getattr(raw, "line", 0), "schema", where=where, detail="each capture field must be a mapping")
            return None
        key = self._str(raw, "key", f"{where}.capture")
        if key is None:
            return None
        here = f"{where}.capture.{key}"
        self._check_keys(raw, FIELD_KEYS, here)
        ftype = self._str(raw, "type", here) or "text"
        if ftype not in FIELD_TYPES:
            self.problem(self._line(raw, "type"), "bad_field_type", key=key, type=ftype, allowed=", ".join(FIELD_TYPES))
        label = self._text(raw, "label", here) or Text("", "")
        required = raw.get("required", False)
        if not isinstance(required, bool):
            self.problem(self._line(raw, "required"), "schema", where=here, detail="'required' must be true or false")
            required = False
        bounds: dict[str, int | None] = {}
        for name in ("min", "max"):
            value = raw.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                self.problem(self._line(raw, name), "schema", where=here, detail=f"{name!r} must be an integer")
                value = None
            bounds[name] = value
        choices: list[Choice] = []
        for raw_choice in self._list(raw, "choices", here):
            if not isinstance(raw_choice, LineDict):
                self.problem(getattr(raw_choice, "line", raw.line), "schema", where=here, detail="each choice must be a mapping")
                continue
            self._check_keys(raw_choice, CHOICE_KEYS, f"{here}.choices")
            ckey = self._str(raw_choice, "key", f"{here}.choices")
            clabel = self._text(raw_choice, "label", f"{here}.choices.{ckey}")
            if ckey is None or clabel is None:
                continue
            if ckey in {c.key for c in choices}:
                self.problem(raw_choice.line, "schema", where=here, detail=f"duplicate choice {ckey!r}")
                continue
            choices.append(Choice(ckey, clabel))
        if ftype == "choice" and not choices:
            self.problem(raw.line, "schema", where=here, detail="a choice field needs 'choices'")
        if ftype != "choice" and choices:
            self.problem(raw.line, "schema", where=here, detail="only choice fields have 'choices'")
        return CaptureField(
            key=key,
            type=ftype,
            label=label,
            required=required,
            choices=tuple(choices),
            min=bounds["min"],
            max=bounds["max"],
            line=raw.line,
        )


def parse_script(text: str, path: str = "<string>") -> tuple[Script | None, list[Problem]]:
    """Parse YAML text into a Script (None when it cannot be built) and the structural problems found."""
    try:
        data = yamlines.load(text)
    except yamlines.YamlSyntaxError as exc:
        return None, [Problem(path, exc.line, "yaml_syntax", {"detail": exc.detail})]
    builder = _Builder(path)
    script = builder.script(data)
    return script, builder.problems
