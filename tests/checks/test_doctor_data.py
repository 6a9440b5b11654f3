"""The data checks of nnrecipe.checks.data_checks beyond D3/D8 (those are in test_doctor_lint.py): D4
conflicting duplicates, leakage by train/validation overlap and by a leaked target column, each on its
planted fault and quiet on the healthy setups. All run through doctor()."""

from __future__ import annotations

import pytest
import torch

from nnrecipe.checks.doctor import doctor

from .cases import HEALTHY, breast_cancer_scaled, diabetes_mlp, digits_mlp

DATA = ["data"]
IDS = ("D4", "leakage")
CONFLICT_FIX = "resolve the conflicting labels (relabel, or drop the duplicates)"
OVERLAP_FIX = "re-split so no row is in both (deduplicate first)"
LEAK_FIX = "drop the column: it carries the label (computed from it, or recorded after it)"


def data(case, **kwargs):
    return doctor(**{**case.kwargs(), **kwargs}, checks=DATA)


def named(diagnosis, name):
    [v] = [v for v in diagnosis if v.name == name]
    return v


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_healthy_setups_give_no_warning(name):
    diagnosis = data(HEALTHY[name]())
    assert [v.id for v in diagnosis] == ["D3", "D8", "D4", "D4", "leakage", "leakage"]
    assert {v.status for v in diagnosis if v.id in IDS} <= {"pass", "skipped"}, diagnosis.table()


# ---------------------------------------------------------------- D4: conflicting duplicates
def case_5():
    """T with 5% of its rows duplicated and the copies' labels flipped."""
    case = breast_cancer_scaled()
    n = len(case.x)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: n // 20]
    case.x = torch.cat([case.x, case.x[rows]])
    case.y = torch.cat([case.y, 1 - case.y[rows]])
    return case, rows


def test_conflicting_duplicates_fail_with_their_rows():
    case, rows = case_5()
    v = named(data(case, rows=len(case.x)), "conflicting duplicates")
    assert v.id == "D4" and v.status == "fail" and v.fix == CONFLICT_FIX
    ev = v.evidence
    assert ev["conflicting_groups"] == len(rows) == 21 and ev["conflicting_rows"] == 2 * len(rows)
    assert ev["first_rows"] == sorted(rows.tolist())[:10]  # the caller's originals (the copies come after)
    assert "42 of 447 sampled rows (9.4%) in 21 groups have identical inputs but different labels" in v.summary


def test_exact_duplicates_with_their_label_only_pass():
    case = breast_cancer_scaled()
    case.x, case.y = torch.cat([case.x, case.x[:20]]), torch.cat([case.y, case.y[:20]])
    v = named(data(case, rows=len(case.x)), "conflicting duplicates")
    assert v.status == "pass" and v.evidence["duplicate_groups"] == 20 and v.evidence["conflicting_rows"] == 0


def test_one_conflicting_pair_warns():
    case = breast_cancer_scaled()
    case.x, case.y = torch.cat([case.x, case.x[:1]]), torch.cat([case.y, 1 - case.y[:1]])
    v = named(data(case, rows=len(case.x)), "conflicting duplicates")
    assert v.status == "warn" and v.evidence["conflicting_rows"] == 2 and v.fix == CONFLICT_FIX


def test_regression_duplicates_are_not_judged():
    case = diabetes_mlp()
    case.x, case.y = torch.cat([case.x, case.x[:20]]), torch.cat([case.y, case.y[:20] + 1])
    v = named(data(case, rows=len(case.x)), "conflicting duplicates")
    assert v.status == "pass" and v.evidence["duplicate_groups"] == 20


