"""The differential diagnosis: from verdicts that noticed something to the fault behind them. Each check
judges one symptom; many faults share a symptom (a loss that stays flat: a learning rate too low, inputs
scaled twice, a scheduler stepped too often, weight decay that outweighs the loss...). After the checks
run, every warn/fail verdict is given the fault family it believes (checks/faults.py):

- a verdict that found a cause (a static read of the setup, the data, a layer's gradients) names it;
- a symptom (a curve, a short run that fails, a baseline not beaten) takes the cause another verdict
  found among the faults that produce it, most specific evidence first, and its fix becomes that cause's
  fix: a check never recommends a fix that another verdict's evidence contradicts ("raise the learning
  rate" while the inputs are 1e-3 of their scale);
- a symptom no cause explains keeps its own family (or "unknown" for a short run that fails), and lists
  the faults it is consistent with, ranked, and those the doctor ruled out (their check ran and passed).

The ranking of causes follows the order faults show up in a training run (data, then the model and loss
as written, then the first steps' gradients, then the curves): the earliest evidence is the most direct.
The symptom tables follow AUTOTRAINER (Zhang et al., ICSE 2021) and DeepDiagnosis (Wardat et al., ICSE
2022), which map the same symptoms to root causes, and Karpathy's "most common neural net mistakes"."""

from __future__ import annotations

import dataclasses

from .faults import describe
from .verdict import Diagnosis, Verdict

FIRED = ("fail", "warn")

# The fault a verdict names by its check and name, when the check did not name it itself.
FAULT_OF: dict[tuple[str, str], str] = {
    ("D3", "corrupted rows"): "nonfinite-data",
    ("D8", "feature scales"): "unnormalized-inputs",
    ("D4", "conflicting duplicates"): "conflicting-duplicates",
    ("D4", "label noise"): "label-noise",
    ("leakage", "train/validation overlap"): "train-test-overlap",
    ("leakage", "leaked target"): "target-leakage",
    ("lint", "evaluation mode"): "eval-in-train-mode",
    ("lint", "optimizer parameters"): "optimizer-wrong-params",
    ("lint", "nonlinearity"): "no-nonlinearity",
    ("lint", "softmax before the loss"): "double-softmax",
    ("lint", "sigmoid before the loss"): "sigmoid-before-logits-loss",
    ("lint", "class labels in a regression loss"): "regression-loss-for-classes",
    ("lint", "output activation"): "output-range",
    ("lint", "labels"): "label-range",
    ("lint", "target shape"): "shape-mismatch",
    ("lint", "forward"): "forward-fails",
    ("C2", "loss at init"): "wrong-init-loss",
    ("C5", "gradient check"): "wrong-custom-backward",
    ("C6", "sample independence"): "batch-mixing",
    ("C7", "frozen parameters"): "frozen-layer",
    ("C7", "no gradient"): "frozen-layer",
    ("C7", "parameters never change"): "frozen-layer",
    ("C7", "not in the optimizer"): "optimizer-wrong-params",
    ("C7", "exploding gradients"): "exploding-init",
    ("C7", "vanishing gradients"): "vanishing-gradients",
    ("C7", "dead ReLU units"): "dying-relu",
    ("C7", "saturated units"): "saturated-units",
    ("C8", "loss far above the prior"): "wrong-init-loss",
    ("C8", "learning rate too low"): "lr-too-low",
    ("C8", "learning rate too high"): "lr-too-high",
    ("C8", "loss non-finite at init"): "exploding-init",
    ("C8", "overfitting"): "overfitting",
    ("C8", "underfitting"): "unknown",
    ("C8", "batches sorted by label"): "unshuffled-batches",
}

# How direct a check's evidence is: the data and the setup as written (0), the model's first steps
# layer by layer (1), the curves of a short run (2), whether a short run gets anywhere at all (3). A
# symptom takes its cause from a verdict of a lower tier only.
TIER = {"D3": 0, "D8": 0, "D4": 0, "leakage": 0, "lint": 0, "data": 0, "C5": 1, "C6": 1, "C7": 1, "C2": 2,
        "C8": 2, "C3": 3, "C1": 4, "C4": 4}
SYMPTOM_TIER = {("C7", "update/weight ratio"): 2}

_INPUTS = ["unnormalized-inputs", "outliers", "nonfinite-data"]
_STALL = ["double-normalization", "scheduler-misuse", "over-regularization", "constant-init", "frozen-layer",
          "optimizer-wrong-params", "step-before-backward", "vanishing-gradients", "dying-relu", "saturated-units",
          "double-softmax", "sigmoid-before-logits-loss", "regression-loss-for-classes", "output-range",
          "flipped-loss-sign", "no-nonlinearity", "batch-mixing", "shape-mismatch", "label-range"]
