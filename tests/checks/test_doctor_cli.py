"""`nnrecipe doctor` and `nnrecipe train --strict`: the doctor on the recipe's own model from the command line."""

from __future__ import annotations

import json
import re

import pytest

from nnrecipe.testing import breast_cancer_csv


@pytest.fixture(scope="module")
def bc_csv(tmp_path_factory):
    return breast_cancer_csv(tmp_path_factory.mktemp("doctor") / "bc.csv")


def test_doctor_prints_a_verdict_per_check_and_exits_zero_on_a_healthy_table(cli, bc_csv):
    code, out, err = cli("doctor", bc_csv, "--target", "diagnosis")
    assert code == 0, err
    lines = out.splitlines()
    ids = [line.split("]")[1].split()[0] for line in lines if line.startswith("[")]
    assert {"C1", "C2"} <= set(ids)
    assert not any(line.startswith(("[FAIL]", "[WARN]")) for line in lines), out
    passed = sum(line.startswith("[PASS]") for line in lines)
    assert re.fullmatch(rf"{passed} pass, 0 warn, 0 fail, {len(ids) - passed} skipped", lines[-1])


def test_doctor_exits_one_and_names_the_fix_when_a_check_fails(cli, bc_csv):
    code, out, _ = cli("doctor", bc_csv, "--target", "diagnosis", "--lr", "0")
    assert code == 1
    [c1] = [line for line in out.splitlines() if line.startswith("[FAIL] C1 ")]
    assert "(the learning rate is 0)" in c1
    assert "fault: lr-too-low" in out  # the failure names the fault, and the fix is that fault's
    assert "fix: set a learning rate > 0" in out
    assert re.fullmatch(r"\d+ pass, \d+ warn, [1-9]\d* fail, \d+ skipped", out.splitlines()[-1])


def test_train_strict_stops_before_training_on_a_failed_check(cli, bc_csv, tmp_path):
    code, out, err = cli("train", bc_csv, "--target", "diagnosis", "--lr", "0", "--strict", "--out", tmp_path / "runs")
    assert code == 1
    assert err.splitlines()[-1].startswith("nnrecipe: training stopped: a check failed and --strict stops before "
                                           "training: C1 overfit one batch: the loss on 16 rows only went from")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing was trained


def test_train_stores_every_verdict_of_the_doctor(cli, bc_csv, tmp_path):
    code, out, err = cli("train", bc_csv, "--target", "diagnosis", "--epochs", "2", "--out", tmp_path / "runs")
    assert code == 0, err
    run_dir = tmp_path / "runs" / out.splitlines()[-1].split("/")[-1]
    checks = json.loads((run_dir / "checks.json").read_text())
    assert {"C1", "C2"} <= {c["id"] for c in checks}
    assert all({"id", "name", "status", "summary", "evidence", "fix", "source"} <= set(c) for c in checks)
    # 2 epochs: T16 says to train longer, and the network trails the linear model on the test rows (C4)
    after = ("T16", "simple baselines (test)")
    assert all(c["status"] in ("pass", "skipped") for c in checks if c["id"] not in after and c["name"] not in after), \
        checks
    assert [c["status"] for c in checks if c["id"] == "T16"] == ["warn"]
