"""Leaf: the verdict types. A Verdict is one step of the recipe judged, with its evidence (numbers), the fix
and its source; a Diagnosis is the verdicts of a run of checks (the doctor's, the audit's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# 'skipped': the check could not run on this setup (the summary says why; "not checked"); 'error': it crashed,
# a bug reported as such (in nnrecipe, or in the caller's code it ran), never hidden as a skip
STATUSES = ("pass", "warn", "fail", "skipped", "error")

Inputs = Any  # a tensor, or a tuple of tensors for a model that takes several


def as_tuple(x: Inputs) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


@dataclass(frozen=True)
class Verdict:
    id: str  # the technique id (docs/techniques.md), e.g. "C2"
    name: str
    status: str
    summary: str  # one sentence: what was observed
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""  # what to do; empty when the step passed
    source: str = ""  # the article or paper the rule comes from
    # the fault family it believes (checks/faults.py), for a warn or fail; "" when it names none (yet)
    fault: str = ""
    # a verdict that noticed something without pinning it: the families it is consistent with, most likely first
    consistent_with: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}; allowed: {', '.join(STATUSES)}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["consistent_with"] = list(self.consistent_with)
        return out

    def stop_line(self) -> str:
        """The verdict as a stop names it: id, check, summary and fix, on one line."""
        return f"{self.id} {self.name}: {self.summary} (fix: {self.fix or 'see the evidence'})"

    def line(self) -> str:
        text = f"[{self.status.upper():4}] {self.id} {self.name}: {self.summary}"
        if self.fault and self.status in ("warn", "fail"):
            also = f"; consistent with: {', '.join(self.consistent_with)}" if self.consistent_with else ""
            text += f"\n       fault: {self.fault}{also}"
        return text + (f"\n       fix: {self.fix}" if self.fix and self.status != "pass" else "")


class Diagnosis(list):
    """The verdicts, in the order the checks ran; `seconds`: what each check cost."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seconds: dict[str, float] = {}

    @property
    def failed(self) -> bool:
        return any(v.status in ("fail", "error") for v in self)

    def faults(self) -> list[str]:
        """The fault families the verdicts name, most certain first: those of failures, then of warnings
        (each once, in the order the checks ran)."""
        named = [v.fault for s in ("fail", "warn") for v in self if v.status == s and v.fault]
        return list(dict.fromkeys(named))

    def by_id(self, id: str) -> list[Verdict]:
        return [v for v in self if v.id == id]

    def to_dict(self) -> list[dict[str, Any]]:
        return [v.to_dict() for v in self]

    def table(self) -> str:
        return "\n".join(v.line() for v in self)

    def counts_line(self) -> str:
        """How many verdicts have each status, e.g. '5 pass, 1 warn, 0 fail, 0 skipped'."""
        counts = {s: sum(v.status == s for v in self) for s in STATUSES}
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n or s != "error")  # errors named when any

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:  # Jupyter: the verdicts as a table (report/notebook.py)
        from ..report.notebook import diagnosis_html

        return diagnosis_html(self)
