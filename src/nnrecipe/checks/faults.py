"""Leaf: the fault families a verdict can name. Each warn/fail verdict names the fault it believes
(`Verdict.fault`), or says which it is consistent with (`Verdict.consistent_with`), so that the doctor
diagnoses rather than only noticing. The families are those practitioners report again and again
(Karpathy's "most common neural net mistakes"; AUTOTRAINER, Zhang et al. ICSE 2021; DeepDiagnosis, Wardat
et al. ICSE 2022; UMLAUT, Schoop et al. CHI 2021; NeuraLint; DeepCrime's mutation operators)."""

from __future__ import annotations

FAULTS: dict[str, str] = {
    "unnormalized-inputs": "inputs not normalized (feature scales span orders of magnitude)",
    "double-normalization": "inputs scaled twice (near-constant inputs)",
    "nonfinite-data": "NaN or infinite values in the data",
    "labels-misaligned": "labels not paired with their inputs",
    "label-noise": "noisy labels",
    "conflicting-duplicates": "identical inputs with different labels",
    "train-test-overlap": "rows shared between training and held-out data",
    "target-leakage": "a feature that leaks the target",
    "class-imbalance": "imbalanced classes",
    "unshuffled-batches": "batches sorted by label, not shuffled",
    "val-preprocessed-differently": "validation data preprocessed unlike the training data",
    "outliers": "outlier rows",
    "double-softmax": "softmax before a loss that applies its own",
    "sigmoid-before-logits-loss": "sigmoid before BCEWithLogitsLoss",
    "regression-loss-for-classes": "a regression loss on class indices",
    "output-range": "an output activation that cannot reach the targets",
    "label-range": "labels outside the range the loss takes (class indices past the outputs, binary targets "
                   "outside [0, 1])",
    "shape-mismatch": "outputs and targets of different shapes, which the loss broadcasts",
    "forward-fails": "a model that raises on the data",
    "vanishing-gradients": "vanishing gradients",
    "saturated-units": "saturated tanh/sigmoid units",
    "dying-relu": "dead ReLU units",
    "constant-init": "identical (constant) initial weights",
    "exploding-init": "exploding activations or gradients from the init",
    "no-nonlinearity": "no nonlinearity between linear layers",
    "frozen-layer": "a frozen or disconnected layer",
    "optimizer-wrong-params": "an optimizer on parameters that are not the model's",
    "batch-mixing": "outputs that depend on other rows of the batch",
    "flipped-loss-sign": "a loss whose sign is flipped",
    "loss-sum-not-mean": "a loss summed, not averaged, over the batch",
    "over-regularization": "weight decay that outweighs the data loss",
    "lr-too-high": "a learning rate too high",
    "lr-too-low": "a learning rate too low",
    "scheduler-misuse": "a learning-rate schedule stepped too often",
    "missing-zero-grad": "gradients never zeroed",
    "step-before-backward": "the optimizer stepped before backward",
    "eval-in-train-mode": "evaluation in training mode",
    "val-is-train": "validation data that is the training data",
    "overfitting": "overfitting",
    "wrong-custom-backward": "a custom backward that is wrong",
    "wrong-init-loss": "a loss at init far from the prior's",
    # not a bug planted in code: the trained network scores below a simple model on its own test rows (C4
    # after training); the cause may be the network's settings, or a table that trees suit better
    "simpler-model-wins": "a simpler model beats the trained network on the test rows",
    "unknown": "a fault the doctor cannot name",
}


def describe(fault: str) -> str:
    return FAULTS.get(fault, fault)