_BLOWUP = ["loss-sum-not-mean", "missing-zero-grad", *_INPUTS, "exploding-init"]
_ANY = [*_INPUTS, "shape-mismatch", "label-range", "double-normalization", "labels-misaligned", "label-noise", "val-preprocessed-differently",
        "flipped-loss-sign", "double-softmax", "sigmoid-before-logits-loss", "regression-loss-for-classes",
        "output-range", "optimizer-wrong-params", "frozen-layer", "step-before-backward", "missing-zero-grad",
        "scheduler-misuse", "over-regularization", "loss-sum-not-mean", "constant-init", "exploding-init",
        "vanishing-gradients", "dying-relu", "saturated-units", "no-nonlinearity", "batch-mixing",
        "wrong-custom-backward", "lr-too-high", "lr-too-low"]

# symptom (check id, verdict name; None: any name) -> the faults that produce it, most likely first. The
# verdict's own family (FAULT_OF) is its answer when no other verdict names one of these.
CAUSES: dict[tuple[str, ...] | tuple[str, None], list[str]] = {
    ("C2", "loss at init"): ["flipped-loss-sign", *_INPUTS, "saturated-units", "exploding-init", "wrong-init-loss"],
    ("C7", "exploding gradients"): [*_INPUTS, "loss-sum-not-mean", "exploding-init"],
    ("C7", "dead ReLU units"): [*_INPUTS, "dying-relu"],
    ("C7", "dead ReLU units", "lr-too-high"): [*_INPUTS, "loss-sum-not-mean", "missing-zero-grad", "lr-too-high"],
    ("C7", "saturated units"): [*_INPUTS, "saturated-units"],
    ("C7", "vanishing gradients"): ["saturated-units", "double-normalization", "vanishing-gradients"],
    ("C7", "no gradient"): ["frozen-layer"],
    ("C7", "parameters never change"): ["optimizer-wrong-params", "step-before-backward", "frozen-layer"],
    ("C7", "update/weight ratio", "lr-too-low"): ["double-normalization", "scheduler-misuse", "over-regularization",
                                                  "vanishing-gradients", "lr-too-low"],
    ("C7", "update/weight ratio", "lr-too-high"): [*_BLOWUP, "lr-too-high"],
    ("C8", "learning rate too low"): [*_STALL, "lr-too-low"],
    ("C8", "learning rate too high"): [*_BLOWUP, "flipped-loss-sign", "lr-too-high"],
    ("C8", "loss far above the prior"): ["flipped-loss-sign", *_BLOWUP, "saturated-units", "lr-too-high",
                                         "wrong-init-loss"],
    ("C8", "loss non-finite at init"): [*_INPUTS, "exploding-init"],
    ("C8", "underfitting"): ["over-regularization", "no-nonlinearity", "class-imbalance", *_STALL, "lr-too-low"],
    ("C8", "overfitting"): ["val-preprocessed-differently", "overfitting"],
    # memorizing the training rows without generalizing: labels apart from their inputs, or a network
    # that trains so badly (an init, a saturation) that what it fits is noise
    ("C3", "input-independent baseline", "labels-misaligned"): [
        "val-preprocessed-differently", "val-is-train", *_INPUTS, "exploding-init", "vanishing-gradients",
        "saturated-units", "dying-relu", "constant-init", "double-softmax", "sigmoid-before-logits-loss",
        "labels-misaligned"],
    ("C7", "exploding gradients", "lr-too-high"): [*_INPUTS, "loss-sum-not-mean", "missing-zero-grad", "lr-too-high"],
    ("C3", None): ["val-preprocessed-differently", "labels-misaligned", *_ANY],
    ("C1", None): [*_ANY],
    ("C4", None): ["class-imbalance", *_ANY],
}

OPPOSITE = {"lr-too-low": "lr-too-high", "lr-too-high": "lr-too-low"}  # never both for one symptom

