"""The data audit (D1-D5, D8, D15, leakage) and the cleaned copy it advises (D16): Karpathy's "become one
with the data", run before training (`nnrecipe audit`, `nnrecipe clean`, and first thing in `train`)."""

from .clean import clean
from .run import Audit, audit, audit_frame

__all__ = ["Audit", "audit", "audit_frame", "clean"]
