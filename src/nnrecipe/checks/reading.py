"""Read the setup, not only its symptoms: the faults that the model, the loss, the optimizer and the
schedule show as written, before any training. Part of the lint (id "lint"); each finding names its
fault family (checks/faults.py). Everything runs on copies under no_grad, or on the loss function alone.

- constant init: the hidden units of a layer start identical (every row of its weight equal), so they get
  identical gradients and never differ (symmetry is never broken; Goodfellow et al., Deep Learning 8.4);
- no nonlinearity, as the forward runs: a Linear/Conv layer whose input is, value for value, the output of
  the layer before it (hooks see functional code, `F.relu` or none, that the nn.Sequential lint cannot);
- the loss's sign: a loss that scores wrong predictions below right ones is minimized away from the labels;
- the loss's reduction: a loss summed over the batch makes plain SGD's step grow with the batch size;
- weight decay against the data loss: a decay term larger than the loss itself pulls the weights to 0;
- class indices as float targets of a regression loss (one output, targets 0..K-1 in whole numbers);
- a learning-rate schedule that, stepped as written, drives the rate to nothing within a few steps;
- tanh/sigmoid inputs saturated at init, wherever the forward calls them (a torch function mode sees
  modules and functional calls alike)."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd
from torch.overrides import TorchFunctionMode

from ..steps import main_output
from .setup import Setup, finite_rows, follow
from .verdict import Verdict

ROWS = 64
KARPATHY = "Karpathy (2018), 'most common neural net mistakes'"
# constant init: the rows of a weight agree to this relative tolerance (random inits differ by ~1/sqrt(fan_in))
SAME_ROWS = 1e-6
# weight decay: warn when the L2 term wd/2 * sum(|w|^2) over the decayed weights is at least the data loss at
# init and wd >= MIN_DECAY (healthy: wd 1e-4..1e-2 on the bases' MLPs gives a term 0.0002-0.2 of the loss; wd
# 1.0 gives 10-20x). Decoupled decay (AdamW) shrinks the weights by lr * wd per step: warn at >= 1e-3 per
# step (the weights lose half their size in under 700 steps, before most runs have fit anything).
MIN_DECAY = 0.05
DECOUPLED_PER_STEP = 1e-3
# schedule: the rate falls below SCHEDULE_FLOOR of its value within SCHEDULE_STEPS steps. Healthy schedules
# (StepLR every 30 epochs, cosine over the run, 1cycle, warm-up) keep >= 10% over their first 8 steps;
# StepLR(step_size=1, gamma=0.1) stepped per batch is at 1e-8 after 8.
SCHEDULE_STEPS = 8
SCHEDULE_FLOOR = 1e-4
SCHEDULE_FIX = ("step a per-epoch schedule once per epoch (after the epoch's batches), or set its period in batches "
                "(step_size, T_max, total_steps)")
# saturation (DeepDiagnosis): more than SAT_SHARE of a tanh/sigmoid's inputs at |z| >= SAT_Z, at init
SAT_Z = 5.0
SAT_SHARE = 0.5
# class indices as floats: at most this many whole-number target values 0..K-1
MAX_CLASSES = 20


def read_setup(setup: Setup) -> list[Verdict]:
    """Every finding of this module on `setup` (an empty list when it finds nothing)."""
    found = [*constant_init(setup.model), *schedule(setup), *weight_decay(setup)]
    rows = _rows(setup)
    if rows is None:
        return found
    x, y = rows
    found += linear_chain(setup.model, x) + saturation(setup.model, x)
    try:
        with torch.no_grad():
            out = main_output(copy.deepcopy(setup.model).eval()(*x)).float()
    except Exception:  # the lint's own forward reports a model that fails on the data
        return found
    if setup.loss_fn is not None and out.shape[0] == len(y):
        found += loss_sign(setup, out, y) + loss_reduction(setup, out, y)
    found += classes_as_floats(setup, out, y)
    return found


def _rows(setup: Setup) -> tuple[tuple[torch.Tensor, ...], torch.Tensor] | None:
    keep = finite_rows(*setup.x, setup.y)
    if int(keep.sum()) < 4:
        return None
    x = tuple(t[keep][:ROWS] for t in setup.x)
    return x, setup.y[keep][:ROWS]


# ---------------------------------------------------------------- the model as initialised
def _weighted(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n or "model", m) for n, m in model.named_modules() if isinstance(m, nn.Linear | _ConvNd)]


def constant_init(model: nn.Module) -> list[Verdict]:
    """Layers whose output units start identical: every row of the weight (one per unit) the same."""
    same = []
    layers = _weighted(model)
    for name, m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1).float()
        if w.shape[0] < 2 or not bool(torch.isfinite(w).all()):
            continue
        scale = float(w.abs().max())
        if scale > 0 and float((w - w[0]).abs().max()) <= SAME_ROWS * scale:
            same.append(name)
        elif scale == 0 and len(layers) > 1 and m is not layers[-1][1]:
            same.append(name)  # an all-zero hidden layer: every unit the same (0), every gradient the same
    if not same:
        return []
    return [Verdict("lint", "identical units", "fail",
                    f"the units of {', '.join(same[:4])} start identical (every row of the weight is the same): "
                    "they get the same gradient and stay identical, so the layer acts as one unit",
                    {"layers": same}, "initialise the weights randomly (the default init, or nn.init.kaiming_"
                    "normal_ / xavier_uniform_); a constant fills only biases",
                    "Goodfellow, Bengio and Courville, Deep Learning, 8.4 (break the symmetry)",
                    fault="constant-init")]


def linear_chain(model: nn.Module, x: tuple[torch.Tensor, ...]) -> list[Verdict]:
    """Linear/Conv layers that, as the forward runs (eval mode), take as input exactly the previous one's
    output: nothing nonlinear happened between them, whatever code the forward is."""
    probe = copy.deepcopy(model).eval()
    names = {id(m): n for n, m in _weighted(probe)}
    calls: list[tuple[str, torch.Tensor, torch.Tensor]] = []

    def hook(m: nn.Module, args: tuple[Any, ...], out: Any) -> None:
        if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor):
            calls.append((names[id(m)], args[0].detach().clone(), out.detach().clone()))

    handles = [m.register_forward_hook(hook) for _, m in _weighted(probe)]
    try:
        with torch.no_grad():
            probe(*x)
    except Exception:
        return []
    finally:
        for h in handles:
            h.remove()
    pairs = []
    for (a, _, out), (b, inp, _) in zip(calls, calls[1:]):
        if inp.numel() == out.numel() and inp.numel() > 0 and torch.equal(inp.reshape(-1), out.reshape(-1)) \
                and bool((out < 0).any()):  # a ReLU would have zeroed the negatives
            pairs.append(f"{a} -> {b}")
    if not pairs:
        return []
    return [Verdict("lint", "nonlinearity", "warn",
                    f"no activation between {', '.join(pairs)}: the forward feeds one layer's output, unchanged, "
                    "into the next", {"pairs": pairs, "seen_by": "forward hooks"},
                    "two linear layers in a row compose to one linear map: apply an activation (F.relu, nn.ReLU) "
                    "between them", "Lavanya Shukla, 'How To Design Deep Learning Architecture' (activations, M4)",
                    fault="no-nonlinearity")]


class _Squashes(TorchFunctionMode):
    """Every tanh/sigmoid input of a forward, whether a module (nn.Tanh calls torch.tanh) or a call in
    the caller's own forward (torch.tanh, F.sigmoid, x.tanh())."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, torch.Tensor]] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in ("tanh", "sigmoid", "expit") and args and isinstance(args[0], torch.Tensor):
            self.seen.append((name, args[0].detach()))
        return func(*args, **(kwargs or {}))


