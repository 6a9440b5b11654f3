"""`nnrecipe audit` on the command line, and the audit inside `train` (audit.json in the run folder,
--strict stopping on a failed finding)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnrecipe.testing import breast_cancer_csv

from .tables import healthy


@pytest.fixture(scope="module")
def bc_csv(tmp_path_factory):
    return breast_cancer_csv(tmp_path_factory.mktemp("audit") / "bc.csv")


def test_audit_prints_one_screen_and_exits_zero_on_a_clean_table(cli, bc_csv, tmp_path):
    code, out, err = cli("audit", bc_csv, "--target", "diagnosis", "--json", tmp_path / "a.json",
                         "--out", tmp_path / "audit")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"audit of {bc_csv}: 569 rows, 31 columns, target 'diagnosis' (binary)"
    assert lines[-3] == "12 pass, 0 warn, 0 fail, 0 skipped" and len(lines) <= 25
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["version"] == 1 and len(doc["findings"]) == 12 and doc["rows"] == 569
    assert set(doc["findings"][0]) == {"id", "name", "status", "summary", "evidence", "fix", "source", "fault", "consistent_with"}
    assert (tmp_path / "audit" / "audit.json").is_file()
    assert (tmp_path / "audit" / "label_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_audit_exits_one_when_a_finding_fails(cli, tmp_path):
    df = healthy()
    df.loc[7, "b"] = np.inf
    df.to_csv(tmp_path / "t.csv", index=False)
    code, out, _ = cli("audit", tmp_path / "t.csv", "--target", "y")
    assert code == 1
    assert "[FAIL] D3 corrupted rows: 1 of 400 rows are corrupted: 1 infinite cells in 'b'; first: line 9 " in out
    assert out.splitlines()[-1] == "11 pass, 0 warn, 1 fail, 0 skipped"


def test_audit_bad_input_exits_two_with_the_whole_message(cli, bc_csv, tmp_path):
    code, out, err = cli("audit", bc_csv, "--target", "diagnosys")
    assert code == 2 and out == ""
    assert err.startswith(f"nnrecipe: error: target column 'diagnosys' is not in file '{bc_csv}' (did you mean "
                          "'diagnosis'?); its columns are: mean radius, ")
    code, _, err = cli("audit", bc_csv, "--target", "diagnosis", "--test", tmp_path / "missing.csv")
    assert code == 2 and err == f"nnrecipe: error: file '{tmp_path / 'missing.csv'}' does not exist; check the path\n"


@pytest.mark.parametrize("command", ["audit", "clean"])
def test_help_works(cli, command):
    code, out, _ = cli(command, "--help")
    assert code == 0 and "--target" in out


def test_train_stores_the_audit_and_strict_stops_on_a_failed_finding(cli, tmp_path):
    df = healthy()
    df["leak"] = df["y"].map({"cat": 0, "dog": 1, "eel": 2}) + np.random.default_rng(3).normal(0, 0.1, len(df))
    df.to_csv(tmp_path / "leak.csv", index=False)
    code, out, err = cli("train", tmp_path / "leak.csv", "--target", "y", "--epochs", "1", "--out", tmp_path / "runs")
    assert code == 0, err  # the run completed; its failed finding is printed on top (issue 19)
    run_dir = tmp_path / "runs" / out.splitlines()[-1].split("/")[-1]
    doc = json.loads((run_dir / "audit.json").read_text())
    [leak] = [f for f in doc["findings"] if f["name"] == "leaked target"]
    assert leak["status"] == "fail" and leak["evidence"]["best"]["name"] == "leak"
    assert "data_checks" not in json.dumps(json.loads((run_dir / "checks.json").read_text()))
    assert "\n[FAIL] leakage leaked target: column 'leak' alone predicts the target" in out  # the screen
    assert "  [FAIL] leakage leaked target: column 'leak' alone predicts the target" in \
        (run_dir / "summary.txt").read_text()
    code, _, err = cli("train", tmp_path / "leak.csv", "--target", "y", "--strict", "--out", tmp_path / "strict")
    assert code == 1
    assert err.splitlines()[-1].startswith("nnrecipe: training stopped: a check failed and --strict stops before "
                                           "training: leakage leaked target: column 'leak' alone predicts")
    assert not (tmp_path / "strict").exists()


def test_audit_json_that_is_a_folder_is_named_with_its_own_flag(cli, bc_csv, tmp_path):
    code, out, err = cli("audit", bc_csv, "--target", "diagnosis", "--json", tmp_path)
    assert code != 0 and f"--json {tmp_path} is a folder; give a file name, such as {tmp_path / 'audit.json'}" in err
