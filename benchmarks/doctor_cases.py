"""The doctor on planted training faults: does it name the fault, and does its fix restore the training?

WHAT. The 38 fault families of the catalogue (/work/shared/doctor-faults.md; slugs: nnrecipe.checks.faults),
each planted by a small function on >= 3 base setups, in three code styles, over seeds:

  bases    A  MLP 64-128-10 on sklearn digits / 16 (multiclass, CrossEntropyLoss, Adam 1e-3)
           B  MLP 2-32-32-1 on make_moons(600, noise .15) (binary, BCEWithLogitsLoss, Adam 1e-2)
           C  MLP 10-64-64-1 on diabetes, features and target standardized (MSELoss, Adam 1e-3)
           D  small CNN (conv 8, conv 16, 2x2 average pool, linear) on digits as (N, 1, 8, 8) / 16 (Adam 1e-2)
           T  MLP 30-64-1 on breast cancer, standardized (the catalogue's raw T is fault 1)
           W  MLP 13-64-3 on wine, standardized (multiclass)
           R  MLP 10-64-64-1 on make_friedman1(1000), standardized (regression)
           F  MLP 4-64-64-1 on make_friedman2(1000), standardized (regression)
           K  MLP 10-64-64-1 on make_classification(1200, 10, 5 informative), standardized (binary)
           Split 75/25 by the seed; standardization uses the training rows' statistics.
  styles   sequential  an nn.Sequential; doctor(model, (x, y), loss_fn=, optimizer=, val_data=, evaluate=)
           functional  a custom nn.Module whose forward calls F.relu / torch.sigmoid ... (no activation
                       modules); the same doctor call
           train_step  the nn.Sequential trained by the user's own train_step(model, optimizer, batch),
                       which steps a scheduler on the user's optimizer per batch (StepLR(1000, 0.5), or a
                       cosine over the run down to lr/10: neither hurts); doctor(..., train_step=,
                       scheduler=) (scheduler= only where doctor accepts it)
  Every call also passes evaluate(model, x), the user's evaluation (model.eval() + no_grad; #34 forgets).

Where a family only exists in some code, it is planted in the closest way: #31 (scheduler stepped per batch),
#32 (no zero_grad) and #33 (step before backward) always use a user train_step, in the 'sequential' and
'functional' styles with the Sequential / functional model and without scheduler=, in 'train_step' with it.
#10 (unshuffled batches) hands the doctor a DataLoader(shuffle=False) in every style, since tensors cannot
show an order. #23 freezes layer 1 with requires_grad=False, except in 'functional', where forward
.detach()es after it. #25's view sits after the first hidden layer (the CNN: after the pool).

HOW IT IS SCORED. Each healthy twin (base x style x seed, no fault) goes to the doctor: any warn/fail verdict,
or an exception, is a false alarm. For each planted case:
  detected  some verdict is warn/fail/error
  right     some warn/fail verdict has .fault == the family's slug
  fixed     right, and the family's repair (below), trained with the style's loop for the base's epochs
            (seeded: a repair that restores the twin's setup gives the twin's metric exactly), reaches a
            validation metric >= the twin's - 0.02, or within 0.02 of it for the faults that inflate the
            metric the user measures (#7 overlap, #8 leak, #35 val = train: measured on the case's own
            validation data). Metric: accuracy (#15: the regression output rounded to a class), R^2, and for
            #9 balanced accuracy on the twin's (balanced) validation rows.
A family x base x style combination counts as right (fixed) when it is on most seeds; the per-run shares are
printed too. The reference is the healthy twin, except for #34 (the BatchNorm + dropout model evaluated in
eval mode: those layers are the setup, the missing eval() is the fault) and #36 (100 training rows are the
setting: the base MLP on the same rows, early stopped). Repairs take their parameter from the verdict's
evidence where the fix has one (#8 the column to drop, #28 a suggested weight decay, #29/#30 a suggested
learning rate; column 'ev' counts them; without it they fall back to undoing the injection); else they
apply the fix's rule to the whole table (#1 standardize, #3 impute column means, #6 drop conflicting
duplicates, #7 dedupe, #9 class weights, #12 drop robust-z outliers, #36 early stopping); else they undo the
injection as the fix says (remove the softmax, add zero_grad, relabel, ...). #9's class weights cannot
restore the balanced accuracy within 0.02 when 1:50 leaves 4-11 minority rows (--assume-right shows it).

Each case is also trained as planted, to check the injection: a warning names the family x base where a
fault that should hurt (or inflate) the metric did not by 0.01. Not checked (may be silent on easy data):
#6 conflicting duplicates (5% of rows), #13 double softmax, #37 a halved gradient (Adam is invariant to a
constant gradient scale), #38 a bias of 10 at init (Adam recovers).

    python benchmarks/doctor_cases.py --jobs 2                     # everything, seeds 0 1 2: 1314 planted
                                                                   # runs + 81 twins, ~35 min on 2 cores
    python benchmarks/doctor_cases.py --families 1 13 29 --seeds 0 --jobs 2
    python benchmarks/doctor_cases.py --families dying-relu --bases A D --styles functional --no-fix
    python benchmarks/doctor_cases.py --assume-right --seeds 0     # harness self-check: every repair restores?
    python benchmarks/doctor_cases.py --json /tmp/doctor_cases.json
    python benchmarks/doctor_cases.py --holdout --jobs 2             # every family on bases held out (I, H, G)
"""

from __future__ import annotations

import argparse
import collections
import copy
import functools
import inspect
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nnrecipe
from nnrecipe.checks.doctor import doctor
from nnrecipe.checks.faults import FAULTS

STYLES = ("sequential", "functional", "train_step")
TOLERANCE = 0.02  # the catalogue: fixed when the metric is back within 2% of the healthy twin's
HARM = 0.01  # a planted fault that should hurt but costs less than this is reported as not hurting
PATIENCE = 50  # epochs of early stopping (#36): 100 rows are 2 batches an epoch
ALARM = ("warn", "fail", "error")


# ================================================================ base setups
@dataclass(frozen=True)
class Base:
    task: str  # binary | multiclass | regression
    sizes: tuple[int, ...]  # MLP widths in..out; for the CNN: channels 1, 8, 16, then classes
    lr: float
    epochs: int
    sched: str  # the healthy scheduler of the 'train_step' style: steplr | cosine
    cnn: bool = False


