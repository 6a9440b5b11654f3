"""Issue 16 in the library: statistics of values near the float64 limits, numbers written with separators
and signs, column-name suggestions that ignore case, and user text cut to a readable length in plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnrecipe.data.load import header_is_data, written_numbers
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
    df = pd.DataFrame({
        "price": ["1,234", "12", None, "-2,000,000.5"],
        "rate": ["12%", "3.5 %", "-1%", ""],
        "cost": ["$3.50", "-$1,200", "4 \u20ac", "7"],
        "text": ["a, b", "1,234", "x", "y"],  # not every cell a number: text
        "codes": ["1,5", "2,25", "3", "4"],  # a decimal comma, not a thousands separator: left to the schema
        "plain": ["1", "2", "3", "x"],
    })
    found = written_numbers(df)
    assert [(c, what) for c, what, _, _ in found] == [("price", "thousands separators"), ("rate", "a percent sign"),
                                                      ("cost", "a currency sign")]
    assert df["price"].tolist()[:2] == [1234.0, 12.0] and np.isnan(df["price"][2]) and df["price"][3] == -2000000.5
    assert df["rate"].tolist()[:3] == [12.0, 3.5, -1.0] and np.isnan(df["rate"][3])
    assert df["cost"].tolist() == [3.5, -1200.0, 4.0, 7.0]
    assert df["text"].tolist() == ["a, b", "1,234", "x", "y"] and df["codes"].tolist()[0] == "1,5"


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
