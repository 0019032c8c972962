"""A talk script being walked during one call: a small pure state machine. Standard library only.

The agent clicks the client's answer (``answer``), possibly recording values (validated by the step's
capture field types); on a terminal step they record the after-call note and ``finish`` with the step's
outcome; ``back`` undoes the last move and the values it recorded. ``to_dict``/``from_dict`` give a
JSON-safe form for the database.

Recorded values are normalised to JSON-safe types: text/choice ``str``, date ``"YYYY-MM-DD"``,
datetime ``"YYYY-MM-DDTHH:MM"`` (seconds kept when given), number a canonical decimal ``str`` (never
float), bool ``bool``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from callcenter.domain.scripts.model import OUTCOMES, CaptureField, Script, Step

_TRUE = {"true", "1", "yes", "y", "on", "是", "对"}
_FALSE = {"false", "0", "no", "n", "off", "否", "不"}


class RunError(Exception):
    """A move the script does not allow. ``code`` keys ``scripts.run.<code>`` in the locales."""

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(f"{code} {params}" if params else code)


class CaptureError(ValueError):
    """Recorded values that do not fit the step. ``errors`` maps field key -> ``scripts.capture.<code>``."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(", ".join(f"{k}: {v}" for k, v in sorted(errors.items())))


def _empty(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def validate_value(fld: CaptureField, raw: Any) -> Any:
    """Normalise one recorded value or raise ``ValueError(code)``. Empty input returns ``None``."""
    if _empty(raw):
        return None
    kind = fld.type
    if kind == "text":
        if not isinstance(raw, str):
            raise ValueError("bad_text")
        value = raw.strip()
        if fld.min is not None and len(value) < fld.min:
            raise ValueError("too_short")
        if fld.max is not None and len(value) > fld.max:
            raise ValueError("too_long")
        return value
    if kind == "choice":
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise ValueError("bad_choice")
        value = str(raw).strip()
        if value not in fld.choice_keys():
            raise ValueError("bad_choice")
        return value
    if kind == "date":
        if isinstance(raw, dt.datetime):
            raise ValueError("bad_date")
        if isinstance(raw, dt.date):
            return raw.isoformat()
        try:
            return dt.date.fromisoformat(str(raw).strip()).isoformat()
        except ValueError:
            raise ValueError("bad_date") from None
    if kind == "datetime":
        if isinstance(raw, dt.datetime):
            moment = raw
        elif isinstance(raw, str) and ("T" in raw.strip() or " " in raw.strip()):  # a time is required
            try:
                moment = dt.datetime.fromisoformat(raw.strip())
            except ValueError:
                raise ValueError("bad_datetime") from None
        else:
            raise ValueError("bad_datetime")
        return moment.isoformat(timespec="seconds" if moment.second else "minutes")
    if kind == "number":
        if isinstance(raw, (bool, float)):
            raise ValueError("bad_number")
        try:
            number = Decimal(str(raw).strip().replace(",", ""))
        except InvalidOperation:
            raise ValueError("bad_number") from None
        if not number.is_finite():
            raise ValueError("bad_number")
        if fld.min is not None and number < fld.min:
            raise ValueError("too_small")
        if fld.max is not None and number > fld.max:
            raise ValueError("too_large")
        return format(number.normalize(), "f")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError("bad_bool")
    raise ValueError("bad_type")


def validate_capture(
    step: Step, captured: dict[str, Any] | None, required_extra: tuple[str, ...] = (), *, enforce_required: bool = True
) -> dict[str, Any]:
    """Validate values recorded at ``step``; returns the normalised non-empty ones or raises CaptureError."""
    captured = dict(captured or {})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    known = {f.key: f for f in step.capture}
    for key in captured:
        if key not in known:
            errors[key] = "unknown_field"
    for key, fld in known.items():
        try:
            value = validate_value(fld, captured.get(key))
        except ValueError as exc:
            errors[key] = str(exc)
            continue
        if value is None:
            if enforce_required and (fld.required or key in required_extra):
                errors[key] = "required"
            continue
        out[key] = value
    if errors:
        raise CaptureError(errors)
    return out


@dataclass
class ScriptRun:
    script: Script
    current: str
    values: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    outcome: str | None = None

    @classmethod
    def start(cls, script: Script) -> ScriptRun:
        script.step(script.initial)
        return cls(script=script, current=script.initial)

    # --- state ---------------------------------------------------------------------------------------
    @property
    def step(self) -> Step:
        return self.script.step(self.current)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def at_terminal(self) -> bool:
        return self.step.terminal

    def path(self) -> list[str]:
        """Step ids visited so far, in order, ending with the current step."""
        return [h["step"] for h in self.history if h.get("answer") is not None] + [self.current]

    # --- moves ---------------------------------------------------------------------------------------
    def answer(self, key: str, captured: dict[str, Any] | None = None) -> Step:
        """Take the client's answer ``key`` at the current step, recording ``captured``; return the next step."""
        if self.finished:
            raise RunError("finished", outcome=self.outcome)
        step = self.step
        if step.terminal:
            raise RunError("is_terminal", step=step.id)
        ans = step.answer(key)
        if ans is None:
            raise RunError("unknown_answer", step=step.id, answer=key)
        values = validate_capture(step, captured, ans.requires)
        self._record(step.id, key, None, values)
        self.current = ans.next
        return self.step

    def finish(self, captured: dict[str, Any] | None = None) -> str:
        """At a terminal step: record the after-call values and end with the step's outcome."""
        if self.finished:
            raise RunError("finished", outcome=self.outcome)
        step = self.step
        if step.outcome is None:  # not a terminal step
            raise RunError("not_terminal", step=step.id)
        values = validate_capture(step, captured)
        self._record(step.id, None, step.outcome, values)
        self.outcome = step.outcome
        return step.outcome

    def end_early(self, outcome: str, captured: dict[str, Any] | None = None) -> str:
        """The call ended before a terminal step (client hung up, asked not to be called …).
        Values given are type-checked, but the step's required fields are not demanded."""
        if self.finished:
            raise RunError("finished", outcome=self.outcome)
        if outcome not in OUTCOMES:
            raise RunError("bad_outcome", outcome=outcome)
        values = validate_capture(self.step, captured, enforce_required=False)
        self._record(self.current, None, outcome, values)
        self.outcome = outcome
        return outcome

    def back(self) -> Step:
        """Undo the last move (an answer or the finish), restoring the values it overwrote."""
        if not self.history:
            raise RunError("nothing_to_undo")
        entry = self.history.pop()
        for key in entry["set"]:
            if key in entry["previous"]:
                self.values[key] = entry["previous"][key]
            else:
                self.values.pop(key, None)
        self.current = entry["step"]
        self.outcome = None
        return self.step

    def _record(self, step_id: str, answer: str | None, outcome: str | None, values: dict[str, Any]) -> None:
        previous = {k: self.values[k] for k in values if k in self.values}
        self.history.append({"step": step_id, "answer": answer, "outcome": outcome, "set": values, "previous": previous})
        self.values.update(values)

    # --- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "script": self.script.id,
            "version": self.script.version,
            "current": self.current,
            "values": dict(self.values),
            "history": [
                {"step": h["step"], "answer": h["answer"], "outcome": h["outcome"], "set": dict(h["set"]), "previous": dict(h["previous"])}
                for h in self.history
            ],
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], script: Script) -> ScriptRun:
        if data.get("script") != script.id:
            raise RunError("script_mismatch", expected=script.id, got=data.get("script"))
        try:
            current = str(data["current"])
            history = [
                {
                    "step": str(h["step"]),
                    "answer": h.get("answer"),
                    "outcome": h.get("outcome"),
                    "set": dict(h.get("set") or {}),
                    "previous": dict(h.get("previous") or {}),
                }
                for h in data.get("history") or []
            ]
            values = dict(data.get("values") or {})
            outcome = data.get("outcome")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise RunError("bad_state") from None
        for step_id in [current] + [h["step"] for h in history]:
            if step_id not in script.steps:
                raise RunError("script_changed", step=step_id)
        if outcome is not None and outcome not in OUTCOMES:
            raise RunError("bad_state")
        return cls(script=script, current=current, values=values, history=history, outcome=outcome)
