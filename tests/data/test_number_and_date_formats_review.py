"""Number and date formats of issue 18's later review, read as people write them: a date column with a stray
cell stays a date column (it was dropped as an ID), times in several zones train (pandas raised), dots
grouping thousands in a ';' file read as thousands (42.532 was read as 42.532), a typeset minus and
accounting parentheses read as negatives, and a unit in every cell is refused with the fix (it became 300
categories). Each was read wrong, or raised, without a word."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnrecipe.config import TrainConfig
from nnrecipe.data.load import read_table
from nnrecipe.data.transforms import to_numbers
from nnrecipe.errors import DataError
from nnrecipe.recipes import train_table
from nnrecipe.testing import assert_bad_input, small_table

QUICK = {"checks": (), "report": False, "audit": False, "train_config": TrainConfig(epochs=1)}


def kinds(run_dir: Path) -> dict[str, str]:
    return json.loads((run_dir / "schema.json").read_text())["kinds"]


def semicolon_file(path: Path, cells: list[str]) -> Path:
    """A ';' file: column 'a' cycles through `cells`, beside a small whole number and a label."""
    rows = [f"{cells[i % len(cells)]};{i % 7};{'yes' if i % 2 else 'no'}" for i in range(120)]
    path.write_text("a;b;y\n" + "\n".join(rows) + "\n")
    return path


# ---------------------------------------------------------------- dates


def test_a_date_column_with_one_stray_cell_is_read_as_dates_and_the_cell_named(cli, tmp_path):
    frame = small_table(n=300)
    frame.insert(0, "when", pd.date_range("2020-01-01", periods=300, freq="D").strftime("%Y-%m-%d"))
    frame.loc[17, "when"] = "unknown"
    data = tmp_path / "visits.csv"
    frame.to_csv(data, index=False)
    code, out, err = cli("audit", data, "--target", "y")
    assert code in (0, 1), err
    assert err.splitlines()[0] == (f"file '{data}': column 'when' holds dates; 1 of 300 sampled cells are no date "
                                   "('unknown'): read as empty")
    assert "[PASS] D3 constant and ID-like columns: no constant or ID-like column" in out.splitlines()


def test_a_date_column_with_one_stray_cell_trains_as_a_datetime_column(tmp_path, caplog):
    frame = small_table(n=300)
    frame.insert(0, "when", pd.date_range("2020-01-01", periods=300, freq="D").strftime("%Y-%m-%d"))
    frame.loc[250, "when"] = "unknown"
    frame.to_csv(tmp_path / "visits.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        run = train_table(tmp_path / "visits.csv", "y", out=tmp_path / "runs", **QUICK)
    assert kinds(run.run_dir)["when"] == "datetime"
    assert any("column 'when' holds dates; 1 of 300 sampled cells are no date ('unknown'): read as empty" in m
               for m in caplog.messages), caplog.messages


def test_times_with_mixed_zone_offsets_in_one_column_train(tmp_path):
    frame = small_table(n=200)
    hours = pd.date_range("2020-01-01 01:00", periods=200, freq="h").strftime("%Y-%m-%dT%H:%M:%S")
    frame.insert(0, "at", [h + ("Z" if i % 2 else "+10:00") for i, h in enumerate(hours)])
    frame.to_csv(tmp_path / "events.csv", index=False)
    run = train_table(tmp_path / "events.csv", "y", out=tmp_path / "runs", **QUICK)  # raised 'Mixed timezones'
    assert kinds(run.run_dir)["at"] == "datetime"


# ---------------------------------------------------------------- numbers in ';' files


def test_dots_grouping_thousands_in_a_semicolon_file_read_as_thousands_with_a_warning(tmp_path, caplog):
    data = semicolon_file(tmp_path / "whole.csv", ["42.532", "989", "1.207", "12"])
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        frame = read_table(data)
    assert frame["a"].head(4).tolist() == [42532, 989, 1207, 12]
    assert [m for m in caplog.messages if "thousands" in m] == [
        f"file '{data}' writes numbers with dots between groups of thousands and a decimal comma: read "
        "'1.315,4' as 1315.4 and '40.577' as 40577"]


def test_a_grouping_dot_before_a_decimal_comma_reads_the_whole_number(tmp_path, caplog):
    data = semicolon_file(tmp_path / "amounts.csv", ["24.499,2", "3,5", "1.207,75"])
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        frame = read_table(data)
    assert frame["a"].head(3).tolist() == pytest.approx([24499.2, 3.5, 1207.75])
    assert any("dots between groups of thousands and a decimal comma" in m for m in caplog.messages)


def test_dot_decimals_in_a_semicolon_file_stay_decimals_beside_grouped_thousands(tmp_path, caplog):
    # the guard: '0.512' is never written by grouping, so the dots of this file are decimal points ...
    decimals = semicolon_file(tmp_path / "decimals.csv", ["0.512", "1.25", "3"])
    with caplog.at_level(logging.WARNING, logger="nnrecipe"):
        assert read_table(decimals)["a"].head(3).tolist() == pytest.approx([0.512, 1.25, 3.0])
    assert not any("thousands" in m for m in caplog.messages)
    # ... while the same reader takes '40.577' beside '989' as forty thousand (it was read as 40.577)
    grouped = semicolon_file(tmp_path / "grouped.csv", ["40.577", "989"])
    assert read_table(grouped)["a"].head(2).tolist() == [40577, 989]


# ---------------------------------------------------------------- signs and units


def test_to_numbers_reads_a_typeset_minus_and_accounting_parentheses_as_negatives():
    cells = pd.Series(["\u22120.512", "(0.512)", "($1,234.50)", "(-0.70)", "(12", "5"])
    got = to_numbers(cells)
    np.testing.assert_array_equal(got[:3], [-0.512, -0.512, -1234.5])
    assert np.isnan(got[3]) and np.isnan(got[4])  # a sign inside parentheses, an unclosed one: no number
    assert got[5] == 5.0


def test_a_unit_in_every_cell_is_refused_naming_the_column_and_the_fix(cli, tmp_path):
    frame = small_table(n=200)
    frame.insert(0, "weight", [f"{60 + (i * 7) % 30}.{i % 10} kg" for i in range(200)])
    data = tmp_path / "people.csv"
    frame.to_csv(data, index=False)
    message = (f"file '{data}': column 'weight' holds numbers with a unit in every cell ('60.0 kg'), which would be "
               "read as categories, one per distinct value; write the numbers alone (the unit in the column's name), or pass "
               "--categorical weight to keep them as categories")
    assert_bad_input(cli("audit", data, "--target", "y"), message)
    with pytest.raises(DataError, match="holds numbers with a unit in every cell") as e:
        train_table(data, "y", out=tmp_path / "runs", **QUICK)
    assert "'weight'" in str(e.value) and "--categorical weight" in str(e.value)
    assert not (tmp_path / "runs").exists()
