"""R3, R7: two runs that differ only in the learning rate; the parent's journal names the change, and the
comparison page overlays their curves and names the learning rate as the single change."""

from __future__ import annotations

import json

import torch

from nnrecipe import TrainConfig, train_table
from nnrecipe.report import write_compare
from nnrecipe.testing import small_table

from .conftest import integrated_run


def test_compare_names_the_learning_rate_as_the_single_change(tmp_path, page, check_images):
    torch.set_num_threads(1)
    df = small_table(120)
    first = train_table(df, "y", out=tmp_path / "runs", train_config=TrainConfig(seed=0, epochs=3, lr=1e-3)).run_dir
    second = integrated_run(tmp_path / "runs", df, parent=first, epochs=3, lr=3e-3, note="lr x3")
    journal = json.loads((second / "journal.json").read_text())
    assert journal["parent"]["run"] == first.name
    assert journal["parent"]["changed"] == {"train.lr": [1e-3, 3e-3]}  # R3, recorded when the run starts

    out = write_compare([first, second], tmp_path / "compare.html")
    p = page(out)
    assert p.sections == ["change", "runs", "curves", "config"]
    check_images(p, at_least=1)
    changed = [a for t, a in p.tags if t == "tr" and a.get("class") == "changed"]
    assert len(changed) == 1
    text = "".join(p.text)
    assert "One variable changed: lr (train.lr): a controlled experiment." in text
    config = text[text.index("Settings that differ"):]
    assert "train.lr" in config and "0.001" in config and "0.003" in config
    assert "train.optimizer" not in config
