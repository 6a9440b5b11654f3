"""Write scikit-learn's bundled breast cancer data (Wisconsin diagnostic, 569 rows, 30 features; shipped
inside scikit-learn, so no download) to a CSV with readable class names, for `make demo`."""

import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo/breast_cancer.csv")
out.parent.mkdir(parents=True, exist_ok=True)
frame = load_breast_cancer(as_frame=True).frame
frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
frame.to_csv(out, index=False)
print(f"wrote {out}: {len(frame)} rows, {frame.shape[1] - 1} features, target 'diagnosis'")
