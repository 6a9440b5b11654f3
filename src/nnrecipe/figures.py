"""What every figure nnrecipe draws shares (the report's, the audit's, tune's and prune's): user text is drawn
as written. matplotlib reads text between two '$' as TeX math: a class named '$5 to $10^{' was drawn in
italics and a label '$ $' stopped `nnrecipe train` with a parse error of the audit's plot. A leaf module:
matplotlib is imported when a figure is made."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def plain_text(fn: F) -> F:
    """Run `fn` (which makes and saves a figure) with matplotlib's math text off: its texts, the tick labels
    made when the figure is drawn included, show '$' as a dollar sign."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
