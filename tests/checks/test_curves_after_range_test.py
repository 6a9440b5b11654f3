"""Issue 19, item 6: when the LR range test chose the rate, C8's advice does not send the user back to it."""

from __future__ import annotations

from nnrecipe.checks.curves import FIX_HIGH, after_range_test, diagnose_curves


def diverging() -> list[dict]:
    losses = [0.7, 0.5, 0.6, 0.9, 1.4, 2.2, 3.5, 5.0]
    return [{"epoch": i + 1, "train_loss": v, "val_loss": v * 1.1} for i, v in enumerate(losses)]


def test_a_rate_the_range_test_chose_that_diverges_points_at_the_schedule_and_the_batch():
    verdicts = diagnose_curves(diverging(), baseline_loss=0.69)
    high = [v for v in verdicts if v.fix == FIX_HIGH]
    assert high, [v.line() for v in verdicts]  # the plain advice: run the LR range test
    assert "run the LR range test" in high[0].fix
    after = after_range_test(verdicts, 0.0123)
    changed = [v for v in after if v.name == high[0].name]
    assert changed[0].fix.startswith("the LR range test chose lr 0.0123, a rate for the first steps")
    assert "--schedule cosine" in changed[0].fix and "--batch-size" in changed[0].fix
    assert "run the LR range test" not in " ".join(v.fix for v in after)
    assert [v.status for v in after] == [v.status for v in verdicts]  # the findings stay; the advice changes


def test_overfitting_after_the_kept_best_epoch_is_a_pass_that_says_so():
    from nnrecipe.checks.curves import kept_best

    val = [0.5, 0.35, 0.3, 0.29, 0.31, 0.33, 0.36, 0.38, 0.40]  # a slow rise after epoch 4
    history = [{"epoch": i + 1, "train_loss": 0.5 - 0.05 * i, "val_loss": v} for i, v in enumerate(val)]
    [v] = [v for v in diagnose_curves(history, baseline_loss=0.69) if v.name == "overfitting"]
    assert v.status == "warn" and v.evidence["best_epoch"] == 4
    [kept] = [k for k in kept_best([v]) if k.name == "overfitting"]
    assert kept.status == "pass" and kept.fix == "" and kept.summary.endswith(
        "early stopping kept the weights of epoch 4, from before the rise")
