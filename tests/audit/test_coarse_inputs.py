"""Issue 19, calibrated findings: what is a property of the data (coarse inputs that repeat, one entity
recorded several times, a hard task, a rare class) is not failed; what is broken (copies with another label,
copied rows, flipped labels on a learnable table) still is (tests/audit/test_findings.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnrecipe import TrainConfig, audit, doctor_table
from nnrecipe.checks.data_checks import DataView, repeats

import torch


def finding(result, name):
    return next(v for v in result if v.name == name)


def coarse(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A survey-like table: three coarse answers (12 distinct inputs), an outcome that follows them loosely."""
    g = np.random.default_rng(seed)
    df = pd.DataFrame({"group": g.choice(["a", "b", "c"], n), "age": g.choice(["young", "old"], n),
                       "sex": g.choice(["f", "m"], n)})
    p = 0.2 + 0.3 * (df["group"] == "a") + 0.3 * (df["sex"] == "f")
    df["y"] = np.where(g.random(n) < p, "yes", "no")
    return df


def test_coarse_inputs_are_not_label_errors_nor_leaks():
    result = audit(coarse(), "y")
    d4 = finding(result, "conflicting duplicates")
    assert d4.status == "pass" and d4.evidence["repeats"]["coarse"]
    assert "as coarse inputs do" in d4.summary and "floor of" in d4.summary
    # the floor: in each group of identical inputs, the rows outside its most common label
    df = coarse()
    majority = df.groupby(["group", "age", "sex"])["y"].agg(lambda s: s.value_counts().iloc[0]).sum()
    assert d4.evidence["error_floor"] == pytest.approx((len(df) - majority) / len(df), abs=1e-4)
    assert finding(result, "duplicate rows").status == "pass"
    split = finding(result, "rows shared between splits")
    assert split.status == "pass" and "rows alike, not rows copied" in split.summary


def test_the_doctor_on_a_coarse_table_overfits_distinct_inputs_and_sees_no_leak():
    found = doctor_table(coarse(), "y", train_config=TrainConfig(seed=0))
    c1 = next(v for v in found if v.id == "C1")
    assert c1.status == "pass" and c1.evidence["rows"] == 12  # the 12 distinct inputs, not 16 rows with conflicts
    overlap = next(v for v in found if v.name == "train/validation overlap")
    assert overlap.status == "pass" and "rows alike, not rows copied" in overlap.summary
    assert not [v for v in found if v.status == "fail"]