BASES = {
    "A": Base("multiclass", (64, 128, 10), 1e-3, 30, "steplr"),
    "B": Base("binary", (2, 32, 32, 1), 1e-2, 60, "cosine"),
    "C": Base("regression", (10, 64, 64, 1), 1e-3, 20, "steplr"),
    "D": Base("multiclass", (1, 8, 16, 10), 1e-2, 30, "steplr", cnn=True),
    "T": Base("binary", (30, 64, 1), 1e-3, 30, "steplr"),
    "W": Base("multiclass", (13, 64, 3), 1e-3, 60, "cosine"),
    "R": Base("regression", (10, 64, 64, 1), 1e-3, 40, "steplr"),
    "F": Base("regression", (4, 64, 64, 1), 1e-3, 40, "cosine"),
    "K": Base("binary", (10, 64, 64, 1), 1e-3, 30, "steplr"),
    # held out (--holdout): bases no rule of the doctor was looked at on while it was written
    "I": Base("multiclass", (4, 32, 3), 1e-2, 60, "cosine"),
    "H": Base("binary", (10, 64, 64, 1), 1e-3, 30, "steplr"),
    "G": Base("regression", (4, 64, 64, 1), 1e-3, 40, "steplr"),
}
HELD_OUT = "IHG"


@functools.lru_cache(maxsize=None)
def raw_data(base: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The base's table before any scaling (bundled or generated by scikit-learn: nothing is downloaded)."""
    from sklearn import datasets as ds

    if base in "AD":
        d = ds.load_digits()
        return d.data.reshape(-1, 1, 8, 8) if base == "D" else d.data, d.target
    if base == "B":
        return ds.make_moons(600, noise=0.15, random_state=seed)
    if base == "C":
        return ds.load_diabetes(return_X_y=True, scaled=False)
    if base == "T":
        return ds.load_breast_cancer(return_X_y=True)
    if base == "W":
        return ds.load_wine(return_X_y=True)
    if base == "R":
        return ds.make_friedman1(1000, noise=1.0, random_state=seed)
    if base == "F":
        return ds.make_friedman2(1000, noise=0.0, random_state=seed)
    if base == "I":
        return ds.load_iris(return_X_y=True)
    if base == "H":
        x, y = ds.make_hastie_10_2(1200, random_state=seed)
        return x, (y > 0).astype(np.int64)
    if base == "G":
        return ds.make_friedman3(1000, noise=0.0, random_state=seed)
    return ds.make_classification(1200, 10, n_informative=5, random_state=seed)  # K


def standardize(tr: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = tr.mean(0), tr.std(0).clamp_min(1e-12)
    return [(t - mean) / std for t in (tr, *others)]


# ================================================================ a case: everything one training needs
@dataclass
class Net:
    sizes: tuple[int, ...]
    cnn: bool = False
    act: str = "relu"  # relu | sigmoid | tanh | none | badrelu (a custom Function, #37)
    out: str = ""  # an activation on the output: softmax | sigmoid | relu
    init: str = ""  # '' PyTorch's default | const | he | normal:<std>
    hidden_bias: float | None = None
    final_bias: float = 0.0  # added to output 0's bias (#38)
    prior_bias: bool = False  # the output bias set to the log priors (#38's repair)
    bn_dropout: bool = False  # BatchNorm1d + Dropout(0.5) after each hidden layer (#34)
    frozen: str = ""  # '' | requires_grad | detach: layer 1 (#23)
    mix: bool = False  # a view that swaps the batch and feature dims (#25)


@dataclass
class Case:
    base: str
    style: str
    seed: int
    task: str
    xtr: torch.Tensor
    ytr: torch.Tensor
    xva: torch.Tensor
    yva: torch.Tensor
    raw_tr: torch.Tensor  # the inputs before the base's scaling (#1, #11)
    raw_va: torch.Tensor
    net: Net
    lr: float
    epochs: int
    loss: str  # ce | bce | mse
    metric: str  # acc | bacc | r2 | acc_round (a regression output rounded to a class, #15)
    reduction: str = "mean"
    pos_weight: float | None = None
    loss_sign: float = 1.0
    opt: str = "adam"
    momentum: float = 0.0
    wd: float = 0.0
    batch: int = 64
    shuffle: bool = True
    loader: bool = False  # hand the doctor a DataLoader instead of tensors
    use_step: bool = False  # train through the user's train_step
    step: str = "ok"  # ok | no_zero_grad | step_first
    sched: str = ""  # the scheduler the train_step steps per batch: steplr | cosine | misuse | ''
    stale_optimizer: bool = False  # the optimizer was built on a model that was then re-created (#24)
    eval_mode: bool = True  # evaluate() calls model.eval() and no_grad
    early_stop: bool = False
    heldout: tuple[torch.Tensor, torch.Tensor] | None = None  # rows the metric uses instead of (xva, yva)
    truth: dict[str, Any] = field(default_factory=dict)  # what the injection did, for undoing it
    twin: Case | None = None


def make_twin(base: str, style: str, seed: int) -> Case:
    """The healthy setup of `base` in `style`."""
    b = BASES[base]
    x, y = raw_data(base, seed)
    order = np.random.default_rng(seed).permutation(len(x))
    tr, va = order[: int(len(x) * 0.75)], order[int(len(x) * 0.75):]
    raw_tr, raw_va = (torch.tensor(x[i], dtype=torch.float32) for i in (tr, va))
    xtr, xva = (raw_tr / 16, raw_va / 16) if base in "AD" else standardize(raw_tr, raw_va)
    if b.task == "multiclass":
        ytr, yva = torch.tensor(y[tr]), torch.tensor(y[va])
    else:
        ytr, yva = (torch.tensor(y[i], dtype=torch.float32)[:, None] for i in (tr, va))
        if b.task == "regression":
            ytr, yva = standardize(ytr, yva)
    return Case(base, style, seed, b.task, xtr, ytr, xva, yva, raw_tr, raw_va, Net(b.sizes, cnn=b.cnn), b.lr,
                b.epochs, {"multiclass": "ce", "binary": "bce", "regression": "mse"}[b.task],
                "r2" if b.task == "regression" else "acc", use_step=style == "train_step",
                sched=b.sched if style == "train_step" else "")


# ================================================================ building the user's objects from a case
class HalfGradReLU(torch.autograd.Function):
    """A ReLU with a hand-written backward that halves the gradient (#37)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x > 0) * 0.5  # the bug: * 0.5


class CustomReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return HalfGradReLU.apply(x)


class SwapView(nn.Module):
    """(B, F) -> view(F, B) -> t(): the shape is right, the rows are mixed (#25)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[1], x.shape[0]).t()


class Detach(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.detach()


ACT_MODULE = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "badrelu": CustomReLU}
ACT_FN = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "badrelu": HalfGradReLU.apply,
          "none": lambda x: x}
OUT_MODULE = {"softmax": lambda: nn.Softmax(dim=1), "sigmoid": nn.Sigmoid, "relu": nn.ReLU}
OUT_FN = {"softmax": lambda x: F.softmax(x, dim=1), "sigmoid": torch.sigmoid, "relu": F.relu, "": lambda x: x}


def affine_layers(net: Net) -> list[nn.Module]:
    s = net.sizes
    if net.cnn:  # conv 3x3 'same' layers, then one linear head after the mean pool
        return [nn.Conv2d(s[0], s[1], 3, padding=1), nn.Conv2d(s[1], s[2], 3, padding=1), nn.Linear(s[2] * 4, s[3])]
    return [nn.Linear(a, b) for a, b in zip(s[:-1], s[1:])]


def mix_at(net: Net) -> int:
    """The layer after whose activation #25's view and #23's detach sit: the pool for the CNN, else layer 1."""
    return 1 if net.cnn else 0


def sequential(net: Net) -> nn.Sequential:
    layers = affine_layers(net)
    mods: list[nn.Module] = []
    for i, layer in enumerate(layers[:-1]):
        mods.append(layer)
        if net.bn_dropout:
            mods.append(nn.BatchNorm1d(layer.out_features))
        if net.act != "none":
            mods.append(ACT_MODULE[net.act]())
        if net.bn_dropout:
            mods.append(nn.Dropout(0.5))
        if net.cnn and i == 1:
            mods += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
        if i == mix_at(net) and net.mix:
            mods.append(SwapView())
        if i == 0 and net.frozen == "detach":
            mods.append(Detach())
    mods.append(layers[-1])
    if net.out:
        mods.append(OUT_MODULE[net.out]())
    return nn.Sequential(*mods)


class Functional(nn.Module):
    """The same network written as a custom forward with functional activations (the 'functional' style)."""

    def __init__(self, net: Net) -> None:
        super().__init__()
        self.net = net
        self.layers = nn.ModuleList(affine_layers(net))
        self.norms = nn.ModuleList(nn.BatchNorm1d(m.out_features) for m in self.layers[:-1]) if net.bn_dropout \
            else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        for i, layer in enumerate(self.layers[:-1]):
            x = layer(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = ACT_FN[net.act](x)
            if net.bn_dropout:
                x = F.dropout(x, 0.5, self.training)
            if net.cnn and i == 1:
                x = F.adaptive_avg_pool2d(x, 2).flatten(1)  # (B, C, 8, 8) -> (B, 4C)
            if i == mix_at(net) and net.mix:
                x = x.view(x.shape[1], x.shape[0]).t()  # the bug: view, not a transpose of a (F, B) tensor
            if i == 0 and net.frozen == "detach":
                x = x.detach()
        return OUT_FN[net.out](self.layers[-1](x))


def make_model(c: Case) -> nn.Module:
    net = c.net
    model = Functional(net) if c.style == "functional" else sequential(net)
    affine = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for m in affine:
            if net.init == "const":  # #20: every weight and bias 0.1
                m.weight.fill_(0.1), m.bias.fill_(0.1)
            elif net.init == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu"), m.bias.zero_()
            elif net.init.startswith("normal:"):  # #18 N(0, 5), #21 N(0, 10)
                m.weight.normal_(0, float(net.init.split(":")[1])), m.bias.zero_()
        if net.hidden_bias is not None:  # #19
            for m in affine[:-1]:
                m.bias.fill_(net.hidden_bias)
        affine[-1].bias[0] += net.final_bias  # #38
        if net.prior_bias:  # #38's repair: the output bias at the log priors (Karpathy: "init well")
            if c.task == "multiclass":
                p = torch.bincount(c.ytr, minlength=affine[-1].out_features).float().clamp_min(1) / len(c.ytr)
                affine[-1].bias.copy_(p.log())
            else:
                p = float(c.ytr.mean())
                affine[-1].bias.fill_(float(np.log(p / (1 - p))))
    if net.frozen == "requires_grad":
        affine[0].requires_grad_(False)
    return model


class Negated(nn.Module):
    """loss_fn = -CE, as the user wrote it (#26)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -self.inner(out, y)


def make_loss(c: Case) -> nn.Module:
    if c.loss == "ce":
        return nn.CrossEntropyLoss(reduction=c.reduction)
    if c.loss == "bce":
        pw = torch.tensor([c.pos_weight]) if c.pos_weight else None
        return nn.BCEWithLogitsLoss(pos_weight=pw, reduction=c.reduction)
    return nn.MSELoss(reduction=c.reduction)


@dataclass
class Built:
    model: nn.Module
    opt: torch.optim.Optimizer
    loss_fn: nn.Module  # what the doctor is given
    step: Callable | None
    sched: Any
    evaluate: Callable
    plain_loss: nn.Module  # the loss without a sign flip: for early stopping


def build(c: Case) -> Built:
    """The user's model, optimizer, loss, train_step and evaluate, freshly made and seeded."""
    torch.manual_seed(c.seed)
    model = make_model(c)

    def make_opt(params: Any) -> torch.optim.Optimizer:
        if c.opt == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.wd)
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.wd)

    opt = make_opt(model.parameters())
    if c.stale_optimizer:  # #24: the model is re-created after its optimizer
        model = make_model(c)
    plain = make_loss(c)
    sign_in_step = c.loss_sign < 0 and c.use_step and c.style == "train_step"
    loss_fn = Negated(plain) if c.loss_sign < 0 and not sign_in_step else plain
    steps = c.epochs * -(-len(c.ytr) // c.batch)
    sched = {"steplr": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=1000, gamma=0.5),
             "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=c.lr / 10),
             "misuse": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1),  # #31
             "": lambda: None}[c.sched]() if c.use_step else None
    step = None
    if c.use_step:
        def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple) -> torch.Tensor:
            *x, y = batch
            if c.step != "no_zero_grad":  # #32 forgets it
                optimizer.zero_grad()
            loss = loss_fn(model(*x), y)
            if sign_in_step:  # #26 in a train_step: the sign flip is in the step
                loss = -loss
            if c.step == "step_first":  # #33
                optimizer.step()
                loss.backward()
            else:
                loss.backward()
                optimizer.step()
            if sched is not None:
                sched.step()  # the user's scheduler, on the user's optimizer, per batch
            return loss.detach()
        step = train_step

    def evaluate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not c.eval_mode:  # #34: no model.eval(), no no_grad
            return model(x)
        was = model.training
        model.eval()
        with torch.no_grad():
            out = model(x)
        model.train(was)
        return out

    return Built(model, opt, loss_fn, step, sched, evaluate, plain)


