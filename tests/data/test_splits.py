"""--split: random, stratified, time:COL (the latest rows tested), group:COL (each group in one split); their
errors; the flag through the CLI and a --config file; the folds of a cross-validation ensemble under a
group or a time split; and the audit's two split findings on their planted fault and a healthy twin.
Tables are small and seeded."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from nnrecipe import DataConfig, audit
from nnrecipe.cli import DATA_FLAGS, _config, build_parser
from nnrecipe.config import TrainConfig, from_dict, read_config_file
from nnrecipe.data.audit.splits import name_words, rank_correlation
from nnrecipe.data.prepare import SPLITS, prepare_table
from nnrecipe.data.split import fold_indices, group_split, split_indices, time_split
from nnrecipe.errors import ConfigError, DataError
from nnrecipe.recipes import train_table
from nnrecipe.recipes.cross_fit import check_split, resolve_folds
from nnrecipe.testing import small_table

FAST = TrainConfig(epochs=2, seed=0)
QUICK = {"report": False, "checks": ()}  # end-to-end runs: the split is under test, not the doctor


def series(n: int = 400, per_day: int = 1, seed: int = 0) -> pd.DataFrame:
    """A daily time series in file order (`per_day` rows a day), its label drifting with time."""
    g = np.random.default_rng(seed)
    days = np.repeat(np.arange(n // per_day), per_day)
    x = g.normal(size=(len(days), 3))
    y = np.where(x[:, 0] + 2 * days / days.max() + g.normal(0, 0.5, len(days)) > 1, "up", "down")
    date = (pd.Timestamp("2020-01-01") + pd.to_timedelta(days, "D")).strftime("%Y-%m-%d")
    return pd.DataFrame({"date": date, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y})


def patients(n_patients: int = 80, rows_each: int = 5, seed: int = 0) -> pd.DataFrame:
    """Rows of patients (an integer ID, each `rows_each` rows), shuffled; the label follows the features."""
    g = np.random.default_rng(seed)
    pid = np.repeat(np.arange(n_patients), rows_each) + 1000
    x = g.normal(size=(len(pid), 3))
    df = pd.DataFrame({"patient_id": pid, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                       "sex": g.choice(["f", "m", "x"], len(pid)), "age": g.integers(18, 91, len(pid))})
    df["y"] = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no")
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def prepared(df, **settings):
    prep, _ = prepare_table(df, DataConfig(target="y", **settings), 0)
    return prep


def values_in(df, prep, column):
    return {s: df.loc[prep.data_rows(s), column] for s in SPLITS}


# ---------------------------------------------------------------- time
def test_time_split_tests_the_latest_rows_and_validates_between():
    df = series().sample(frac=1, random_state=3).reset_index(drop=True)  # file order says nothing
    prep = prepared(df, split="time:date")
    d = {s: pd.to_datetime(v) for s, v in values_in(df, prep, "date").items()}
    assert d["train"].max() < d["val"].min() and d["val"].max() < d["test"].min()
    assert prep.counts == {"train": 279, "val": 61, "test": 60}  # the fractions' sizes, as train_test_split's
    assert prep.schema.kinds["date"] == "datetime"  # the date stays a feature, expanded as before


def test_time_split_keeps_rows_of_one_time_in_one_split():
    df = series(400, per_day=10)  # 40 days of 10 rows: the 15% boundaries fall inside a day
    prep = prepared(df, split="time:date")
    d = values_in(df, prep, "date")
    assert d["train"].max() < d["val"].min() and d["val"].max() < d["test"].min()
    assert sum(prep.counts.values()) == 400 and min(prep.counts.values()) >= 40


def test_time_split_orders_by_numbers_and_keeps_file_order_on_ties():
    keys = np.array([5.0, 1, 1, 3, 2, 9, 7, 7, 8, 0, 4, 6])
    got = time_split(keys, 0.2, 0.2)  # 6, 3 and 3 rows; the two 7s straddle the last boundary: both go to test
    assert [keys[got[s]].tolist() for s in SPLITS] == [[1, 1, 3, 2, 0, 4], [5, 6], [9, 7, 7, 8]]
    df = pd.DataFrame({"t": [3.5, 1.25, 2.0] * 10 + np.arange(30) * 10, "x": np.arange(30) % 7,
                       "y": np.arange(30) % 2})
    prep = prepared(df, split="time:t", task="binary")
    t = values_in(df, prep, "t")
    assert t["train"].max() < t["val"].min() and t["val"].max() < t["test"].min()


def test_time_split_reads_mixed_date_formats():
    df = series(40)
    df.loc[5, "date"] = "Jan 6 2020"
    df.loc[7, "date"] = "2020/01/08 00:00"
    prep = prepared(df, split="time:date")
    assert prep.counts == {"train": 28, "val": 6, "test": 6}
    assert prep.data_rows("train") == list(range(28)) and prep.data_rows("test") == list(range(34, 40))


def test_a_far_future_placeholder_date_sorts_last():
    df = series(40)
    df.loc[3, "date"] = "9999-12-31"  # 'never', beyond pandas' nanosecond range
    prep = prepared(df, split="time:date")
    assert prep.data_rows("test")[-1] == 39 and 3 in prep.data_rows("test")


# ---------------------------------------------------------------- group
def test_group_split_keeps_each_group_in_one_split_and_drops_the_id():
    df = patients()
    prep = prepared(df, split="group:patient_id")
    g = {s: set(v) for s, v in values_in(df, prep, "patient_id").items()}
    assert not (g["train"] & g["val"]) and not (g["train"] & g["test"]) and not (g["val"] & g["test"])
    assert len(g["train"] | g["val"] | g["test"]) == 80
    assert prep.counts == {"train": 280, "val": 60, "test": 60}  # 5 rows a group: the fractions hold
    assert prep.schema.dropped["patient_id"] == ("the group column of --split (an identifier); --categorical "
                                                 "keeps it")
    assert "patient_id" in prepared(df, split="group:patient_id", categorical=("patient_id",)).schema.kinds


def test_group_split_fractions_hold_approximately_with_uneven_groups():
    g = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), g.integers(1, 30, 30))
    got = group_split(groups, 0.15, 0.15, seed=0, where="the table", split="group:g")
    shares = {s: len(got[s]) / len(groups) for s in SPLITS}
    assert abs(shares["val"] - 0.15) < 0.05 and abs(shares["test"] - 0.15) < 0.05
    assert sorted(np.concatenate(list(got.values())).tolist()) == list(range(len(groups)))
    other = group_split(groups, 0.15, 0.15, seed=1, where="the table", split="group:g")
    assert not np.array_equal(got["test"], other["test"])  # seeded: another seed, other groups


def test_group_split_with_three_groups_fills_every_split():
    groups = np.repeat([0, 1, 2], [50, 5, 5])
    got = group_split(groups, 0.15, 0.15, seed=0, where="the table", split="group:g")
    assert all(len(got[s]) for s in SPLITS)


def test_group_split_warns_when_a_class_has_no_training_row(caplog):
    df = patients(20, 5)
    df["y"] = np.where(df["patient_id"] == df["patient_id"].iloc[0], "rare", df["y"])  # one patient's class
    for seed in range(10):
        caplog.clear()
        prep, _ = prepare_table(df, DataConfig(target="y", split="group:patient_id"), seed)
        if "rare" not in set(df.loc[prep.data_rows("train"), "y"]):
            break
    else:
        pytest.fail("no seed put the one patient of class 'rare' out of training")
    assert ("--split group:patient_id: class 'rare' of target 'y' in the table has no training row, only "
            "validation or test rows: the model cannot learn it; add rows of it, or choose another split"
            ) in caplog.text


# ---------------------------------------------------------------- random, stratified, auto
def test_auto_is_the_stratified_split_of_before_and_random_the_unstratified_one():
    df = small_table(300)
    labels, classes = pd.factorize(df["y"].astype(str), sort=True)
    before = split_indices(labels, 300, 0.15, 0.15, 0, [str(c) for c in classes])
    unstratified = split_indices(None, 300, 0.15, 0.15, 0)
    for split, expected in (("auto", before), ("stratified", before), ("random", unstratified)):
        prep = prepared(df, split=split)
        assert {s: sorted(prep.data_rows(s)) for s in SPLITS} == {s: expected[s].tolist() for s in SPLITS}, split
    assert not np.array_equal(before["test"], unstratified["test"])
    shares = df.loc[prepared(df, split="stratified").data_rows("test"), "y"].value_counts(normalize=True)
    assert abs(shares["yes"] - (df["y"] == "yes").mean()) < 0.02


def test_random_is_auto_for_regression():
    df = small_table(200, task="regression")
    a, b = prepared(df), prepared(df, split="random")
    assert all(a.data_rows(s) == b.data_rows(s) for s in SPLITS)


# ---------------------------------------------------------------- errors
def test_a_missing_split_column_is_named_with_a_did_you_mean():
    with pytest.raises(DataError) as e:
        prepared(series(40), split="time:Date")
    assert str(e.value) == ("--split time:Date: column 'Date' is not in the table (did you mean 'date'?); its "
                            "columns are: date, a, b, c, y; fix the name after 'time:'")


def test_empty_cells_in_the_split_column_are_refused(tmp_path):
    df = series(40)
    df.loc[[6, 9], "date"] = ""
    file = tmp_path / "t.csv"
    df.to_csv(file, index=False)
    with pytest.raises(DataError) as e:
        prepare_table(file, DataConfig(target="y", split="time:date"), 0)
    assert str(e.value) == (f"--split time:date: column 'date' in file '{file}' has 2 empty cells (first at line 8); "
                            "a time split needs a time in every row: fill them, or leave those rows out of the file")
    df = patients(10, 5)
    df["patient_id"] = df["patient_id"].astype(object)
    df.loc[3, "patient_id"] = None
    with pytest.raises(DataError, match=r"column 'patient_id' in the table has 1 empty cell \(first at row 3\); "
                                        r"a group split needs a group in every row"):
        prepared(df, split="group:patient_id")


def test_times_that_cannot_be_read_are_refused():
    df = series(40)
    df.loc[12, "date"] = "soon"
    with pytest.raises(DataError) as e:
        prepared(df, split="time:date")
    assert str(e.value) == ("--split time:date: column 'date' in the table has 1 cell that is not a date, a time or "
                            "a finite number (first at row 12: 'soon'); fix it, or name another column after 'time:'")


def test_too_few_groups_are_refused():
    df = small_table(60)
    df["site"] = np.where(df.index < 30, "north", "south")
    with pytest.raises(DataError) as e:
        prepared(df, split="group:site")
    assert str(e.value) == ("--split group:site: column 'site' in the table holds 2 distinct values; a group split "
                            "needs at least 3 groups to fill the training, validation and test splits: name a column "
                            "with more groups, or pass --split random")


def test_stratified_on_regression_names_the_fix():
    with pytest.raises(ConfigError) as e:
        prepared(small_table(100, task="regression"), split="stratified")
    assert str(e.value) == ("--split stratified needs class labels, but target 'y' in the table is a regression "
                            "target; pass --split random (or leave --split out: auto splits at random)")


def test_a_split_on_the_target_is_refused():
    with pytest.raises(ConfigError, match=r"--split group:y names the target column 'y'"):
        prepared(small_table(60), split="group:y")


@pytest.mark.parametrize("split, message", [
    ("time", "split='time' needs a column: time:COL, such as time:date"),
    ("group:", "split='group:' names no column; give one after the colon, such as group:patient_id"),
    ("randon", "split='randon' is not allowed (did you mean 'random'?); choose one of: auto, random, stratified, "
               "time:COL, group:COL"),
    ("tme:date", "split='tme:date' is not allowed (did you mean 'time:date'?); choose one of: auto, random, "
                 "stratified, time:COL, group:COL"),
])
def test_a_bad_split_setting_names_the_choices(split, message):
    with pytest.raises(ConfigError) as e:
        DataConfig(split=split)
    assert str(e.value) == message


# ---------------------------------------------------------------- CLI and --config
def test_the_flag_reaches_the_data_config_of_every_table_command(tmp_path):
    assert "split" in DATA_FLAGS
    for command in ("train", "doctor", "audit", "clean", "tune"):
        extra = ["--out", str(tmp_path / "o.csv")] if command == "clean" else []
        args = build_parser().parse_args([command, "d.csv", "--target", "y", "--split", "time:date", *extra])
        assert _config(DataConfig, args, only=DATA_FLAGS, target="y").split == "time:date", command
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"data": {"split": "group:patient_id"}}))
    args = build_parser().parse_args(["train", "d.csv", "--target", "y", "--config", str(file)])
    cfg = _config(DataConfig, args, only=DATA_FLAGS, base=read_config_file(str(file))["data"], target="y")
    assert cfg.split == "group:patient_id"
    assert from_dict(DataConfig, {"split": "random"}).split == "random"


def test_a_bad_split_flag_exits_2_with_the_message(cli, tmp_path):
    file = tmp_path / "t.csv"
    series(40).to_csv(file, index=False)
    code, _, err = cli("train", file, "--target", "y", "--split", "group", "--out", tmp_path / "runs")
    assert code == 2 and "split='group' needs a column: group:COL, such as group:patient_id" in err
    code, _, err = cli("audit", file, "--target", "y", "--split", "time:day")
    assert code == 2 and "column 'day' is not in file" in err


def test_a_time_split_run_records_the_split(tmp_path):
    run = train_table(series(120), "y", out=tmp_path, train_config=FAST, **QUICK,
                      data_config=DataConfig(target="y", split="time:date"))
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["data"]["split"] == "time:date"
    splits = json.loads((run.run_dir / "splits.json").read_text())
    assert max(splits["train"]) < min(splits["val"]) and max(splits["val"]) < min(splits["test"])


# ---------------------------------------------------------------- T14 folds
def test_group_folds_keep_groups_whole():
    groups = np.repeat(np.arange(20), 4)
    labels = np.arange(80) % 2
    for codes in (None, labels):
        folds = fold_indices(codes, 80, 5, seed=0, groups=groups)
        assert sorted(np.concatenate(folds).tolist()) == list(range(80))
        held = [set(groups[f]) for f in folds]
        assert all(not (held[i] & held[j]) for i in range(5) for j in range(i + 1, 5))


def test_a_group_split_ensemble_holds_out_whole_groups(tmp_path, monkeypatch):
    from nnrecipe.recipes import cross_fit

    made = []

    def recorded(*args, **kwargs):
        made.append((args, kwargs, fold_indices(*args, **kwargs)))
        return made[-1][2]

    monkeypatch.setattr(cross_fit, "fold_indices", recorded)
    df = patients(40, 5)
    run = train_table(df, "y", out=tmp_path, data_config=DataConfig(target="y", split="group:patient_id"),
                      train_config=dataclasses.replace(FAST, cv_folds=3), **QUICK)
    splits = json.loads((run.run_dir / "splits.json").read_text())
    pooled = df.loc[splits["train"] + splits["val"], "patient_id"].to_numpy()
    [(_, _, folds)] = made
    held = [set(pooled[f]) for f in folds]  # the fold positions index the pooled rows, train then val
    assert run.results["cv"]["folds"] == 3 and not (held[0] & held[1]) and not (held[0] & held[2]) \
        and not (held[1] & held[2])
    assert set().union(*held) == set(pooled)


def test_time_split_takes_no_folds():
    message = ("cv_folds=5 does not go with --split time:date: cross-validation folds would train members on rows "
               "later than the rows they are judged on; pass --cv-folds 1 (the time split's validation rows follow "
               "its training rows), or a random or group split for the ensemble")
    with pytest.raises(ConfigError) as e:
        resolve_folds(5, 100, "time:date")
    assert str(e.value) == message
    assert resolve_folds(1, 100, "time:date") == 1
    with pytest.raises(ConfigError, match=r"the training and validation rows hold 3 groups, fewer than the 5 folds"):
        check_split(5, "group:g", np.array([0, 1, 2, 0, 1]))


def test_a_time_split_ensemble_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cv_folds=3 does not go with --split time:date"):
        train_table(series(120), "y", out=tmp_path, data_config=DataConfig(target="y", split="time:date"),
                    train_config=dataclasses.replace(FAST, cv_folds=3), **QUICK)


def test_a_cached_group_split_keeps_its_groups(tmp_path):
    file = tmp_path / "p.csv"
    patients(30, 4).to_csv(file, index=False)
    cfg = DataConfig(target="y", split="group:patient_id")
    first, _ = prepare_table(file, cfg, 0)
    again, _ = prepare_table(file, cfg, 0)  # waits for the first one's write
    assert first.frame is not None and again.frame is None  # read, then from the cache
    assert np.array_equal(first.groups, again.groups) and again.split == "group:patient_id"


# ---------------------------------------------------------------- the audit
def leaks(result, name):
    return [v for v in result if v.name == name]


def test_audit_warns_on_a_time_series_split_at_random_and_not_on_it_shuffled():
    df = series()
    [v] = leaks(audit(df, "y"), "time order under a random split")
    assert (v.id, v.status, v.fault) == ("leakage", "warn", "train-test-overlap")
    assert v.evidence["columns"]["date"]["rho"] == 1.0
    assert v.evidence["columns"]["date"]["test_before_last_train"] > 0.9
    assert v.fix == "split by time: --split time:date (the earliest rows train, the latest test)"
    assert v.summary.startswith("the rows follow date column 'date' (oldest first: rank correlation 1.000 with the "
                                "rows' order), but the split is stratified at random: ")
    assert not leaks(audit(df.sample(frac=1, random_state=0).reset_index(drop=True), "y"),
                     "time order under a random split")
    assert not leaks(audit(df, "y", data_config=DataConfig(split="time:date")), "time order under a random split")
    newest_first = df.iloc[::-1].reset_index(drop=True)
    [v] = leaks(audit(newest_first, "y"), "time order under a random split")
    assert v.evidence["columns"]["date"]["rho"] == -1.0


def test_rank_correlation_of_shuffled_rows_stays_far_below_the_threshold():
    keys = np.arange(400, dtype=float)
    worst = max(abs(rank_correlation(keys, np.random.default_rng(s).permutation(keys))) for s in range(200))
    assert worst < 0.3


def test_audit_warns_on_an_id_column_repeating_across_splits():
    df = patients()
    [v] = leaks(audit(df, "y"), "groups shared between splits")
    assert (v.id, v.status, v.fault) == ("leakage", "warn", "train-test-overlap")
    found = v.evidence["columns"]["patient_id"]
    assert found["values"] == 80 and found["rows_per_value_median"] == 5 and found["share_of_test_in_train"] > 0.9
    assert v.fix == ("keep each value in one split: --split group:patient_id; if new rows will come from the same "
                     "entities, the random split is the right one and this is no leak")
    assert list(v.evidence["columns"]) == ["patient_id"]  # neither 'sex' (3 levels) nor 'age' (an integer quantity)
    assert not leaks(audit(df, "y", data_config=DataConfig(split="group:patient_id")), "groups shared between splits")


def test_audit_is_quiet_on_an_ordinary_categorical():
    df = patients().drop(columns="patient_id")
    df["colour"] = np.random.default_rng(0).choice(["red", "green", "blue"], len(df))
    result = audit(df, "y")
    assert not leaks(result, "groups shared between splits") and not leaks(result, "time order under a random split")


def test_a_shuffled_daily_series_is_no_group_and_no_time_order():
    df = series(600, per_day=6).sample(frac=1, random_state=0).reset_index(drop=True)  # 100 dates of 6 rows
    result = audit(df, "y")
    assert not leaks(result, "groups shared between splits") and not leaks(result, "time order under a random split")


def test_id_words_are_read_from_the_column_name():
    assert name_words("PatientID") == {"patient", "id"} and name_words("store_nbr") == {"store", "nbr"}
    assert name_words("userId") == {"user", "id"} and name_words("age_group") == {"age", "group"}


# ---------------------------------------------------------------- no test split (test_fraction 0)
@pytest.mark.parametrize("split", ["auto", "random", "time:date", "group:patient_id"])
def test_test_fraction_zero_keeps_every_row_for_training_and_validation(split):
    df = series().assign(patient_id=np.arange(400) // 5) if split != "group:patient_id" else patients()
    if split == "group:patient_id":
        df = df.assign(date="2020-01-01")
    prep = prepared(df, split=split, test_fraction=0.0)
    assert prep.counts["test"] == 0
    assert prep.counts["train"] + prep.counts["val"] == len(df)
    assert 0.10 * len(df) <= prep.counts["val"] <= 0.20 * len(df)  # the validation share still holds
    if split == "time:date":  # the latest rows validate
        d = values_in(df, prep, "date")
        assert d["train"].max() < d["val"].min()
    if split == "group:patient_id":
        ids = values_in(df, prep, "patient_id")
        assert not set(ids["train"]) & set(ids["val"])


def test_test_fraction_zero_needs_two_rows_a_class_and_refuses_negative_fractions():
    labels = np.array([0] * 10 + [1] * 2)
    parts = split_indices(labels, 12, 0.15, 0.0, seed=0)
    assert len(parts["test"]) == 0 and set(labels[parts["val"]]) <= {0, 1}
    with pytest.raises(DataError, match="fewer than 2 rows, too few to appear in the training and validation"):
        split_indices(np.array([0] * 11 + [1]), 12, 0.15, 0.0, seed=0)
    with pytest.raises(DataError, match="needs at least 2 groups to fill the training and validation splits"):
        group_split(np.zeros(20, dtype=np.int64), 0.15, 0.0, 0, "the table", "group:g")
    assert len(set(group_split(np.arange(20) % 2, 0.15, 0.0, 0, "the table", "group:g")["val"] % 2)) == 1
    with pytest.raises(ConfigError, match=r"test_fraction=-0.1 is not allowed; choose a fraction in \[0, 0.5\)"):
        DataConfig(test_fraction=-0.1)


def test_a_run_without_a_test_split_measures_on_the_validation_rows(tmp_path):
    run = train_table(small_table(), "y", out=tmp_path, data_config=DataConfig(test_fraction=0.0),
                      train_config=dataclasses.replace(FAST, refit="off"), **QUICK)
    assert run.results["rows"]["test"] == run.results["rows"]["val"] > 0
    assert run.results["test_measured_on"] == ("the validation rows, which chose the epoch (no test split: "
                                               "test_fraction 0)")
    assert {v.id for v in run.verdicts} >= {"C4"}  # the simple models are compared on those rows
    assert ("note     the test metrics are measured on the validation rows, which chose the epoch"
            in (run.run_dir / "summary.txt").read_text())  # said beside the figures
    refit = train_table(small_table(), "y", out=tmp_path, data_config=DataConfig(test_fraction=0.0),
                        train_config=dataclasses.replace(FAST, refit="on"), **QUICK)
    assert "trained on" in refit.results["test_measured_on"] and "C4" not in {v.id for v in refit.verdicts}
    # M14 on such a run measures where the run did: its validation rows
    from nnrecipe import prune_run

    pruned = prune_run(run.run_dir, (0.5,), data=small_table(), fine_tune_epochs=1)
    assert [s["sparsity"] for s in pruned.steps] == [0.5] and pruned.unpruned["test"]