def saturation(model: nn.Module, x: tuple[torch.Tensor, ...]) -> list[Verdict]:
    """DeepDiagnosis (Wardat et al., ICSE 2022): a tanh/sigmoid whose inputs have |z| >= SAT_Z for more
    than SAT_SHARE of the entries at init passes almost no gradient."""
    probe = copy.deepcopy(model).eval()
    watch = _Squashes()
    try:
        with torch.no_grad(), watch:
            probe(*x)
    except Exception:
        return []
    shares = [(name, float((z.abs() >= SAT_Z).float().mean())) for name, z in watch.seen if z.numel()]
    bad = [(i, name, share) for i, (name, share) in enumerate(shares) if share > SAT_SHARE]
    if not bad:
        return []
    i, name, share = max(bad, key=lambda b: b[2])
    return [Verdict("lint", "saturated units", "fail",
                    f"{share:.0%} of the inputs to {name} call {i + 1} of {len(shares)} in the forward have |z| >= "
                    f"{SAT_Z:g} at init, where its gradient is near 0 ({len(bad)} saturated calls)",
                    {"saturated_share": {f"{n} call {j + 1}": round(v, 3) for j, (n, v) in enumerate(shares)},
                     "z": SAT_Z, "seen_by": "torch function mode (module or functional calls)"},
                    "initialise the weights smaller (Xavier/Glorot for tanh and sigmoid), standardize the inputs, or "
                    "add normalization (BatchNorm/LayerNorm) before the activation",
                    "DeepDiagnosis (Wardat et al., ICSE 2022): > 50% of tanh/sigmoid units with |z| >= 5",
                    fault="saturated-units")]