# ================================================================ training and the metric
def score(kind: str, out: torch.Tensor, y: torch.Tensor) -> float:
    out = out.detach().float()
    if kind == "r2":
        if not bool(torch.isfinite(out).all()):
            return -1.0
        y = y.reshape(out.shape)
        return max(-1.0, 1 - float(((out - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()))
    y = y.reshape(-1).round().long()
    if kind == "acc_round":
        pred = out.reshape(-1).round()
    elif out.ndim == 2 and out.shape[1] > 1:
        pred = out.argmax(1)
    else:
        pred = (out.reshape(-1) > 0).float()
    pred = torch.where(torch.isfinite(out.reshape(len(y), -1)).all(1), pred.float(), -1.0).long()
    if kind == "bacc":
        return float(np.mean([float((pred[y == k] == k).float().mean()) for k in torch.unique(y)]))
    return float((pred == y).float().mean())


def train(c: Case) -> dict[str, float]:
    """Train the case as the user would (the style's loop, the base's epochs, seeded), then the metrics of
    the user's evaluate() on the validation rows (or the held-out rows)."""
    b = build(c)
    g = torch.Generator().manual_seed(c.seed)
    n, best, stale, best_state = len(c.ytr), float("inf"), 0, None
    for _ in range(c.epochs):
        order = torch.randperm(n, generator=g) if c.shuffle else torch.arange(n)
        for i in range(0, n, c.batch):
            idx = order[i:i + c.batch]
            if len(idx) < 2:  # BatchNorm cannot train on one row
                continue
            batch = (c.xtr[idx], c.ytr[idx])
            if b.step is not None:
                b.step(b.model, b.opt, batch)
            else:
                b.opt.zero_grad()
                b.loss_fn(b.model(batch[0]), batch[1]).backward()
                b.opt.step()
        if c.early_stop:  # #36's repair: keep the weights of the best validation loss
            with torch.no_grad():
                val = float(b.plain_loss(b.evaluate(b.model, c.xva), c.yva))
            if val < best:
                best, stale, best_state = val, 0, copy.deepcopy(b.model.state_dict())
            elif (stale := stale + 1) >= PATIENCE:
                break
    if best_state is not None:
        b.model.load_state_dict(best_state)
    x, y = c.heldout or (c.xva, c.yva)
    out = b.evaluate(b.model, x)
    kinds = [c.metric] if c.task == "regression" or c.metric == "acc_round" else ["acc", "bacc"]
    return {k: score(k, out, y) for k in kinds}


# ================================================================ the faults
# Each injection mutates a copy of the healthy twin (catalogue column "Injection"); each repair mutates a copy
# of the faulty case, given the warn/fail verdicts that name the family (their evidence), and returns where its
# parameter came from: evidence | rule | undo | twin (= the twin's setup).
def rng(c: Case, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([c.seed, salt])


def change(source: str = "", net: dict[str, Any] | None = None, **fields: Any) -> Callable[..., str]:
    """An injection, or a repair (returning `source`), that sets fields of the case and of its Net."""
    def apply(c: Case, verdicts: Any = None) -> str:
        for k, value in fields.items():
            setattr(c, k, value)
        if net:
            c.net = replace(c.net, **net)
        return source
    return apply


def to_twin(c: Case, verdicts: list) -> str:  # the repair undoes the injection: the twin's setup
    return "twin"


def evidence_number(ev: Any, *words: str) -> float | None:
    """The first number in the (nested) evidence whose key holds every word, e.g. ('suggest', 'lr')."""
    if isinstance(ev, list):
        return next((n for e in ev if (n := evidence_number(e, *words)) is not None), None)
    if isinstance(ev, dict):
        for k, v in ev.items():
            if all(w in str(k).lower() for w in words) and isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
            found = evidence_number(v, *words)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------- data faults (#1-#12)
def unnormalized(c: Case) -> None:
    """#1: T and W with their raw features (scales ~1e-3 to 4e3); K, R: columns scaled by 1e-2 .. 1e3."""
    if c.base in "TW":
        c.xtr, c.xva = c.raw_tr.clone(), c.raw_va.clone()
    else:
        s = torch.logspace(-2, 3, c.xtr.shape[1])
        c.xtr, c.xva = c.xtr * s + s, c.xva * s + s


def restandardize(c: Case, verdicts: list) -> str:
    c.xtr, c.xva = standardize(c.xtr, c.xva)
    return "rule"


def double_norm(c: Case) -> None:  # #2: x / 16 (or standardized) then / 255 again
    c.xtr, c.xva = c.xtr / 255, c.xva / 255


def nan_cells(c: Case) -> None:  # #3: 1% of the training cells NaN
    mask = torch.from_numpy(rng(c, 3).random(tuple(c.xtr.shape)) < 0.01)
    c.xtr = c.xtr.masked_fill(mask, float("nan"))


def impute(c: Case, verdicts: list) -> str:  # #3's fix "clean/impute": every NaN cell -> its column's mean
    c.xtr = torch.where(torch.isnan(c.xtr), torch.nanmean(c.xtr, 0, keepdim=True), c.xtr)
    return "rule"


def permute_labels(c: Case) -> None:  # #4
    c.ytr = c.ytr[torch.from_numpy(rng(c, 4).permutation(len(c.ytr)))]


def flip(c: Case, y: torch.Tensor, r: np.random.Generator) -> torch.Tensor:
    """Each label changed to another class, uniformly."""
    if c.task == "binary":
        return 1 - y
    k = int(c.twin.ytr.max()) + 1
    return (y + torch.from_numpy(r.integers(1, k, len(y)))) % k


def label_noise(c: Case) -> None:  # #5: 30% of the training labels flipped
    r = rng(c, 5)
    rows = torch.from_numpy(r.choice(len(c.ytr), int(0.3 * len(c.ytr)), replace=False))
    c.ytr = c.ytr.clone()
    c.ytr[rows] = flip(c, c.ytr[rows], r)


def conflicting(c: Case) -> None:  # #6: 5% of the rows duplicated with flipped labels
    r = rng(c, 6)
    rows = torch.from_numpy(r.choice(len(c.ytr), int(0.05 * len(c.ytr)), replace=False))
    c.xtr, c.ytr = torch.cat([c.xtr, c.xtr[rows]]), torch.cat([c.ytr, flip(c, c.ytr[rows], r)])


def drop_conflicts(c: Case, verdicts: list) -> str:
    """#6's fix: drop every row whose inputs repeat another's with a different label."""
    keys = [hash(r.numpy().tobytes()) for r in c.xtr.reshape(len(c.xtr), -1)]
    labels: dict[int, set] = collections.defaultdict(set)
    for k, y in zip(keys, c.ytr.reshape(len(c.ytr), -1).tolist()):
        labels[k].add(tuple(y))
    keep = torch.tensor([len(labels[k]) == 1 for k in keys])
    c.xtr, c.ytr = c.xtr[keep], c.ytr[keep]
    return "rule"


def overlap(c: Case) -> None:  # #7: 20% of the validation rows copied into training
    rows = torch.from_numpy(rng(c, 7).choice(len(c.yva), int(0.2 * len(c.yva)), replace=False))
    c.xtr, c.ytr = torch.cat([c.xtr, c.xva[rows]]), torch.cat([c.ytr, c.yva[rows]])


def dedupe(c: Case, verdicts: list) -> str:  # #7's fix "re-split": no training row that is also a validation row
    val = {r.numpy().tobytes() for r in c.xva.reshape(len(c.xva), -1)}
    keep = torch.tensor([r.numpy().tobytes() not in val for r in c.xtr.reshape(len(c.xtr), -1)])
    c.xtr, c.ytr = c.xtr[keep], c.ytr[keep]
    return "rule"


def leak(c: Case) -> None:  # #8: a column y + noise, at a seeded position
    r = rng(c, 8)
    j = int(r.integers(c.xtr.shape[1] + 1))
    c.truth["column"] = j
    for name in ("tr", "va"):
        x, y = getattr(c, "x" + name), getattr(c, "y" + name)
        col = y.reshape(-1, 1).float() + 0.1 * torch.from_numpy(r.standard_normal((len(y), 1))).float()
        setattr(c, "x" + name, torch.cat([x[:, :j], col, x[:, j:]], 1))
    c.net = replace(c.net, sizes=(c.net.sizes[0] + 1, *c.net.sizes[1:]))


def drop_leak(c: Case, verdicts: list) -> str:
    named = [(v.evidence.get("best") or {}).get("column", v.evidence.get("column")) for v in verdicts
             if isinstance(v.evidence, dict)]
    j = next((j for j in named if j is not None), None)
    src = "evidence" if isinstance(j, int) and 0 <= j < c.xtr.shape[1] else "undo"
    j = j if src == "evidence" else c.truth["column"]
    c.xtr, c.xva = (torch.cat([x[:, :j], x[:, j + 1:]], 1) for x in (c.xtr, c.xva))
    c.net = replace(c.net, sizes=(c.net.sizes[0] - 1, *c.net.sizes[1:]))
    return src


def imbalance(c: Case) -> None:
    """#9: the minority class kept at 1/50 of the majority (train and val); scored by balanced accuracy on
    the twin's validation rows."""
    c.heldout, c.metric = (c.xva, c.yva), "bacc"
    minority = int(c.ytr.float().mean() < 0.5)  # T's smaller class is 0
    for name in ("tr", "va"):
        x, y = getattr(c, "x" + name), getattr(c, "y" + name).reshape(-1)
        pos = torch.nonzero(y == minority).reshape(-1)
        keep_pos = pos[torch.from_numpy(rng(c, 9).permutation(len(pos)))[: max(2, int((y != minority).sum()) // 50)]]
        keep = torch.sort(torch.cat([torch.nonzero(y != minority).reshape(-1), keep_pos])).values
        setattr(c, "x" + name, x[keep])
        setattr(c, "y" + name, getattr(c, "y" + name)[keep])


def class_weights(c: Case, verdicts: list) -> str:  # #9's fix: weight the positives by n_neg / n_pos
    p = float(c.ytr.mean())
    c.pos_weight = (1 - p) / p
    return "rule"


def sort_by_label(c: Case) -> None:  # #10: sorted by label, shuffle=False (the doctor gets the DataLoader)
    order = torch.argsort(c.ytr.reshape(-1), stable=True)
    c.xtr, c.ytr, c.shuffle, c.loader = c.xtr[order], c.ytr[order], False, True


def val_unscaled(c: Case) -> None:  # #11: the validation inputs skip the preprocessing
    c.xva = c.raw_va.clone()


def outliers(c: Case) -> None:  # #12: 1% of the training rows x 1e3
    rows = torch.from_numpy(rng(c, 12).choice(len(c.ytr), max(1, len(c.ytr) // 100), replace=False))
    c.xtr = c.xtr.clone()
    c.xtr[rows] *= 1e3


def drop_outliers(c: Case, verdicts: list) -> str:
    """#12's fix "clip/remove": drop rows with a robust z (median, 1.4826 MAD; the std where MAD = 0) > 50."""
    med = c.xtr.median(0).values
    mad = 1.4826 * (c.xtr - med).abs().median(0).values
    scale = torch.where(mad > 0, mad, c.xtr.std(0)).clamp_min(1e-12)
    keep = ((c.xtr - med).abs() / scale).amax(1) <= 50
    c.xtr, c.ytr = c.xtr[keep], c.ytr[keep]
    return "rule"


# ---------------------------------------------------------------- output, loss and model faults (#13-#25)
def class_index_mse(c: Case) -> None:  # #15: MSELoss on the class index as a float, one output
    c.loss, c.metric = "mse", "acc_round"
    c.ytr, c.yva = c.ytr.float()[:, None], c.yva.float()[:, None]
    c.net = replace(c.net, sizes=(*c.net.sizes[:-1], 1))


def deep(layers: int, **kw: Any) -> Callable[[Case], None]:
    """#17, #21: `layers` linear layers at the base's hidden width."""
    def inject(c: Case) -> None:
        s = c.net.sizes
        c.net = replace(c.net, sizes=(s[0], *[s[1]] * (layers - 1), s[-1]), **kw)
    return inject


def frozen(c: Case) -> None:  # #23: requires_grad=False on layer 1; the functional style .detach()es after it
    c.net = replace(c.net, frozen="detach" if c.style == "functional" else "requires_grad")


# ---------------------------------------------------------------- optimization faults (#26-#33)
def sum_loss(c: Case) -> None:  # #27
    c.opt, c.lr, c.momentum, c.batch, c.reduction = "sgd", 50 * c.lr, 0.9, 256, "sum"


def lr_from_evidence(c: Case, verdicts: list) -> str:  # #29, #30: the suggested rate, the same optimizer
    lr = evidence_number([v.evidence for v in verdicts], "suggest", "lr")
    if lr is None or not 0 < lr < 10:
        return "twin"
    c.lr = lr
    return "evidence"


def wd_from_evidence(c: Case, verdicts: list) -> str:  # #28
    wd = evidence_number([v.evidence for v in verdicts], "suggest", "decay")
    if wd is None or not 0 <= wd < 1:
        return "twin"
    c.wd = wd
    return "evidence"


# ---------------------------------------------------------------- evaluation and generalization (#34-#38)
def val_is_train(c: Case) -> None:  # #35
    c.xva, c.yva = c.xtr, c.ytr


def few_rows(c: Case) -> None:  # #36: 100 training rows, a 1024-wide MLP, 300 epochs
    rows = torch.from_numpy(rng(c, 36).permutation(len(c.ytr))[:100])
    c.xtr, c.ytr, c.epochs = c.xtr[rows], c.ytr[rows], 300
    c.net = replace(c.net, sizes=(c.net.sizes[0], 1024, c.net.sizes[-1]))


def small_data_twin(c: Case) -> Case:
    """#36's reference: the base MLP on the same 100 rows, early stopped."""
    return replace(c, net=c.twin.net, early_stop=True)


@dataclass(frozen=True)
class Family:
    """One fault family: its slug (nnrecipe.checks.faults), the bases it is planted on, how."""
    slug: str
    bases: str
    inject: Callable[[Case], None]
    repair: Callable[[Case, Any], str]
    harm: str = "hurts"  # hurts | inflates (the measured metric) | '' (may be silent in these setups)
    reference: Callable[[Case], Case] | None = None  # the case whose trained metric "fixed" is held to


FAMILIES = [  # in the catalogue's order: family number = position + 1
    # data (#1-#12)
    Family("unnormalized-inputs", "TWKR", unnormalized, restandardize),
    Family("double-normalization", "ADTW", double_norm, to_twin),
    Family("nonfinite-data", "ACDT", nan_cells, impute),
    Family("labels-misaligned", "ABCT", permute_labels, to_twin),
    Family("label-noise", "ABTK", label_noise, to_twin),  # the fix "relabel": the true labels back
    Family("conflicting-duplicates", "ABTK", conflicting, drop_conflicts, ""),
    Family("train-test-overlap", "ACRK", overlap, dedupe, "inflates"),
    Family("target-leakage", "CKRT", leak, drop_leak, "inflates"),
    Family("class-imbalance", "KTB", imbalance, class_weights),
    Family("unshuffled-batches", "ADKW", sort_by_label, to_twin),
    # #11 not on A, D (a ReLU net is nearly scale-equivariant: pixels / 1, not / 16, keep the argmax), nor K
    # (its raw features are already near standard)
    Family("val-preprocessed-differently", "TWRC", val_unscaled, to_twin),
    Family("outliers", "RKF", outliers, drop_outliers),
    # softmax before CrossEntropyLoss slows training (a loss floor, small gradients); easy data still trains
    # outputs and losses (#13-#16)
    Family("double-softmax", "ADW", change(net={"out": "softmax"}), to_twin, ""),
    Family("sigmoid-before-logits-loss", "BTK", change(net={"out": "sigmoid"}), to_twin),
    Family("regression-loss-for-classes", "ADW", class_index_mse, to_twin),
    Family("output-range", "CRF", change(net={"out": "relu"}), to_twin),
    # initialization and architecture (#17-#25)
    Family("vanishing-gradients", "ABTK", deep(10, act="sigmoid"), change("undo", net={"act": "relu", "init": "he"})),
    Family("saturated-units", "BATD", change(net={"act": "tanh", "init": "normal:5"}),
           change("undo", net={"init": ""})),
    Family("dying-relu", "ABTD", change(net={"hidden_bias": -5.0}), to_twin),
    Family("constant-init", "ABWD", change(net={"init": "const"}), to_twin),
    Family("exploding-init", "ABTK", deep(8, init="normal:10"), change("undo", net={"init": "he"})),
    Family("no-nonlinearity", "BRFK", change(net={"act": "none"}), to_twin),
    Family("frozen-layer", "ADKT", frozen, to_twin),
    Family("optimizer-wrong-params", "ABCT", change(stale_optimizer=True), to_twin),
    Family("batch-mixing", "DABW", change(net={"mix": True}), to_twin),
    # optimization (#26-#33)
    Family("flipped-loss-sign", "ABCT", change(loss_sign=-1.0), to_twin),
    # #27: SGD with momentum at a rate tuned for the mean (50 x the base's Adam rate), batch 256
    Family("loss-sum-not-mean", "ABCT", sum_loss, change("undo", reduction="mean")),
    Family("over-regularization", "ABCT", change(wd=1.0), wd_from_evidence),
    Family("lr-too-high", "ABCT", change(opt="sgd", lr=10.0), lr_from_evidence),
    Family("lr-too-low", "ABCT", change(lr=1e-7), lr_from_evidence),
    # #31-#33 live in a user's train_step: every style gets one (scheduler= only in the 'train_step' style)
    Family("scheduler-misuse", "ABCT", change(use_step=True, sched="misuse"), to_twin),
    Family("missing-zero-grad", "ABCT", change(use_step=True, step="no_zero_grad"), to_twin),
    Family("step-before-backward", "ABCT", change(use_step=True, step="step_first"), to_twin),
    # evaluation and generalization (#34-#38). #34's twin is the BatchNorm + dropout model evaluated in eval
    # mode: those layers are the setup, the missing eval() is the fault
    Family("eval-in-train-mode", "ABCR", change(net={"bn_dropout": True}, eval_mode=False),
           change("undo", eval_mode=True), reference=lambda c: replace(c, eval_mode=True)),
    Family("val-is-train", "ABCT", val_is_train, to_twin, "inflates"),
    Family("overfitting", "ACRT", few_rows, change("rule", early_stop=True),
           reference=small_data_twin),
    # #37: a constant gradient scale is nearly invisible to Adam, so the fault may not hurt
    Family("wrong-custom-backward", "ABCT", change(net={"act": "badrelu"}), to_twin, ""),
    Family("wrong-init-loss", "ADTK", change(net={"final_bias": 10.0}),
           change("undo", net={"final_bias": 0.0, "prior_bias": True}), ""),
]


# ================================================================ one run
@functools.lru_cache(maxsize=1)
def doctor_params() -> frozenset[str]:
    return frozenset(inspect.signature(doctor).parameters)


def run_doctor(c: Case) -> tuple[list[Any], float]:
    b = build(c)
    data = DataLoader(TensorDataset(c.xtr, c.ytr), batch_size=c.batch, shuffle=c.shuffle) if c.loader \
        else (c.xtr, c.ytr)
    kw = {"loss_fn": b.loss_fn, "optimizer": b.opt, "val_data": (c.xva, c.yva), "seed": c.seed,
          "evaluate": b.evaluate, "train_step": b.step,
          "scheduler": b.sched if c.style == "train_step" else None}
    kw = {k: v for k, v in kw.items() if v is not None and k in doctor_params()}
    started = time.perf_counter()
    diagnosis = doctor(b.model, data, **kw)
    return list(diagnosis), time.perf_counter() - started


def verdict_dict(v: Any) -> dict[str, Any]:
    return {"id": v.id, "status": v.status, "fault": getattr(v, "fault", ""),
            "consistent_with": list(getattr(v, "consistent_with", ())), "summary": v.summary}


def run_twin(task: tuple) -> dict[str, Any]:
    base, style, seed, opts = task
    rec: dict[str, Any] = {"kind": "twin", "base": base, "style": style, "seed": seed, "error": None}
    c = make_twin(base, style, seed)
    try:
        verdicts, rec["doctor_seconds"] = run_doctor(c)
        rec["verdicts"] = [verdict_dict(v) for v in verdicts]
        rec["alarms"] = [v for v in rec["verdicts"] if v["status"] in ALARM]
    except Exception as e:  # a false alarm too; the twin is still trained for the faults' reference
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["traceback"] = traceback.format_exc(limit=4)
    if opts["fix"]:
        rec["metrics"] = train(c)
    return rec


def run_fault(task: tuple) -> dict[str, Any]:
    number, base, style, seed, twin_metrics, opts = task
    fam = FAMILIES[number - 1]
    rec: dict[str, Any] = {"kind": "fault", "family": number, "slug": fam.slug, "base": base, "style": style,
                           "seed": seed, "detected": False, "right": False, "fixed": None, "error": None,
                           "warnings": [], "named": [], "repair": None}
    stage = "injection"
    try:
        twin = make_twin(base, style, seed)
        case = copy.deepcopy(twin)
        case.twin = twin
        fam.inject(case)
        stage = "doctor"
        verdicts, rec["doctor_seconds"] = run_doctor(case)
        rec["verdicts"] = [verdict_dict(v) for v in verdicts]
        alarms = [v for v in verdicts if v.status in ALARM]
        mine = sorted((v for v in alarms if v.status != "error" and getattr(v, "fault", "") == fam.slug),
                      key=lambda v: v.status != "fail")
        rec["detected"], rec["right"] = bool(alarms), bool(mine)
        rec["named"] = sorted({v.fault for v in alarms if getattr(v, "fault", "") not in ("", fam.slug)})
        if mine:
            rec["evidence"] = json.loads(json.dumps(mine[0].evidence, default=str))
        if not opts["fix"]:
            return rec
        stage = "training"
        reference = train(fam.reference(case)) if fam.reference else twin_metrics
        rec["metrics_faulty"] = faulty = train(case)
        kind = case.metric if case.metric in faulty else next(iter(faulty))
        ref_kind = "acc" if kind == "acc_round" else kind
        rec["metric_kind"], rec["metric_twin"] = kind, reference[ref_kind]
        harmless = {"hurts": faulty[kind] > reference[ref_kind] - HARM,
                    "inflates": faulty[kind] <= reference[ref_kind]}.get(fam.harm, False)
        if harmless:  # the sanity check of the injection: reported, never fatal
            rec["warnings"].append(f"{kind} {faulty[kind]:.3f} as planted vs {reference[ref_kind]:.3f} healthy")
        if not (mine or opts["assume_right"]):
            return rec
        stage = "repair"
        repaired = copy.deepcopy(case)
        rec["repair"] = fam.repair(repaired, mine)  # the verdicts naming the family: their evidence
        if rec["repair"] == "twin" and not fam.reference:  # the repair gives back the twin's setup
            fixed = reference
        else:
            fixed = train(twin if rec["repair"] == "twin" else repaired)
        rkind = next(k for k in (kind, ref_kind) if k in fixed)
        rec["metric_fixed"] = fixed[rkind]
        gap = fixed[rkind] - reference[ref_kind]
        rec["fixed"] = bool(abs(gap) <= TOLERANCE if fam.harm == "inflates" else gap >= -TOLERANCE) and bool(mine)
        if opts["assume_right"]:
            rec["fixable"] = bool(abs(gap) <= TOLERANCE if fam.harm == "inflates" else gap >= -TOLERANCE)
    except Exception as e:
        rec["error"] = f"{stage}: {type(e).__name__}: {e}"
        rec["traceback"] = traceback.format_exc(limit=4)
    return rec


def init_worker() -> None:
    torch.set_num_threads(1)
    logging.getLogger("nnrecipe").setLevel(logging.ERROR)


def run_all(fn: Callable, tasks: list, jobs: int):
    if jobs <= 1:
        yield from map(fn, tasks)
        return
    with multiprocessing.get_context("fork").Pool(jobs, initializer=init_worker) as pool:
        yield from pool.imap(fn, tasks, chunksize=1)


# ================================================================ the report
def pct(k: int, n: int) -> str:
    return f"{k:4d} {k / n:4.0%}" if n else f"{k:4d}   - "


def family_number(token: str) -> int:
    if token.isdigit() and 1 <= int(token) <= len(FAMILIES):
        return int(token)
    slugs = [f.slug for f in FAMILIES]
    if token in slugs:
        return slugs.index(token) + 1
    raise SystemExit(f"--families: {token!r} is neither 1..{len(FAMILIES)} nor a slug ({', '.join(slugs)})")


def report(twins: list[dict], faults: list[dict], args: argparse.Namespace) -> None:
    fam_runs: dict[int, list[dict]] = collections.defaultdict(list)
    combos: dict[tuple, list[dict]] = collections.defaultdict(list)  # family x base x style: its seeds
    for r in faults:
        fam_runs[r["family"]].append(r)
        combos[(r["family"], r["base"], r["style"])].append(r)
    print(f"\n{'#':>3}  {'family':<29} {'cases':>5}  {'detected':>9}  {'right':>9}  {'fixed':>9}  ev  "
          "most often named instead (warn/fail verdicts naming another family)")
    for number, runs in sorted(fam_runs.items()):
        n, count = len(runs), lambda key: sum(bool(r[key]) for r in runs)  # noqa: B023
        ev = sum(bool(r["fixed"]) and r["repair"] == "evidence" for r in runs)
        wrong = collections.Counter(s for r in runs for s in r["named"]).most_common(3)
        print(f"{number:3d}  {FAMILIES[number - 1].slug:<29} {n:5d}  {pct(count('detected'), n)}  "
              f"{pct(count('right'), n)}  {'       -' if args.no_fix else pct(count('fixed'), n)}  {ev:2d}  "
              f"{', '.join(f'{s} x{k}' for s, k in wrong)}")
    runs = [r for rs in fam_runs.values() for r in rs]
    for key in ("right", "fixed")[: 1 if args.no_fix else 2]:
        if runs:
            combo = sum(sum(bool(r[key]) for r in rs) * 2 > len(rs) for rs in combos.values())
            per_run = sum(bool(r[key]) for r in runs)
            print(f"{'right diagnosis' if key == 'right' else 'fixed':<16} {combo} / {len(combos)} family x base x "
                  f"style combinations ({combo / len(combos):.1%}; {key} on most seeds); per run {per_run} / "
                  f"{len(runs)} ({per_run / len(runs):.1%})")
    if args.assume_right:
        bad = sorted({f"#{r['family']} {r['base']}" for r in runs if r.get("fixable") is False})
        print(f"--assume-right: the repair restores the twin's metric in {sum(bool(r.get('fixable')) for r in runs)}"
              f" / {len(runs)} runs; not in: {', '.join(bad) or '-'}")
    alarmed = [t for t in twins if t["error"] or t.get("alarms")]
    if twins:
        print(f"false alarms on healthy twins: {len(alarmed)} / {len(twins)} runs ({len(alarmed) / len(twins):.1%})")
    seconds = [r["doctor_seconds"] for r in [*twins, *runs] if "doctor_seconds" in r]
    if seconds:
        print(f"doctor: {np.mean(seconds):.2f} s per call (mean of {len(seconds)}, max {max(seconds):.2f} s)")
    print(f"runs that raised: {sum(bool(r['error']) for r in [*twins, *runs])}")
    quiet: dict[tuple, list[dict]] = collections.defaultdict(list)
    for r in runs:
        if r["warnings"]:
            quiet[(r["family"], r["base"])].append(r)
    if quiet:
        print("\nwarning: planted faults that did not hurt (#7, #8, #35: inflate) the validation metric by "
              f"{HARM} (family on base: runs, first):")
        for (number, base), rs in sorted(quiet.items()):
            total = sum(r["base"] == base for r in fam_runs[number])
            print(f"  #{number} {FAMILIES[number - 1].slug} on {base}: {len(rs)} / {total}, {rs[0]['warnings'][0]}")
    if alarmed:
        print("\nfalse alarms (twin base/style/seed: check id [status] fault: summary):")
        for t in alarmed:
            where = f"  {t['base']}/{t['style']}/{t['seed']}:"
            if t["error"]:
                print(f"{where} EXCEPTION {t['error']}")
            for v in t.get("alarms", []):
                print(f"{where} {v['id']} [{v['status']}] {v['fault'] or '-'}: {v['summary'][:150]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=None, help="numbers 1-38 or slugs (default: all)")
    p.add_argument("--bases", nargs="+", default=None, choices=sorted(BASES), help="default: all")
    p.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1, help="worker processes, one torch thread each")
    p.add_argument("--no-fix", action="store_true", help="only the doctor calls: no training, no repairs")
    p.add_argument("--assume-right", action="store_true",
                   help="harness self-check: apply every repair even when the doctor missed (column 'fixed' "
                        "still needs 'right')")
    p.add_argument("--json", default=None, help="write every run's record here")
    p.add_argument("--holdout", action="store_true",
                   help=f"plant every family on the held-out bases {', '.join(HELD_OUT)} of its tasks instead of its "
                        "own (iris, make_hastie_10_2, make_friedman3: no rule was looked at on them)")
    args = p.parse_args(argv)
    init_worker()
    # 'unknown' is no fault to plant; 'simpler-model-wins' is judged after training, on the test rows; the
    # setups that break the loss or the forward (labels past the outputs, shapes the loss broadcasts, a forward
    # that raises) are lint's, outside the catalogue: tests/checks/test_doctor_styles.py plants them
    expected = [s for s in FAULTS if s not in ("unknown", "simpler-model-wins", "label-range", "shape-mismatch",
                                               "forward-fails")]
    if [f.slug for f in FAMILIES] != expected:
        print(f"warning: nnrecipe.checks.faults.FAULTS differs from this catalogue: "
              f"{sorted(set(expected) ^ {f.slug for f in FAMILIES})}")
    numbers = sorted({family_number(t) for t in args.families}) if args.families else list(range(1, 39))
    bases = set(args.bases or (HELD_OUT if args.holdout else set(BASES) - set(HELD_OUT)))

    def family_bases(n: int) -> str:
        fam = FAMILIES[n - 1]
        if not args.holdout:
            return fam.bases
        tasks = {BASES[b].task for b in fam.bases if not BASES[b].cnn}
        return "".join(b for b in HELD_OUT if BASES[b].task in tasks)

    opts = {"fix": not args.no_fix, "assume_right": args.assume_right}

    print(f"doctor on planted faults: families {numbers[0] if len(numbers) == 1 else numbers}, bases "
          f"{''.join(sorted(bases))}, styles {args.styles}, seeds {args.seeds}, jobs {args.jobs}")
    print(f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPU cores, torch threads 1 per job; "
          f"python {platform.python_version()}, torch {torch.__version__}, nnrecipe {nnrecipe.__version__}; "
          f"doctor accepts scheduler=: {'scheduler' in doctor_params()}")
    started = time.perf_counter()
    twin_tasks = [(b, s, seed, opts) for b in sorted(bases) for s in args.styles for seed in args.seeds]
    twins, twin_metrics = [], {}
    for rec in run_all(run_twin, twin_tasks, args.jobs):
        if rec["error"]:
            print(f"  twin {rec['base']}/{rec['style']}/{rec['seed']}: ERROR {rec['error']}")
        twin_metrics[(rec["base"], rec["style"], rec["seed"])] = rec.get("metrics")
        twins.append(rec)
    if opts["fix"]:
        print("healthy twins' validation metric (mean over seeds and styles): " + ", ".join(
            f"{b} {np.mean([next(iter(m.values())) for k, m in twin_metrics.items() if k[0] == b and m]):.3f}"
            for b in sorted(bases)))
    print(f"twins: {len(twins)} runs in {time.perf_counter() - started:.0f} s", flush=True)

    tasks = [(n, b, s, seed, twin_metrics.get((b, s, seed)), opts) for n in numbers for b in family_bases(n)
             if b in bases for s in args.styles for seed in args.seeds]
    faults: list[dict] = []
    per_family: collections.Counter[int] = collections.Counter(t[0] for t in tasks)
    for rec in run_all(run_fault, tasks, args.jobs):
        faults.append(rec)
        where = f"  #{rec['family']} {rec['slug']} {rec['base']}/{rec['style']}/{rec['seed']}:"
        if rec["error"]:
            print(f"{where} ERROR {rec['error']}")
        per_family[rec["family"]] -= 1
        if not per_family[rec["family"]]:
            done = [r for r in faults if r["family"] == rec["family"]]
            fixed = "" if args.no_fix else f", fixed {sum(bool(r['fixed']) for r in done)}"
            print(f"#{rec['family']:<2} {rec['slug']}: {len(done)} runs, right {sum(r['right'] for r in done)}{fixed}"
                  f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    report(twins, faults, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv[1:], "torch": torch.__version__, "nnrecipe": nnrecipe.__version__,
                       "platform": platform.platform(), "cpus": os.cpu_count(), "twins": twins, "faults": faults},
                      f, indent=1, default=str)
        print(f"records written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
