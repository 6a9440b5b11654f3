"""Each finding of the data audit on its planted fault (status, evidence, fix), and nothing warning on
clean tables. Tables are tiny and seeded (tables.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnrecipe import DataConfig, audit

from .tables import flipped, healthy, imbalanced

CLEAN_HINT = "nnrecipe.clean(frame, 'y', 'clean.csv')"  # the fix for a DataFrame: the Python call


def finding(result, name):
    [v] = [v for v in result if v.name == name]
    return v


def loud(result):
    return [v.line() for v in result if v.status in ("warn", "fail")]


# ---------------------------------------------------------------- clean tables: nothing warns
def _sklearn(name):
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(as_frame=True).frame


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "digits", "diabetes"])
def test_nothing_warns_on_clean_sklearn_tables(name):
    result = audit(_sklearn(name), "target")
    assert not loud(result), result.table()
    assert [v.id for v in result] == ["D1", "D2", "D3", "D3", "D3", "D8", "D4", "D4", "leakage", "leakage", "D5",
                                      "D15"]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_nothing_warns_on_small_table(task):
    from nnrecipe.testing import small_table

    assert not loud(audit(small_table(task=task), "y"))


def test_nothing_warns_on_the_healthy_twin():
    result = audit(healthy(), "y")
    assert not loud(result)
    assert finding(result, "clusters").evidence["purity"] > 0.9  # three separable blobs: one per cluster


# ---------------------------------------------------------------- D1, D2
def test_one_to_fifty_imbalance_warns_with_the_long_tail():
    v = finding(audit(imbalanced(), "y"), "label distribution")
    assert v.status == "warn"
    assert v.summary == ("2 classes: 'common' 1000, 'rare' 20; the largest outnumbers the smallest 50 to 1; "
                         "long tail: 'rare' (20 rows)")
    assert v.evidence["imbalance_ratio"] == 50 and v.evidence["counts"] == {"common": 1000, "rare": 20}
    assert v.fix == ("judge the model by per-class recall on the test rows (train's summary.txt shows it, and "
                     "report.html beside this finding), not by accuracy alone (predicting the largest class alone scores 98.0%); "
                     "when every class counts alike, train with --metric balanced_accuracy (or macro_f1), which weights "
                     "the classes by inverse frequency (--balance auto), and collect more rows of the tail classes")


def test_text_lengths_suggest_a_maximum_covering_95_percent():
    df = healthy()
    # 1-20 words, evenly, each row its own text (a few repeated values would be categories: answer choices)
    df["note"] = [" ".join([f"w{i}"] + ["word"] * (i % 20)) for i in range(len(df))]
    df["code"] = [f"k{i % 7}" for i in range(len(df))]  # a categorical column of strings: lengths in characters
    found = audit(df, "y", data_config=DataConfig(categorical=("note",)))  # categories: words and characters
    v = finding(found, "text lengths")
    assert v.status == "pass"
    note = v.evidence["columns"]["note"]
    assert note["suggested_max_words"] == 19 and note["words"]["max"] == 20
    assert "'note' median 10 words, max length 19 words" in v.summary
    # read as text (the rule: 3 words or more), the length is in the tokens the model reads
    tokens = finding(audit(df, "y"), "text lengths in tokens")
    assert tokens.status == "pass" and tokens.evidence["columns"]["note"]["max"] == 20
    assert tokens.evidence["columns"]["note"]["suggested_max_length"] == 24  # the 95th percentile 19, up to 8s


# ---------------------------------------------------------------- D3
def test_duplicates_warn_with_their_rows_and_leak_into_the_splits():
    df = healthy()
    result = audit(pd.concat([df, df.iloc[:20]], ignore_index=True), "y")
    v = finding(result, "duplicate rows")
    assert v.status == "warn" and v.evidence["duplicate_rows"] == 20
    assert v.evidence["first_rows"] == list(range(400, 410))
    assert v.summary.startswith("20 of 420 rows (4.8%) repeat an earlier row exactly (row 400, row 401, row 402 ...)")
    assert v.fix == f"remove them: {CLEAN_HINT} (keeps each row's first copy)"
    split = finding(result, "rows shared between splits")
    assert split.status == "fail" and split.fix == f"remove the duplicate rows before splitting: {CLEAN_HINT}"
    assert sum(p["rows"] for p in split.evidence["shared"].values()) >= 10
    assert sorted(result.rows["duplicates"]) == list(range(400, 420))


def test_the_fix_names_the_users_own_file_and_target_shell_quoted(tmp_path):
    df = healthy().rename(columns={"y": "my label"})
    path = tmp_path / "my data.csv"
    pd.concat([df, df.iloc[:20]], ignore_index=True).to_csv(path, index=False)
    v = finding(audit(path, "my label"), "duplicate rows")
    clean = tmp_path / "my data.clean.csv"
    assert v.fix == (f"remove them: nnrecipe clean '{path}' --target 'my label' --out '{clean}' "
                     "(keeps each row's first copy)")


def test_nan_and_inf_cells_fail_naming_rows_and_columns():
    df = healthy()
    df.loc[[3, 50], "a"] = np.nan
    df.loc[7, "b"] = np.inf
    v = finding(audit(df, "y"), "corrupted rows")
    assert v.status == "fail"
    assert v.evidence["cells"] == {"nan": 2, "inf": 1, "unparsable": 0}
    # the rows that stop train first (Cars93's one 'rotary' cylinder count hid behind empty cells of other columns)
    assert v.evidence["columns"] == {"a": {"nan": 2}, "b": {"inf": 1}} and v.evidence["first_rows"] == [7, 3, 50]
    assert v.summary == ("3 of 400 rows are corrupted: 1 infinite cells in 'b', 2 empty (NaN) cells in 'a'; first: "
                         "row 7 (column 'b': inf), row 3 (column 'a': nan), row 50 (column 'a': nan)")
    assert v.fix == ("fix or empty the unparsable and infinite cells (train stops on them), or drop the rows: "
                     + CLEAN_HINT)


def test_empty_cells_and_missing_targets_only_warn():
    df = healthy()
    df.loc[[3, 50], "a"] = np.nan
    df.loc[9, "y"] = None
    result = audit(df, "y")
    v = finding(result, "corrupted rows")
    assert v.status == "warn" and v.evidence["missing_target"] == 1 and v.evidence["rows_affected"] == 3
    assert v.fix.startswith("train leaves out rows without a target and fills empty cells")
    assert result.rows["corrupted"] == {3: "column 'a': nan", 9: "no target", 50: "column 'a': nan"}


def test_unparsable_cells_in_a_csv_fail_with_their_lines(tmp_path):
    df = healthy().astype({"c": object})
    df.loc[[5, 6], "c"] = "n/a?"
    df.to_csv(tmp_path / "t.csv", index=False)
    result = audit(tmp_path / "t.csv", "y")
    v = finding(result, "corrupted rows")
    assert v.status == "fail" and v.evidence["cells"]["unparsable"] == 2
    assert "first: line 7 (column 'c': not a number: 'n/a?'), line 8" in v.summary
    assert not [f for f in result if f.status == "skipped"]  # the other findings ran with those cells emptied


def test_a_constant_column_is_reported_and_passes():
    df = healthy()
    df["const"] = 7.0
    v = finding(audit(df, "y"), "constant and ID-like columns")
    assert v.status == "pass" and v.evidence["constant"] == ["const"] and v.evidence["id_like"] == []
    assert v.summary == "train leaves out 1 column; constant: 'const'"
    assert v.fix == "nothing is needed (train leaves constant columns out); to silence the notice, pass --drop const"


def test_an_id_column_warns():
    df = healthy()
    df["order_id"] = np.arange(len(df)) + 1000
    v = finding(audit(df, "y"), "constant and ID-like columns")
    assert v.status == "warn" and v.evidence["id_like"] == ["order_id"]
    assert v.fix == ("check that 'order_id' is a row identifier: train leaves it out; if it is a real feature, pass "
                     "--numeric order_id or --categorical order_id; to say it is an ID, pass --drop order_id")


# ---------------------------------------------------------------- D4
def test_conflicting_labels_fail_with_every_row():
    df = healthy()
    copies = df.iloc[:20].copy()
    copies["y"] = np.where(copies["y"] == "cat", "dog", "cat")
    result = audit(pd.concat([df, copies], ignore_index=True), "y")
    v = finding(result, "conflicting duplicates")
    assert v.status == "fail"
    assert v.evidence["conflicting_rows"] == 40 and v.evidence["conflicting_groups"] == 20
    assert v.summary.startswith("40 of 420 rows (9.5%) in 20 groups have identical inputs but different labels")
    assert v.fix == "resolve the conflicting labels (relabel, or drop the duplicates)"
    assert sorted(result.rows["conflicts"]) == [*range(20), *range(400, 420)]


def test_thirty_percent_flipped_labels_fail_and_the_flagged_rows_are_the_flipped_ones():
    df, truth = flipped(healthy(), 0.30)
    result = audit(df, "y")
    v = finding(result, "label noise")
    assert v.status == "fail" and v.evidence["noise_share"] >= 0.25
    assert v.fix.startswith("relabel or prune the suspicious rows")
    flagged = set(result.rows["suspicious"])
    assert len(flagged) == v.evidence["rows_flagged"]  # every flagged row, not only the 50 the evidence shows
    precision = len(flagged & truth) / len(flagged)
    assert precision >= 0.6, precision
    assert v.evidence["suspicious_rows"][:10] == list(result.rows["suspicious"])[:10]  # ranked alike


def test_label_noise_on_a_sample_says_so():
    v = finding(audit(healthy(), "y", noise_rows=200), "label noise")
    assert v.evidence["rows"] == 200 and v.evidence["sampled"] and v.evidence["rows_in_table"] == 400
    assert "of 200 rows (a stratified sample of 200 of 400 rows)" in v.summary


# ---------------------------------------------------------------- leakage
def test_a_column_that_is_the_target_plus_noise_fails():
    df = healthy()
    df["leak"] = df["y"].map({"cat": 0, "dog": 1, "eel": 2}) + np.random.default_rng(3).normal(0, 0.1, len(df))
    v = finding(audit(df, "y"), "leaked target")
    assert v.status == "fail" and v.evidence["best"]["name"] == "leak" and v.evidence["best"]["score"] == 1.0
    assert v.summary == "column 'leak' alone predicts the target (balanced accuracy 1.000 >= 0.99)"
    assert v.fix == "drop the column: it carries the label (computed from it, or recorded after it)"


def test_a_table_sorted_by_its_target_does_not_make_a_coin_flip_column_a_leak():
    # rows tied on a value were told apart by their neighbours in the file: sorted by the label, a random 0/1
    # column 'predicted' it (balanced accuracy 0.99, a FAIL); tied rows now vote
    rng = np.random.default_rng(0)
    df = healthy(3000)
    df = df[df["y"] != "eel"].sort_values("y", kind="stable").reset_index(drop=True)  # two classes, sorted
    df["coin"] = rng.integers(0, 2, len(df))
    v = finding(audit(df, "y"), "leaked target")
    assert v.status == "pass" and v.evidence["best"]["name"] != "coin"
    df["code"] = df["y"].map({"cat": 0, "dog": 1})  # the label as a 0/1 column: a leak in any order
    v = finding(audit(df, "y"), "leaked target")
    assert v.status == "fail" and v.evidence["best"]["name"] == "code" and v.evidence["best"]["score"] == 1.0


def test_a_regression_column_that_trends_with_the_target_is_no_leak_unless_it_stands_out():
    # quantities that grow together (as statsmodels' macrodata's consumption, income and GDP do, |r| 0.999)
    # against a copy of the target plus noise, which explains it far better than the other columns together
    g, t = np.random.default_rng(0), np.arange(200.0)
    trend = np.exp(0.01 * t) * (1 + 0.02 * np.sin(t / 7))
    macro = pd.DataFrame({"year": 1960 + t // 4, "quarter": t % 4 + 1,
                          "consumption": 0.6 * trend * (1 + 0.004 * g.normal(size=200)),
                          "investment": 0.2 * trend * (1 + 0.03 * g.normal(size=200)),
                          "income": 0.7 * trend * (1 + 0.004 * g.normal(size=200)),
                          "gdp": trend * (1 + 0.002 * g.normal(size=200))})
    v = finding(audit(macro, "gdp"), "leaked target")
    assert v.status == "pass" and v.evidence["best"]["score"] >= 0.99 and v.evidence["others_r2"] > 0.99
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True).frame
    df["leak"] = df["target"] + 0.1 * df["target"].std() * np.random.default_rng(0).normal(size=len(df))
    v = finding(audit(df, "target"), "leaked target")
    assert v.status == "fail" and v.evidence["best"]["name"] == "leak"


def test_train_test_overlap_fails_against_an_external_test_table(tmp_path):
    df = healthy()
    df.iloc[200:].to_csv(tmp_path / "test.csv", index=False)
    v = finding(audit(df.iloc[:300], "y", test=tmp_path / "test.csv"), "test table overlap")
    assert v.status == "fail" and v.evidence["shared_rows"] == 100 and v.evidence["first_rows"][:3] == [0, 1, 2]
    assert v.summary == (f"100 of 200 rows of file '{tmp_path / 'test.csv'}' (50.0%) are also in the training table: "
                         "the test score is inflated")
    assert v.fix == "remove those rows from the test table (or from the training table)"
    assert finding(audit(df.iloc[:200], "y", test=df.iloc[200:]), "test table overlap").status == "pass"


# ---------------------------------------------------------------- D8, D5, D15
def test_heavy_outliers_advise_robust_scaling():
    df = healthy()
    df.loc[0, "b"] = 1e4
    v = finding(audit(df, "y"), "feature scales")
    assert v.status == "warn" and list(v.evidence["heavy_outliers"]) == ["b"]
    assert v.fix == "pass --scaling robust (median and IQR), or check those cells: a unit or entry error?"
    assert set(v.evidence["columns"]["a"]) >= {"min", "max", "mean", "std", "outlier_share"}
    robust = finding(audit(df, "y", data_config=DataConfig(scaling="robust")), "feature scales")
    assert robust.status == "pass" and "scaled robustly" in robust.summary


def test_data_size_against_the_model():
    v = finding(audit(healthy(), "y"), "data size")
    assert v.status == "pass" and v.evidence["train_rows"] == 279 and v.evidence["parameters"] > 279
    assert "fewer training rows than parameters" in v.summary
    tiny = finding(audit(healthy(60), "y"), "data size")
    assert tiny.status == "warn" and tiny.evidence["held_out"] == {"val": 9, "test": 9}
    assert tiny.fix.startswith("collect more rows (Karpathy's recipe: 'more data is better')")


def test_clusters_report_size_and_label_mix():
    v = finding(audit(flipped(healthy(), 0.3)[0], "y"), "clusters")
    assert v.evidence["k"] == 3 and sum(c["rows"] for c in v.evidence["clusters"]) == 400
    assert all(set(c) == {"cluster", "rows", "majority", "purity", "mix"} for c in v.evidence["clusters"])
    assert v.evidence["purity"] < 0.85  # the flipped labels mix every cluster
