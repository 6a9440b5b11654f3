"""`nnrecipe tune` and `nnrecipe ablate` through the command line."""

from __future__ import annotations

import json
from pathlib import Path


def test_tune_and_ablate_from_the_command_line(cli, tmp_path):
    from nnrecipe.testing import small_table

    small_table(200).to_csv(tmp_path / "s.csv", index=False)
    (tmp_path / "space.yaml").write_text("model:\n  layers: 1\n  units: {int: [8, 32], step: 8}\n"
                                         "train:\n  lr: {loguniform: [1.0e-3, 3.0e-2]}\n")
    code, out, err = cli("tune", tmp_path / "s.csv", "--target", "y", "--trials", "2", "--space",
                         tmp_path / "space.yaml", "--epochs", "3", "--device", "cpu", "--out", tmp_path / "studies")
    assert code == 0 and out.splitlines()[0] == "study s-y: 2 complete"
    refit = Path(out.splitlines()[-1])
    assert (refit / "model.safetensors").is_file()
    code, out, err = cli("ablate", refit, "--vary", "lr=1e-2")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["setting", "value", "runs"]
    # the base was retrained on train+validation (R2): its variant is retrained the same way
    (variant,) = [p for p in Path(out.splitlines()[-1]).iterdir() if (p / "config.json").is_file()]
    config = json.loads((variant / "config.json").read_text())
    assert config["refit"]["epochs"] == json.loads((refit / "config.json").read_text())["refit"]["epochs"]
    assert config["train"]["lr"] == 1e-2
    results = json.loads((variant / "results.json").read_text())
    assert results["rows"]["val"] == 0 and results["epochs_run"] == config["refit"]["epochs"]
    code, out, err = cli("ablate", refit, "--vary", "lrr=1")
    assert code == 2 and err.startswith("nnrecipe: error: --vary lrr: not a setting that can be varied (did you mean 'lr'?)")
    for command in ("tune", "ablate"):
        assert cli(command, "--help")[0] == 0
