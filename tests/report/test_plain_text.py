"""User text in figures is drawn as written: matplotlib reads text between two '$' as TeX math, so a class
named '$ $' stopped `nnrecipe train` with a parse error in the audit's plot, and '$x_1$' was drawn as x
with a subscript."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from nnrecipe.config import TrainConfig
from nnrecipe.recipes import train_table
from nnrecipe.report import plots


def test_labels_and_columns_with_dollars_train_and_report(tmp_path):
    g = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({"$x_1$": g.normal(size=n), "a$b": g.normal(size=n)})
    frame["target"] = np.array(["cost^$", "$ $", "none"])[(frame["$x_1$"] > 0).astype(int) + (frame["a$b"] > 0.5)]
    run = train_table(frame, "target", out=tmp_path, train_config=TrainConfig(epochs=2, seed=0))
    assert (run.run_dir / "label_distribution.png").stat().st_size > 0
    html = (run.run_dir / "report.html").read_text()
    assert "$ $" in html and "cost^$" in html


def test_every_figure_of_odd_dollar_text_is_drawn():
    classes = ["$ $", "$a^$", "$5 to $10^{", "plain"]
    assert plots.confusion(np.eye(4, dtype=np.int64) * 3, classes).startswith("data:image/png;base64,")
    assert plots.label_errors({c: 0.1 for c in classes}).startswith("data:image/png;base64,")
    assert plots.image_grid(torch.zeros(2, 1, 8, 8).numpy(), ["$ $", "$a^$"], "$ title").startswith(b"\x89PNG")
    rows = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1}, {"epoch": 2, "train_loss": 0.9, "val_loss": 1.0}]
    assert plots.overlay({"$run$": rows, "a$b": rows}, ["loss"]).startswith("data:image/png;base64,")