# ---------------------------------------------------------------- leakage: train/validation overlap
def case_6():
    """A with 20% of the validation rows copied into train."""
    case = digits_mlp()
    m = len(case.val_x)
    rows = torch.randperm(m, generator=torch.Generator().manual_seed(0))[: m // 5]
    case.x, case.y = torch.cat([case.x, case.val_x[rows]]), torch.cat([case.y, case.val_y[rows]])
    return case, rows


def test_validation_rows_copied_into_train_fail():
    case, rows = case_6()
    v = named(data(case, rows=len(case.x)), "train/validation overlap")  # every row: the exact ratio
    assert v.id == "leakage" and v.status == "fail" and v.fix == OVERLAP_FIX
    ev = v.evidence
    assert ev["shared_rows"] == len(rows) == 90 and ev["val_rows"] == 450
    assert ev["overlap_ratio"] == 0.2 and ev["train_sampled_fraction"] == 1.0
    assert ev["val_rows_shared"] == sorted(rows.tolist())[:10]


def test_the_overlap_is_estimated_from_the_default_sample():
    case, _ = case_6()
    v = named(data(case), "train/validation overlap")  # 512 of 1437 training rows sampled
    assert v.status == "fail" and 0.1 < v.evidence["overlap_ratio"] < 0.3
    assert 0.3 < v.evidence["train_sampled_fraction"] < 0.4


def test_one_shared_row_warns_and_no_val_data_skips():
    case = digits_mlp()
    case.x, case.y = torch.cat([case.x, case.val_x[:1]]), torch.cat([case.y, case.val_y[:1]])
    v = named(data(case, rows=len(case.x)), "train/validation overlap")
    assert v.status == "warn" and v.evidence["shared_rows"] == 1 and v.fix == OVERLAP_FIX
    v = named(data(case, val_data=None), "train/validation overlap")
    assert v.status == "skipped"


# ---------------------------------------------------------------- leakage: a leaked target
def with_leak(case, scale: float = 0.1):
    """The case plus a last column y + N(0, scale^2)."""
    g = torch.Generator().manual_seed(0)
    for x, y in (("x", "y"), ("val_x", "val_y")):
        target = getattr(case, y).float().reshape(len(getattr(case, y)), -1)[:, :1]
        setattr(case, x, torch.cat([getattr(case, x), target + scale * torch.randn(target.shape, generator=g)], 1))
    case.model = torch.nn.Sequential(torch.nn.Linear(case.x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    return case


def test_a_leaked_target_column_fails_with_its_index():
    v = named(data(with_leak(breast_cancer_scaled())), "leaked target")
    assert v.id == "leakage" and v.status == "fail" and v.fix == LEAK_FIX
    assert v.evidence["best"]["column"] == 30 and v.evidence["best"]["score"] >= 0.99
    assert v.evidence["measure"] == "balanced_accuracy_1nn"
    assert v.summary.startswith("column 30 alone predicts the target")


def test_a_leaked_regression_target_fails_on_its_correlation():
    case = with_leak(diabetes_mlp(), scale=0.05)
    v = named(data(case), "leaked target")
    assert v.status == "fail" and v.evidence["best"]["column"] == 10 and v.evidence["measure"] == "abs_pearson_r"


def test_a_leaked_multiclass_label_fails():
    case = digits_mlp()
    g = torch.Generator().manual_seed(0)
    code = torch.randperm(10, generator=g).float()  # the label under an arbitrary (non-monotone) code
    case.x = torch.cat([case.x, (code[case.y] + 0.01 * torch.randn(len(case.y), generator=g))[:, None]], 1)
    case.val_x = torch.cat([case.val_x, code[case.val_y][:, None]], 1)
    case.model = torch.nn.Sequential(torch.nn.Linear(65, 10))
    v = named(data(case), "leaked target")
    assert v.status == "fail" and v.evidence["best"]["column"] == 64


def test_feature_names_name_the_columns_in_the_findings():
    from nnrecipe.checks.doctor import doctor
    from nnrecipe.errors import ConfigError

    case = breast_cancer_scaled()
    names = [f"f{j}" for j in range(30)] + ["y_copy"]
    x = torch.cat([case.x, case.y + 0.01 * torch.randn(len(case.y), 1, generator=torch.Generator().manual_seed(1))], 1)
    x[[3, 8], 4] = float("nan")
    kwargs = {**case.kwargs(), "data": (x, case.y), "val_data": None, "feature_names": names}
    d = doctor(**kwargs, checks=["data"])
    [leak] = [v for v in d if v.name == "leaked target"]
    assert leak.status == "fail" and leak.evidence["best"]["name"] == "y_copy"
    assert leak.summary.startswith("column 'y_copy' alone predicts the target")
    [d3] = [v for v in d if v.id == "D3"]
    assert d3.status == "fail" and "columns 'f4'" in d3.summary
    with pytest.raises(ConfigError, match="feature_names has 3 names for inputs of shape"):
        doctor(**{**kwargs, "feature_names": ["a", "b", "c"]}, checks=[])
