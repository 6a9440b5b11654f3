"""D4 label noise of nnrecipe.checks.data_checks: confident learning (cleanlab) on a logistic regression's
out-of-fold probabilities, on its planted fault (30% of digits' training labels flipped at
random) and quiet on the healthy setups. All run through doctor()."""

from __future__ import annotations

import pytest
import torch

from nnrecipe.checks.doctor import doctor

from .cases import HEALTHY, diabetes_mlp, digits_mlp, moons_mlp

DATA = ["data"]
NOISE_FIX = ("relabel or prune the suspicious rows (list in the evidence); a noise share this high caps the "
             "accuracy any model reaches")


def noise(case, **kwargs):
    [v] = [v for v in doctor(**{**case.kwargs(), **kwargs}, checks=DATA) if v.name == "label noise"]
    assert v.id == "D4"
    return v


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_healthy_setups_give_no_noise_warning(name):
    v = noise(HEALTHY[name]())
    assert v.status == ("skipped" if name == "C" else "pass"), v.line()
    if name != "C":
        assert v.evidence["noise_share"] < 0.05 and v.fix == ""


def case_4(share: float = 0.3):
    """A with `share` of its training rows given a random class (a generator apart from the split's seed;
    one in ten draws is the row's own class, so about 27% of the labels really change)."""
    case = digits_mlp()
    g = torch.Generator().manual_seed(2024)
    rows = torch.randperm(len(case.y), generator=g)[: int(share * len(case.y))]
    clean = case.y.clone()
    case.y = clean.clone()
    case.y[rows] = torch.randint(0, 10, (len(rows),), generator=g)
    return case, set(torch.nonzero(case.y != clean).flatten().tolist())


def test_thirty_percent_flipped_labels_fail_with_the_flipped_rows():
    case, flipped = case_4()
    v = noise(case)
    assert v.status == "fail" and v.fix == NOISE_FIX
    ev = v.evidence
    assert 0.2 <= ev["noise_share"] <= 0.4 and ev["rows"] == 512 and ev["folds"] == 5
    assert ev["oof_accuracy"] < 0.8  # the simple model cannot fit labels a third of which are random
    assert len(ev["suspicious_rows"]) == 10 and set(ev["suspicious_rows"]) <= flipped  # the caller's row numbers
    assert "as likely mislabeled" in v.summary and "most suspicious: rows " in v.summary


def test_flagged_rows_are_mostly_the_flipped_ones():
    """Precision of the flagged rows against the planted flips (the verdict lists only 10; the check's own
    computation hands back all of them)."""
    from nnrecipe.checks.data_checks import DataView, label_noise
    from nnrecipe.checks.setup import make_setup

    case, flipped = case_4()
    setup = make_setup(case.model, (case.x, case.y), loss_fn=case.loss_fn, task=case.task)
    flagged = label_noise(DataView.of(setup))[1]
    assert len(flagged) == noise(case).evidence["rows_flagged"]
    precision = len(set(flagged.tolist()) & flipped) / len(flagged)
    recall = len(set(flagged.tolist()) & flipped) / len(flipped & set(setup.index.tolist()))
    assert precision >= 0.6 and recall >= 0.5, (precision, recall)


def test_twenty_percent_flipped_labels_warn():
    case, _ = case_4(0.20)  # measured: 15.4% flagged
    v = noise(case)
    assert v.status == "warn" and 0.15 <= v.evidence["noise_share"] < 0.25 and v.fix == NOISE_FIX


def test_binary_float_labels_are_judged():
    case = moons_mlp()
    g = torch.Generator().manual_seed(2024)
    rows = torch.randperm(len(case.y), generator=g)[: len(case.y) // 4]
    case.y[rows] = 1 - case.y[rows]
    v = noise(case)
    assert v.status == "fail" and v.evidence["classes"] == 2


def test_regression_and_tiny_classes_are_skipped():
    v = noise(diabetes_mlp())
    assert v.status == "skipped" and "binary and multiclass" in v.summary
    case = digits_mlp()
    case.x, case.y = case.x[:30], torch.cat([case.y[:29], torch.tensor([99])])
    v = noise(case)
    assert v.status == "skipped" and "at least 2 classes of 2 rows" in v.summary