def repeated_records(seed: int = 0) -> pd.DataFrame:
    """Continuous inputs (no near repeats), each of 150 entities recorded 3 times, its outcome varying."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(150, 4))
    rows = np.repeat(np.arange(150), 3)
    df = pd.DataFrame(x[rows], columns=list("abcd"))
    p = 1 / (1 + np.exp(-2 * x[rows, 0]))
    df["y"] = np.where(g.random(len(rows)) < p, "yes", "no")
    return df


def test_repeated_records_warn_with_the_group_split_not_relabelling():
    result = audit(repeated_records(), "y")
    d4 = finding(result, "conflicting duplicates")
    assert d4.status == "warn" and "--split group:COL" in d4.fix and "relabel" not in d4.fix
    assert not d4.evidence["repeats"]["coarse"] and d4.evidence["agreeing_rows"] * 2 >= d4.evidence["conflicting_rows"]
    split = finding(result, "rows shared between splits")
    assert split.status == "warn" and "--split group:COL" in split.fix


def test_repeats_tell_copies_from_rows_alike():
    g = np.random.default_rng(0)
    x = torch.from_numpy(g.normal(size=(200, 5)))
    copied = torch.cat([x, x[:10]])  # 10 rows copied: exact repeats without near ones
    found = repeats(DataView((copied,), torch.zeros(210), "binary", sampled=False))
    assert found["exact"] == pytest.approx(20 / 210, abs=1e-4) and found["near"] == 0 and not found["coarse"]
    codes = torch.from_numpy(g.integers(0, 3, size=(200, 3)).astype(np.float64))  # 27 possible inputs
    found = repeats(DataView((codes,), torch.zeros(200), "binary", sampled=False))
    assert found["coarse"] and found["near"] >= found["exact"] > 0.9
    assert repeats(DataView((x,), torch.zeros(200), "binary", sampled=False)) == \
        {"exact": 0.0, "near": None, "coarse": False, "rows": 200}


def test_label_noise_on_a_hard_clean_task_is_a_warning_that_says_so():
    from sklearn.datasets import make_classification

    # four overlapping classes, clean labels: the reference (a nearest-neighbour model) closes 0.45 of the room and
    # flags 27% of the rows, but where it is unsure (a hard task), not anywhere (labels flipped at random)
    x, y = make_classification(800, 8, n_informative=3, n_classes=4, n_clusters_per_class=1, class_sep=0.1,
                               flip_y=0.0, random_state=0)
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    df["y"] = np.array(list("abcd"))[y]
    v = finding(audit(df, "y"), "label noise")
    assert v.status == "warn" and v.evidence["noise_share"] >= 0.25, v.line()
    assert v.evidence["sure_on_flagged"] < 0.9 * v.evidence["sure_on_rest"]
    assert "the flagged rows are where a 15-nearest-neighbour model is unsure" in v.summary
    assert "an upper bound" in v.summary
    assert v.fix.startswith("read a sample of the suspicious rows")


def test_label_noise_with_a_weak_reference_is_a_warning_that_says_so():
    from sklearn.datasets import make_classification

    x, y = make_classification(800, 8, n_informative=2, n_redundant=0, n_classes=4, n_clusters_per_class=1,
                               class_sep=0.05, flip_y=0.0, random_state=1)
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    df["y"] = np.array(list("abcd"))[y]
    v = finding(audit(df, "y"), "label noise")
    k = v.evidence.get("classes", 4)
    closes = (v.evidence["oof_balanced_accuracy"] - 1 / k) / (1 - 1 / k)
    assert v.status in ("warn", "skipped"), v.line()  # weak: a warning; near chance: it abstains
    if v.status == "warn":
        assert closes < v.evidence["strong_at"] and "is weak here" in v.summary


def test_c3_and_c4_abstain_with_too_few_rows_of_the_rarer_class():
    g = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame(g.normal(size=(n, 4)), columns=list("abcd"))
    df["y"] = np.where(g.random(n) < 0.03 + 0.02 * (df["a"] > 1), 1, 0)  # about 3.5% positives
    checks = {v.id: v for v in doctor_table(df, "y", train_config=TrainConfig(seed=0))}
    for cid in ("C3", "C4"):
        assert checks[cid].status == "skipped", checks[cid].line()
        assert "too few rows of the rarer class" in checks[cid].summary


def test_a_mostly_empty_column_is_a_column_finding_not_corrupted_rows():
    g = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"a": g.normal(size=n), "b": g.normal(size=n), "c": g.normal(size=n)})
    df.loc[g.random(n) < 0.9, "c"] = np.nan  # an optional column
    df.loc[[3, 7], "a"] = np.nan
    df["y"] = np.where(df["b"] > 0, "x", "z")
    v = finding(audit(df, "y"), "corrupted rows")
    assert v.status == "warn" and v.evidence["rows_affected"] == 2  # the rows with an empty 'a', not c's 360
    assert set(v.evidence["optional_columns"]) == {"c"} and "'c' 88% empty" in v.summary
    assert v.summary.startswith("2 of 400 rows are corrupted")
    df.loc[[3, 7], "a"] = 1.0
    v = finding(audit(df, "y"), "corrupted rows")
    assert v.status == "pass" and "optional columns, empty in most rows" in v.summary


def test_a_single_coarse_column_and_image_shaped_inputs_do_not_break_repeats():
    from nnrecipe.checks.data_checks import conflicts

    one = DataView((torch.tensor([[0.0], [1.0], [0.0], [1.0], [0.0], [1.0]]),), torch.tensor([0, 1, 1, 0, 0, 1]),
                   "binary", sampled=False)
    v, _ = conflicts(one)
    assert v.status == "pass" and repeats(one)["coarse"]  # two values over six rows repeat on their own
    images = torch.zeros(8, 3, 32, 32)  # 3,072 pixels: no near-repeat count, no claim of coarse inputs
    found = repeats(DataView((images,), torch.zeros(8), "binary", sampled=False))
    assert found == {"exact": 1.0, "near": None, "coarse": False, "rows": 8}
