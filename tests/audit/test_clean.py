"""D16: `nnrecipe clean` and `nnrecipe.clean`: the cleaned copy, the log of removed rows, each rule
switchable, and the input never modified."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnrecipe import ConfigError, clean

from .tables import healthy


@pytest.fixture
def dirty(tmp_path):
    """400 healthy rows, then 10 exact copies (rows 400-409), 5 copies under another label (410-414), an
    empty target (row 3) and an infinite cell (row 7)."""
    df = healthy()
    copies = df.iloc[20:25].copy()
    copies["y"] = np.where(copies["y"] == "cat", "dog", "cat")
    df = pd.concat([df, df.iloc[:10], copies], ignore_index=True)
    df.loc[3, "y"] = None
    df.loc[7, "b"] = np.inf
    path = tmp_path / "dirty.csv"
    df.to_csv(path, index=False)
    return path


def test_clean_removes_each_rule_and_logs_every_row(dirty, tmp_path):
    before = dirty.read_bytes()
    done = clean(dirty, "y", tmp_path / "clean.csv")
    assert dirty.read_bytes() == before  # the input is only read
    log = pd.read_csv(tmp_path / "clean.removed.csv")
    assert list(log.columns) == ["row", "where", "rule", "detail"]
    by_rule = log.groupby("rule")["row"].apply(list).to_dict()
    assert by_rule["corrupted"] == [3, 7]
    # the first copy of a duplicate stays, the later ones go; rows 3 and 7 were damaged after copying, so
    # 403 and 407 repeat nothing
    assert by_rule["duplicates"] == [400, 401, 402, 404, 405, 406, 408, 409]
    assert by_rule["conflicts"] == [20, 21, 22, 23, 24, 410, 411, 412, 413, 414]
    assert log.loc[log["row"] == 7, "detail"].item() == "column 'b': inf"
    assert log.loc[log["row"] == 3, "where"].item() == "line 5"
    out = pd.read_csv(tmp_path / "clean.csv")
    assert len(out) == done.kept == 415 - 20
    assert not out.duplicated().any() and out["y"].notna().all()


def test_each_rule_can_be_switched(dirty, tmp_path):
    done = clean(dirty, "y", tmp_path / "c.parquet", log_file=tmp_path / "log.csv", duplicates=False,
                 conflicts=False)
    assert set(done.removed["rule"]) == {"corrupted"} and done.kept == 413
    assert len(pd.read_parquet(tmp_path / "c.parquet")) == 413
    done = clean(dirty, "y", tmp_path / "c.csv", corrupted=False, duplicates=False, conflicts=False,
                 suspicious=True)
    assert set(done.removed["rule"]) == {"suspicious"}
    assert sorted(done.removed["row"]) == sorted(done.audit.rows["suspicious"])


def test_clean_refuses_to_write_over_its_input(dirty):
    before = dirty.read_bytes()
    with pytest.raises(ConfigError) as e:
        clean(dirty, "y", dirty)
    assert str(e.value) == (f"--out {dirty} is the input file; clean never overwrites its input: write the cleaned "
                            "copy to another file")
    assert dirty.read_bytes() == before


def test_clean_cli_prints_counts_and_exits_zero(cli, dirty, tmp_path):
    code, out, err = cli("clean", dirty, "--target", "y", "--out", tmp_path / "clean.csv", "--keep-conflicts")
    assert code == 0, err
    assert out.splitlines() == ["kept 405 of 415 rows; removed 10 (8 duplicates, 2 corrupted)",
                                f"cleaned copy: {tmp_path / 'clean.csv'}", f"removed rows: {tmp_path / 'clean.removed.csv'}"]


def test_clean_cli_refuses_its_input_as_out_with_exit_two(cli, dirty):
    code, out, err = cli("clean", dirty, "--target", "y", "--out", dirty)
    assert code == 2 and out == ""
    assert err == (f"nnrecipe: error: --out {dirty} is the input file; clean never overwrites its input: write the "
                   "cleaned copy to another file\n")
    code, _, err = cli("clean", dirty, "--target", "y", "--out", dirty.with_suffix(".txt"))
    assert code == 2 and err == (f"nnrecipe: error: --out {dirty.with_suffix('.txt')}: write the cleaned copy as .csv "
                                 "or .parquet (the extension decides)\n")


def test_clean_names_the_log_flag_and_refuses_one_file_for_both(dirty, tmp_path):
    with pytest.raises(ConfigError) as e:
        clean(dirty, "y", tmp_path / "c.csv", log_file=tmp_path / "nowhere" / "log.csv")
    assert str(e.value) == (f"--log {tmp_path / 'nowhere' / 'log.csv'}: folder '{tmp_path / 'nowhere'}' does not "
                            "exist; create it, or write elsewhere")
    with pytest.raises(ConfigError) as e:
        clean(dirty, "y", tmp_path / "c.csv", log_file=tmp_path / "c.csv")
    assert str(e.value) == f"--log {tmp_path / 'c.csv'} is the cleaned copy's file too; give the log another name"
