"""A verdict: one step of the recipe judged, with its evidence (numbers), the fix and its source."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pass", "warn", "fail", "skipped")

Inputs = Any  # a tensor, or a tuple of tensors for a model that takes several


def as_tuple(x: Inputs) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@dataclass(frozen=True)
class Verdict:
    id: str  # the technique id of seed-features.md, e.g. "C2"
    name: str
    status: str
    summary: str  # one sentence: what was observed
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""  # what to do; empty when the step passed
    source: str = ""  # the seed or paper the rule comes from

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}; allowed: {', '.join(STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        text = f"[{self.status.upper():4}] {self.id} {self.name}: {self.summary}"
        return text + (f"\n       fix: {self.fix}" if self.fix and self.status != "pass" else "")
