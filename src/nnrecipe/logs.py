"""The library's logger, and a way to hush it for a while."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger("nnrecipe")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The nnrecipe logger at WARNING or above for the block, then back where it was: where the verdicts
    are printed as the output (`nnrecipe doctor`, `nnrecipe audit`), or a study logs one line per trial
    while every trial's run folder keeps its full record."""
    level = log.level
    log.setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    try:
        yield
    finally:
        log.setLevel(level)
