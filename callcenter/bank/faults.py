"""Fault injection for the simulated bank, from its settings (``bank_fault_*``) or, in tests, a rule.

Each transfer request draws one fault (or none):

* ``refuse``          a new reference is refused (code ``refused``), and stays refused
* ``timeout_before``  the request hangs and the connection drops before anything is applied
* ``timeout_after``   the transfer is applied, then the request hangs and the answer is lost
* ``down_before`` / ``down_after``  the bank process dies (before / after applying); ``callcenter run``
  restarts it
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Fault = Literal["refuse", "timeout_before", "timeout_after", "down_before", "down_after"]
FAULTS: tuple[Fault, ...] = ("refuse", "timeout_before", "timeout_after", "down_before", "down_after")


@dataclass
class BankFaults:
    refuse: float = 0.0
    timeout_before: float = 0.0
    timeout_after: float = 0.0
    down: float = 0.0  # half of these die before applying, half after
    seed: int = 0  # 0: a fresh random sequence; otherwise a fixed one
    rule: Callable[[str], Fault | None] | None = None  # tests: reference -> fault, deterministic
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed or None)

    @classmethod
    def from_settings(cls, settings: Any) -> "BankFaults":
        return cls(refuse=settings.bank_fault_refuse_rate, timeout_before=settings.bank_fault_timeout_before_rate,
                   timeout_after=settings.bank_fault_timeout_after_rate, down=settings.bank_fault_down_rate,
                   seed=settings.bank_fault_seed)

    @property
    def active(self) -> bool:
        return self.rule is not None or any((self.refuse, self.timeout_before, self.timeout_after, self.down))

    def draw(self, reference: str) -> Fault | None:
        if self.rule is not None:
            return self.rule(reference)
        if not self.active:
            return None
        with self._lock:
            x = self._rng.random()
        edge = 0.0
        for name, rate in (("refuse", self.refuse), ("timeout_before", self.timeout_before),
                           ("timeout_after", self.timeout_after), ("down_before", self.down / 2),
                           ("down_after", self.down / 2)):
            edge += rate
            if x < edge:
                return name  # type: ignore[return-value]  # one of FAULTS
        return None