# The passing verdict (check id, name) that rules a family out: the rule that looks for it ran and found
# nothing (a check's single pass verdict stands for all its rules).
_LINT, _C7 = ("lint", "setup lint"), ("C7", "gradient flow")
DETECTED_BY: dict[str, tuple[str, str]] = {
    "nonfinite-data": ("D3", "corrupted rows"), "unnormalized-inputs": ("D8", "feature scales"),
    "conflicting-duplicates": ("D4", "conflicting duplicates"), "label-noise": ("D4", "label noise"),
    "train-test-overlap": ("leakage", "train/validation overlap"),
    "val-is-train": ("leakage", "train/validation overlap"), "target-leakage": ("leakage", "leaked target"),
    **{f: _LINT for f in ("double-softmax", "sigmoid-before-logits-loss", "regression-loss-for-classes",
                          "output-range", "shape-mismatch", "label-range", "no-nonlinearity", "optimizer-wrong-params", "constant-init",
                          "flipped-loss-sign", "loss-sum-not-mean", "over-regularization", "scheduler-misuse",
                          "missing-zero-grad", "step-before-backward", "eval-in-train-mode")},
    **{f: _C7 for f in ("frozen-layer", "vanishing-gradients", "dying-relu", "saturated-units", "exploding-init")},
    "batch-mixing": ("C6", "sample independence"), "wrong-custom-backward": ("C5", "gradient check"),
    "wrong-init-loss": ("C2", "loss at init"), "labels-misaligned": ("C3", "input-independent baseline"),
}


def _key(v: Verdict) -> tuple[str, ...] | tuple[str, None] | None:
    """The symptom a verdict is in CAUSES: by check, name and its own fault; by check and name; by check."""
    for key in ((v.id, v.name, v.fault), (v.id, v.name)):
        if key in CAUSES:
            return key
    return (v.id, None) if (v.id, None) in CAUSES else None


def _tier(v: Verdict) -> int:
    return SYMPTOM_TIER.get((v.id, v.name), TIER.get(v.id, 0))


def differentiate(diagnosis: Diagnosis) -> Diagnosis:
    """The verdicts with `fault` and `consistent_with` filled in (see the module's docstring); the order,
    the statuses and every other field of a verdict that names its own cause are kept."""
    named = [v if v.status not in FIRED or v.fault else
             dataclasses.replace(v, fault=FAULT_OF.get((v.id, v.name), "unknown")) for v in diagnosis]
    passed = {(v.id, v.name) for v in named if v.status == "pass"}
    found = [v.fault for v in named if v.status in FIRED and v.fault and v.fault != "unknown"]
    ruled_out = {f for f, by in DETECTED_BY.items() if by in passed and f not in found}
    final: dict[int, Verdict] = {}  # position -> the verdict as diagnosed; lower tiers first
    for i in sorted(range(len(named)), key=lambda i: _tier(named[i])):
        v = named[i]
        key = _key(v) if v.status in FIRED else None
        final[i] = v if key is None else _explain(v, key, [final[j] for j in sorted(final)], found, ruled_out)
    out = Diagnosis(final[i] for i in range(len(named)))
    out.seconds = diagnosis.seconds
    return out


def _explain(v: Verdict, key: tuple[str, ...] | tuple[str, None], before: list[Verdict], found: list[str],
             ruled_out: set[str]) -> Verdict:
    """A symptom's verdict, explained by the lower-tier verdicts `before` where one names a cause of it."""
    causes = CAUSES[key]
    own = v.fault if v.fault and v.fault != "unknown" else (causes[-1] if key[1] is not None else "unknown")
    roots = sorted((r for r in before if r.status in FIRED and _tier(r) < _tier(v) and r.fault in causes
                    and r.fault != own), key=lambda r: (r.status != "fail", _tier(r)))
    ranked = [f for f in dict.fromkeys([*(r.fault for r in roots), *(f for f in found if f in causes),
                                        *(f for f in causes if f not in ruled_out)]) if f != OPPOSITE.get(own)]
    if roots:
        root = roots[0]
        by_name = {f"{r.id} {r.name}": r for r in sorted((r for r in before if r.status in FIRED),
                                                          key=lambda r: r.status == "fail")}  # a fail wins
        seen = {id(root)}
        while root.evidence.get("explained_by") in by_name:  # a symptom explained in turn: the cause it names
            root = by_name[root.evidence["explained_by"]]
            if id(root) in seen:
                break
            seen.add(id(root))
        fix = f"first fix the cause, {describe(root.fault)} ({root.id} {root.name}): {root.fix}"
        return dataclasses.replace(v, fault=root.fault, fix=fix,
                                   consistent_with=tuple(f for f in ranked if f != root.fault)[:6],
                                   evidence={**v.evidence, "explained_by": f"{root.id} {root.name}"})
    out = list(dict.fromkeys(f for f in causes if f in ruled_out))
    return dataclasses.replace(v, fault=own, consistent_with=tuple(f for f in ranked if f != own)[:6],
                               evidence={**v.evidence, **({"ruled_out": out} if out else {})})


__all__ = ["CAUSES", "FAULT_OF", "differentiate"]