# ---------------------------------------------------------------- the loss
def _right_and_wrong(task: str, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Outputs that predict the targets confidently, and outputs that predict them confidently wrong."""
    if task == "multiclass" and out.ndim == 2 and out.shape[1] > 1 and not torch.is_floating_point(y):
        k = out.shape[1]
        right = torch.full_like(out, -4.0).scatter_(1, y.long().reshape(-1, 1) % k, 4.0)
        wrong = torch.full_like(out, -4.0).scatter_(1, (y.long().reshape(-1, 1) + 1) % k, 4.0)
        return right, wrong
    if task in ("binary", "multilabel") and out.shape == y.shape:
        sign = y.float() * 2 - 1
        return 4 * sign, -4 * sign
    if task == "regression" and out.shape == y.shape and torch.is_floating_point(y):
        spread = float(y.float().std()) if len(y) > 1 else 1.0
        return y.float().clone(), y.float() + 2 * max(spread, 1e-3)
    return None


def loss_sign(setup: Setup, out: torch.Tensor, y: torch.Tensor) -> list[Verdict]:
    """The caller's loss on confident right predictions against confident wrong ones."""
    pair = _right_and_wrong(setup.task, out, y)
    if pair is None:
        return []
    try:
        with torch.no_grad():
            right, wrong = (float(setup.loss_fn(o, y)) for o in pair)  # type: ignore[misc]
    except Exception:
        return []
    if not (math.isfinite(right) and math.isfinite(wrong)) or right <= wrong:
        return []
    return [Verdict("lint", "loss sign", "fail",
                    f"the loss scores confident wrong predictions ({wrong:.4g}) below confident right ones "
                    f"({right:.4g}): minimizing it drives the model away from the labels",
                    {"loss_right": round(right, 4), "loss_wrong": round(wrong, 4)},
                    "fix the loss's sign (minimize the loss, e.g. cross-entropy, not its negative)", KARPATHY,
                    fault="flipped-loss-sign")]


def adaptive(opt: torch.optim.Optimizer | None) -> bool:
    """Adam, RMSprop, Adagrad...: per-weight steps normalized by the gradient's scale, so a loss scaled by the
    batch size moves them (nearly) as its mean would."""
    return opt is not None and any(k in opt.defaults for k in ("betas", "alpha", "lr_decay", "rho"))


def loss_reduction(setup: Setup, out: torch.Tensor, y: torch.Tensor) -> list[Verdict]:
    """A loss summed over the batch: its value doubles with the batch. With plain SGD the step does too."""
    n = len(y)
    if n < 4 or adaptive(setup.optimizer) or setup.optimizer is None:
        return []
    try:  # the same rows twice: a mean is unchanged, a sum doubles, whatever the rows hold
        with torch.no_grad():
            half = float(setup.loss_fn(out, y))  # type: ignore[misc]
            whole = float(setup.loss_fn(torch.cat([out, out]), torch.cat([y, y])))  # type: ignore[misc]
    except Exception:
        return []
    if not (math.isfinite(whole) and math.isfinite(half)) or half <= 0 or abs(whole / half - 2) > 0.1:
        return []
    return [Verdict("lint", "loss reduction", "warn",
                    f"the loss grows with the batch ({half:.4g} on {n} rows, {whole:.4g} on the same rows twice): it "
                    f"is summed, not averaged, so {type(setup.optimizer).__name__}'s step is the batch size times "
                    "larger than its learning rate says",
                    {"loss_rows": round(half, 4), "loss_rows_twice": round(whole, 4), "rows": n},
                    "average the loss over the batch (reduction='mean'), or divide the learning rate by the batch size",
                    "PyTorch docs (reduction='mean' is the default); DeepCrime's mutation operators",
                    fault="loss-sum-not-mean")]


def classes_as_floats(setup: Setup, out: torch.Tensor, y: torch.Tensor) -> list[Verdict]:
    """Class indices 0..K-1 written as floats and fed to a one-output regression loss."""
    if setup.task != "regression" or not torch.is_floating_point(y) or out.reshape(len(out), -1).shape[1] != 1:
        return []
    values = torch.unique(setup.y[torch.isfinite(setup.y)])
    k = len(values)
    if not 3 <= k <= MAX_CLASSES or not torch.equal(values, torch.arange(k, dtype=values.dtype, device=values.device)):
        return []
    return [Verdict("lint", "class labels in a regression loss", "warn",
                    f"the targets are the whole numbers 0..{k - 1} and the model has one output under a regression "
                    "loss: class indices treated as quantities (class 9 is not 'more' than class 1)",
                    {"distinct_targets": k, "output_width": 1},
                    f"if these are classes, give the model {k} outputs and use CrossEntropyLoss on int64 labels; "
                    "if they are counts or scores, ignore this", "'Tips and tricks for Neural Networks' (M1, M3)",
                    fault="regression-loss-for-classes")]


# ---------------------------------------------------------------- the optimizer and its schedule
def weight_decay(setup: Setup) -> list[Verdict]:
    """The weight-decay term against the data loss at init (L2 in the loss: SGD, Adam...), or the share of
    the weights decoupled decay removes per step (AdamW)."""
    opt = setup.optimizer
    if opt is None or setup.loss_fn is None:
        return []
    held = {id(p): p for g in opt.param_groups for p in g["params"]}
    mine = [p for p in setup.model.parameters() if id(p) in held]
    if not mine:
        return []
    decoupled = isinstance(opt, torch.optim.AdamW) or bool(opt.defaults.get("decoupled_weight_decay"))
    term, per_step, wd_max = 0.0, 0.0, 0.0
    for g in opt.param_groups:
        wd = float(g.get("weight_decay") or 0.0)
        wd_max = max(wd_max, wd)
        term += wd / 2 * sum(float(p.detach().float().pow(2).sum()) for p in g["params"] if id(p) in held)
        per_step = max(per_step, wd * float(g.get("lr", 0.0)))
    if wd_max < MIN_DECAY and not (decoupled and per_step > DECOUPLED_PER_STEP):
        return []
    try:
        x, y = _rows(setup) or ((), None)
        with torch.no_grad():
            data = float(setup.loss_fn(main_output(copy.deepcopy(setup.model).eval()(*x)).float(), y))
    except Exception:
        return []
    evidence = {"weight_decay": wd_max, "decay_term": round(term, 4), "data_loss": round(data, 4)}
    if decoupled:
        if per_step <= DECOUPLED_PER_STEP:
            return []
        seen = (f"decoupled weight decay {wd_max:g} at lr {per_step / wd_max:g} shrinks the weights by {per_step:.1%} "
                f"every step, whatever the data says")
        evidence["shrink_per_step"] = per_step
    elif math.isfinite(data) and term >= max(data, 1e-8):
        seen = (f"the weight-decay term ({wd_max:g}/2 x |w|^2 = {term:.4g}) outweighs the data loss at init "
                f"({data:.4g}): training mostly shrinks the weights")
    else:
        return []
    return [Verdict("lint", "weight decay", "warn", seen, evidence,
                    "lower the weight decay (1e-4 to 1e-2 for Adam/SGD; for AdamW keep lr x weight_decay well below "
                    "1e-3 per step); tune it with the validation loss", "'Tips and tricks for Neural Networks' (regularization); Loshchilov & Hutter 2019",
                    fault="over-regularization")]


def rate_collapsed(lr0: Any, lr_end: Any) -> bool:
    """Whether a rate the caller's step drove from `lr0` to `lr_end` fell under 1% of its start while the
    doctor trained (C1's batch, C8's short run): a schedule stepped every batch, not the rate chosen."""
    return isinstance(lr0, float | int) and isinstance(lr_end, float | int) and 0 < lr0 and lr_end < 1e-2 * lr0


def schedule(setup: Setup) -> list[Verdict]:
    """Each of the caller's schedulers stepped SCHEDULE_STEPS times on a copy of the optimizer: the rate
    must not fall below SCHEDULE_FLOOR of where it starts (a per-epoch schedule stepped per batch)."""
    found = []
    inner = {id(c) for s in setup.schedulers for c in getattr(s, "_schedulers", [])}
    for sched in setup.schedulers:
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) or id(sched) in inner:
            continue  # it moves with the monitored metric; a SequentialLR's part is judged within it
        _, opt = setup.copies()
        # all of them follow the copy: a SequentialLR steps schedulers of its own on the same optimizer
        start = [copy.deepcopy(s.state_dict()) for s in setup.schedulers]
        lr0 = float(opt.param_groups[0]["lr"])
        rates = []
        try:
            with follow(setup.schedulers, opt, start), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(SCHEDULE_STEPS):
                    sched.step()
                    rates.append(float(opt.param_groups[0]["lr"]))
        except Exception:
            continue
        # collapsed and staying there: a cosine period that touches 0 at its end and climbs back is healthy
        if lr0 <= 0 or max(rates[SCHEDULE_STEPS // 2 - 1:]) >= 1e-2 * lr0 or rates[-1] >= SCHEDULE_FLOOR * lr0:
            continue
        at = next(i for i, r in enumerate(rates, 1) if r < SCHEDULE_FLOOR * lr0)
        found.append(Verdict("lint", "learning-rate schedule", "warn",
                             f"{type(sched).__name__} takes the learning rate from {lr0:.3g} to {rates[at - 1]:.3g} in "
                             f"{at} steps: stepped every batch, training stalls within the first epoch",
                             {"scheduler": type(sched).__name__, "lr_start": lr0,
                              "lr_after_steps": [float(f"{r:.3g}") for r in rates]},
                             SCHEDULE_FIX, "PyTorch docs (how to adjust the learning rate)", fault="scheduler-misuse"))
    return found


__all__ = ["SCHEDULE_FIX", "rate_collapsed", "read_setup"]
