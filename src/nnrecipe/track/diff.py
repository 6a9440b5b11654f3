"""R3: one variable at a time. Configs are flattened to dotted keys ('train.lr') and compared; the keys
that say when and why a run was made, not how it trains, are left out of the comparison.

Karpathy's recipe: change one thing at a time and compare; `single_change` names that one thing
when two runs differ in exactly one setting, so a comparison can say "lr" instead of showing a wall of
keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Keys that differ between any two runs without changing what is trained: when the run was made and why.
IGNORED = frozenset({"created", "note"})
MISSING = "(absent)"  # a key one run has and another lacks (an older config, another task's options)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 0.1}} -> {'train.lr': 0.1}; lists stay values (hidden widths are one setting)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_diff(configs: Sequence[Mapping[str, Any]], ignore: frozenset[str] = IGNORED) -> dict[str, list[Any]]:
    """The settings that differ between the configs, {key: [value in each config]}, in key order of the
    first config; a key a config lacks shows as MISSING. Floats equal to 1e-12 relative count as equal
    (a rate written back from JSON)."""
    flats = [flatten(c) for c in configs]
    keys: dict[str, None] = {}
    for flat in flats:
        keys.update(dict.fromkeys(flat))
    out: dict[str, list[Any]] = {}
    for key in keys:
        if key in ignore:
            continue
        values = [flat.get(key, MISSING) for flat in flats]
        if any(not _same(values[0], v) for v in values[1:]):
            out[key] = values
    return out


def single_change(diff: Mapping[str, list[Any]]) -> str | None:
    """The one setting that changed (R3), or None when none or several did."""
    return next(iter(diff)) if len(diff) == 1 else None


def short_key(key: str, keys: Sequence[str]) -> str:
    """'train.lr' -> 'lr' when no other key ends in 'lr': the name a user types."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf if sum(k.rsplit(".", 1)[-1] == leaf for k in keys) == 1 else key


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b
